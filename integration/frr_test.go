//go:build integration

package integration

import (
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
)

const (
	labInterval = 500 * time.Millisecond
	labFast     = 100 * time.Millisecond
	labRise     = 3
	labFall     = 2
)

// withdrawBound is how soon after a service breaks the router must have
// lost the node: interval + (fall-1)·fast_interval + 1 s.
const withdrawBound = labInterval + (labFall-1)*labFast + time.Second

// newAnycastLab builds router + nodes with FRR and DNS and starts every
// watchdog with the standard configuration.
func newAnycastLab(t *testing.T, o lab.AnycastOptions) *lab.AnycastLab {
	t.Helper()
	a := buildAnycastLab(t, o)
	for _, n := range a.Nodes {
		if err := n.StartWatchdog(); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// buildAnycastLab builds router + nodes with FRR and DNS and waits until
// OSPF is adjacent; the watchdogs are the test's to configure and start.
func buildAnycastLab(t *testing.T, o lab.AnycastOptions) *lab.AnycastLab {
	t.Helper()
	o.Binary, o.Interval, o.FastInterval, o.Rise, o.Fall = binary, labInterval, labFast, labRise, labFall
	if _, err := os.Stat("/usr/lib/frr/ospfd"); err != nil {
		t.Fatal("frr is missing: .ci/run installs it (apt-get install -y frr)")
	}
	a, err := newLab(t).NewAnycastLab(fmt.Sprintf("aw%d", os.Getpid()%100000), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WaitAdjacent(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	return a
}

// waitRoutes waits until the router's next hops for the /32 and the /128
// are want, and reports how long that took.
func waitRoutes(t *testing.T, a *lab.AnycastLab, want []string, within time.Duration, what string) time.Duration {
	t.Helper()
	took, ok := lab.WaitFor(within, func() bool {
		return routesVia(t, a, lab.AnycastV4, want) && routesVia(t, a, lab.AnycastV6, want)
	})
	if !ok {
		v4, v6 := a.Routes()
		var logs strings.Builder
		for _, n := range a.Nodes {
			fmt.Fprintf(&logs, "--- %s watchdog:\n%s", n.NS.Name, n.Watchdog.Log())
		}
		t.Fatalf("%s: router next hops v4 %v v6 %v, want %v within %s\n%s", what, v4, v6, want, within, logs.String())
	}
	return took
}

// routesVia is lab.RoutesVia; a stale OSPFv3 next hop is logged.
func routesVia(t *testing.T, a *lab.AnycastLab, p netip.Prefix, want []string) bool {
	t.Helper()
	ok, stale := a.RoutesVia(p, want)
	if len(stale) > 0 {
		t.Logf("router keeps a stale OSPFv3 next hop for %s via %v, whose node no longer advertises it (FRR ospf6d; docs/frr.md, 'Known problem: a stale OSPFv3 next hop')", p, stale)
	}
	return ok
}

func both(a *lab.AnycastLab) []string { return []string{a.Nodes[0].RouterDev, a.Nodes[1].RouterDev} }

func waitLog(t *testing.T, p *lab.Process, within time.Duration, text string) {
	t.Helper()
	if _, ok := lab.WaitFor(within, func() bool { return strings.Contains(p.Log(), text) }); !ok {
		t.Fatalf("%s never logged %q:\n%s", p.Name, text, p.Log())
	}
}

// Tests 1–3 of the lab: both nodes advertised, a broken node withdrawn
// while clients keep getting answers, and its return.
func TestRouterFollowsServiceHealth(t *testing.T) {
	a := newAnycastLab(t, lab.AnycastOptions{MinArrival0: true})
	n1 := a.Nodes[0]

	// 1. Both healthy: two next hops for the /32 and the /128.
	waitRoutes(t, a, both(a), 10*time.Second, "both nodes advertised")
	waitLog(t, n1.Watchdog, 3*time.Second, `msg="advertisement confirmed" advertised=yes`)

	// 2. Node 1's DNS server stops: its next hop goes, clients still answered.
	n1.DNS.Stop(2 * time.Second)
	took := waitRoutes(t, a, []string{a.Nodes[1].RouterDev}, withdrawBound, "node 1 withdrawn")
	t.Logf("router lost node 1 %s after its DNS server stopped (bound %s)", took.Round(time.Millisecond), withdrawBound)
	for i := 0; i < 20; i++ {
		ans, err := a.Router.Query("192.0.2.53:53", "whoami.example.", time.Second)
		if err != nil || ans != "203.0.113.2" {
			t.Fatalf("query %d from the router after the withdrawal: %q, %v; want node 2's answer", i, ans, err)
		}
	}

	// 3. It comes back after rise passing rounds, confirmed by FRR.
	if err := n1.StartDNS(); err != nil {
		t.Fatal(err)
	}
	took = waitRoutes(t, a, both(a), labInterval+(labRise-1)*labFast+time.Second, "node 1 restored")
	t.Logf("router regained node 1 %s after its DNS server came back", took.Round(time.Millisecond))
	// Confirmed yes for both prefixes at the first rise and after the restore.
	if _, ok := lab.WaitFor(5*time.Second, func() bool {
		return strings.Count(n1.Watchdog.Log(), `msg="advertisement confirmed" advertised=yes`) == 4
	}); !ok {
		t.Errorf("want 4 'advertised=yes' confirmations:\n%s", n1.Watchdog.Log())
	}
}

// Test 4: restarting the watchdog on a healthy node never costs the router
// that next hop.
func TestRouterKeepsNodeAcrossWatchdogRestart(t *testing.T) {
	a := newAnycastLab(t, lab.AnycastOptions{})
	waitRoutes(t, a, both(a), 10*time.Second, "both nodes advertised")
	restartKeepsBothNodes(t, a, a.Nodes[0])
}

// restartKeepsBothNodes stops n's watchdog with SIGTERM, then SIGKILL, and
// starts it again each time, failing if the router ever lacks a next hop.
func restartKeepsBothNodes(t *testing.T, a *lab.AnycastLab, n *lab.Node) {
	t.Helper()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		stop := keepsBothNodes(a)
		n.Watchdog.Signal(sig)
		if _, err := n.Watchdog.Wait(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if err := n.StartWatchdog(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * labInterval)
		if got := stop(); got != "" {
			t.Fatalf("%s: the router lost a next hop during the restart: %s", sig, got)
		}
	}
}

// Test 5: ospfd dies; the watchdog keeps working and says FRR is down;
// ospfd comes back and the read-back recovers.
func TestWatchdogSurvivesOspfdRestart(t *testing.T) {
	a := newAnycastLab(t, lab.AnycastOptions{})
	waitRoutes(t, a, both(a), 10*time.Second, "both nodes advertised")
	n1 := a.Nodes[0]
	n1.FRR.Daemons["ospfd"].Stop(2 * time.Second)
	waitLog(t, n1.Watchdog, 15*time.Second, `level=warning msg="cannot read back what FRR advertises; checks and address control go on" daemon=ospfd error="ospfd is not running"`)

	// Checks and address control go on: a broken service is still withdrawn.
	n1.DNS.Stop(2 * time.Second)
	if _, ok := lab.WaitFor(withdrawBound, func() bool { v4, _ := n1.Has(); return !v4 }); !ok {
		t.Fatalf("not withdrawn while ospfd was down:\n%s", n1.Watchdog.Log())
	}
	if err := n1.StartDNS(); err != nil {
		t.Fatal(err)
	}
	if err := n1.FRR.Start("ospfd"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, n1.Watchdog, 15*time.Second, `msg="FRR read-back works again" daemon=ospfd`)
	waitRoutes(t, a, both(a), 20*time.Second, "node 1 back after ospfd's restart")
	if n1.Watchdog.Exited() {
		t.Fatalf("watchdog exited:\n%s", n1.Watchdog.Log())
	}
}

// Test 6: ospfd frozen; vtysh times out, but checks and withdrawals happen
// on time.
func TestFrozenOspfdDoesNotDelayWithdrawal(t *testing.T) {
	a := newAnycastLab(t, lab.AnycastOptions{})
	waitRoutes(t, a, both(a), 10*time.Second, "both nodes advertised")
	n1 := a.Nodes[0]
	ospfd := n1.FRR.Daemons["ospfd"]
	ospfd.Signal(syscall.SIGSTOP)
	defer ospfd.Signal(syscall.SIGCONT)

	n1.DNS.Stop(2 * time.Second)
	took, ok := lab.WaitFor(withdrawBound, func() bool { v4, v6 := n1.Has(); return !v4 && !v6 })
	if !ok {
		t.Fatalf("not withdrawn within %s while ospfd was frozen:\n%s", withdrawBound, n1.Watchdog.Log())
	}
	t.Logf("withdrawn from lo %s after the DNS server stopped, with ospfd frozen", took.Round(time.Millisecond))
	waitLog(t, n1.Watchdog, 15*time.Second, `error="ospfd did not answer in time (hung or overloaded)"`)
	// Once thawed, ospfd floods the withdrawal. (Measured: while ospfd is
	// frozen, zebra also stops telling ospf6d about address changes, so the
	// /128 follows only after the thaw, sometimes seconds later: FRR's
	// behaviour, outside the watchdog's reach.)
	ospfd.Signal(syscall.SIGCONT)
	if _, ok := lab.WaitFor(10*time.Second, func() bool {
		v4, _ := a.Routes()
		return reflect.DeepEqual(v4, []string{a.Nodes[1].RouterDev})
	}); !ok {
		v4, _ := a.Routes()
		t.Fatalf("router still routes the /32 via %v after ospfd thawed", v4)
	}
}

// Test 7: a node whose FRR config does not cover the anycast prefixes is
// reported as not advertised, with the reason.
func TestUncoveredPrefixIsReported(t *testing.T) {
	a := newAnycastLab(t, lab.AnycastOptions{Uncovered: []int{1}})
	waitRoutes(t, a, []string{a.Nodes[1].RouterDev}, 10*time.Second, "only node 2 advertised")
	n1 := a.Nodes[0]
	waitLog(t, n1.Watchdog, 10*time.Second, "address is on the interface but ospfd does not advertise it: the FRR configuration does not cover 192.0.2.53/32")
	waitLog(t, n1.Watchdog, 10*time.Second, "address is on the interface but ospf6d does not advertise it: the FRR configuration does not cover 2001:db8::53/128")
	if v4, v6 := n1.Has(); !v4 || !v6 {
		t.Errorf("the healthy service's addresses are not on lo (v4 %v v6 %v)", v4, v6)
	}
}
