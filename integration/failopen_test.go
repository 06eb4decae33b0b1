//go:build integration

package integration

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// labFleetInterval is the fail-open tests' frr.fleet_interval.
const labFleetInterval = 2 * time.Second

// newFailOpenLab is three nodes with a last-resort interface each, every
// watchdog reading the fleet every labFleetInterval.
func newFailOpenLab(t *testing.T) *lab.AnycastLab {
	t.Helper()
	a := buildAnycastLab(t, lab.AnycastOptions{Nodes: 3, MinArrival0: true, LastResort: true})
	for _, n := range a.Nodes {
		c := n.WatchdogConfig()
		c.FleetInterval, c.Metrics = labFleetInterval, metricsAddr
		startWith(t, n, c)
	}
	waitRoutes(t, a, devs(a.Nodes...), 15*time.Second, "every node advertised")
	return a
}

func devs(nodes ...*lab.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.RouterDev)
	}
	slices.Sort(out)
	return out
}

// where says which interface holds both anycast prefixes on n: "lo",
// lab.LastResortDev, "" for neither, or "mixed".
func where(n *lab.Node) string {
	if v4, v6 := whereOf(n, lab.AnycastV4), whereOf(n, lab.AnycastV6); v4 == v6 {
		return v4
	}
	return "mixed"
}

// whereOf says which interface holds p on n.
func whereOf(n *lab.Node, p netip.Prefix) string {
	switch lo, lr := n.NS.Has("lo", p), n.NS.Has(lab.LastResortDev, p); {
	case lo && lr:
		return "both"
	case lo:
		return "lo"
	case lr:
		return lab.LastResortDev
	}
	return ""
}

// routeWatch samples the router's next hops for the /32 and the /128
// every 10 ms (lab.RouteSampler) until end, which reports every moment
// either route went missing.
type routeWatch struct {
	routes *lab.RouteSampler
	since  time.Time
}

func watchRoutes(t *testing.T, a *lab.AnycastLab) *routeWatch {
	t.Helper()
	w := &routeWatch{since: time.Now()}
	var err error
	if w.routes, err = a.SampleRoutes(10*time.Millisecond, lab.AnycastV4, lab.AnycastV6); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.routes.Stop() })
	return w
}

func (w *routeWatch) end(t *testing.T) (samples int, gaps []string) {
	t.Helper()
	if err := w.routes.Stop(); err != nil {
		t.Fatalf("route sampler: %v", err)
	}
	for _, c := range w.routes.Changes(w.since) {
		if len(c.Devs) == 0 {
			gaps = append(gaps, fmt.Sprintf("%s: no route to %s", c.At.Format("15:04:05.000"), c.Prefix))
		}
	}
	return w.routes.Samples(), gaps
}

func waitWhere(t *testing.T, a *lab.AnycastLab, n *lab.Node, want string, within time.Duration, what string) time.Duration {
	t.Helper()
	took, ok := lab.WaitFor(within, func() bool { return where(n) == want })
	if !ok {
		t.Fatalf("%s: %s holds the prefixes on %q, want %q within %s\n%s", what, n.NS.Name, where(n), want, within, whyRoutesChanged(a))
	}
	return took
}

// Every node's service fails at once: each moves its prefixes to last
// resort and, seeing nobody at normal metric, keeps them there, so the
// router never lacks a route; one recovers, the router routes to it alone,
// and the others remove theirs.
func TestFailOpenWhenEveryNodeFails(t *testing.T) {
	a := newFailOpenLab(t)
	watch := watchRoutes(t, a)
	for _, n := range a.Nodes {
		n.DNS.Stop(2 * time.Second)
	}
	for _, n := range a.Nodes {
		waitStatus(t, n, withdrawBound+time.Second, n.NS.Name+" at last resort", func(st status.Document) bool {
			s := serviceNamed(st, "dns")
			return s.State == status.LastResort && s.Prefixes[0].Interface == lab.LastResortDev && s.Prefixes[1].Interface == lab.LastResortDev
		})
	}
	waitRoutes(t, a, devs(a.Nodes...), 2*time.Second, "ECMP over every node at last resort")
	// Several fleet reads later, still all held.
	time.Sleep(2 * labFleetInterval)
	for _, n := range a.Nodes {
		if w := where(n); w != lab.LastResortDev {
			t.Fatalf("%s moved its prefixes to %q while nobody advertised them at normal metric\n%s", n.NS.Name, w, whyRoutesChanged(a))
		}
	}
	st := serviceNamed(fullStatusOf(t, a.Nodes[0]), "dns")
	if !strings.Contains(st.Reason, "held at last resort: 192.0.2.53/32: 0 other routers advertise it at normal metric") {
		t.Errorf("node 1's reason: %q", st.Reason)
	}
	if n := metric(t, a.Nodes[0], "anycast_watchdog_prefix_advertisers", `class="last_resort"`, `prefix="192.0.2.53/32"`); n != 3 {
		t.Errorf("node 1 sees %v last-resort advertisers, want 3", n)
	}

	// Node 1 recovers.
	n1 := a.Nodes[0]
	if err := n1.StartDNS(); err != nil {
		t.Fatal(err)
	}
	back := waitRoutes(t, a, devs(n1), labInterval+(labRise-1)*labFast+100*time.Millisecond, "the router routes to the recovered node alone")
	for _, n := range a.Nodes[1:] {
		gone := waitWhere(t, a, n, "", labFleetInterval+2*time.Second, "the others remove theirs")
		t.Logf("%s removed its prefixes %s after node 1's route returned", n.NS.Name, (back + gone).Round(time.Millisecond))
	}
	samples, gaps := watch.end(t)
	if len(gaps) > 0 {
		t.Fatalf("the router lacked a route %d times in %d samples:\n%s", len(gaps), samples, strings.Join(gaps, "\n"))
	}
	t.Logf("router routed to node 1 alone %s after its DNS came back; no route missing in %d samples (10 ms apart)", back.Round(time.Millisecond), samples)
	for _, n := range a.Nodes[1:] {
		if s := serviceNamed(fullStatusOf(t, n), "dns"); s.State != status.Down || s.Prefixes[0].Interface != "" {
			t.Errorf("%s: %s on %q, want down on neither interface", n.NS.Name, s.State, s.Prefixes[0].Interface)
		}
	}
}

// One node fails: the router stops using it as fast as before (the move to
// last resort is one ip call), and its prefixes leave last resort at the
// next fleet read after the move settled.
func TestFailOpenOneNodeFails(t *testing.T) {
	a := newFailOpenLab(t)
	n1 := a.Nodes[0]
	n1.DNS.Stop(2 * time.Second)
	took := waitRoutes(t, a, devs(a.Nodes[1:]...), withdrawBound, "the router stops using node 1")
	atLR := waitWhere(t, a, n1, lab.LastResortDev, time.Second, "node 1 at last resort")
	gone := waitWhere(t, a, n1, "", labFleetInterval+2*time.Second, "node 1 removes its prefixes")
	t.Logf("router left node 1 %s after its DNS stopped; node 1 removed its prefixes %s after that", took.Round(time.Millisecond), (atLR + gone).Round(time.Millisecond))
	waitStatus(t, n1, 2*time.Second, "node 1 down, seeing the two others only", func(st status.Document) bool {
		s := serviceNamed(st, "dns")
		return s.State == status.Down && len(s.Prefixes[0].Advertisers) == 2 && len(s.Prefixes[1].Advertisers) == 2
	})
	waitLog(t, n1.Watchdog, time.Second, `reason="service down: 2 consecutive failing rounds (fall 2); 2 other routers advertise it at normal metric"`)
}

// A drain goes through last resort for drain_grace; draining the only
// healthy node is refused without --force.
func TestDrainThroughLastResort(t *testing.T) {
	a := newFailOpenLab(t)
	n1, n2, n3 := a.Nodes[0], a.Nodes[1], a.Nodes[2]
	watch := watchRoutes(t, a)

	out, err := cli(t, n1, "drain", "dns", "--reason", "kernel upgrade")
	if err != nil || !strings.Contains(out, "drained (withdrawn; checks keep running): dns") {
		t.Fatalf("drain: %v: %s", err, out)
	}
	if w := where(n1); w != lab.LastResortDev {
		t.Errorf("right after drain returned node 1 holds its prefixes on %q", w)
	}
	if s := serviceNamed(fullStatusOf(t, n1), "dns"); s.State != status.Draining {
		t.Errorf("state right after drain: %s", s.State)
	}
	waitRoutes(t, a, devs(n2, n3), time.Second, "the router leaves the draining node")
	gone := waitWhere(t, a, n1, "", 2*time.Second+time.Second, "removed after drain_grace")
	t.Logf("node 1's prefixes removed %s after the drain returned (drain_grace 2s)", gone.Round(time.Millisecond))
	waitStatus(t, n1, time.Second, "drained", func(st status.Document) bool { return serviceNamed(st, "dns").State == status.Drained })

	// Nodes 2 and 3 fail: node 1 is drained, so nobody is at normal metric
	// and both hold at last resort; draining either is refused.
	n2.DNS.Stop(2 * time.Second)
	n3.DNS.Stop(2 * time.Second)
	waitWhere(t, a, n2, lab.LastResortDev, withdrawBound, "node 2 at last resort")
	waitWhere(t, a, n3, lab.LastResortDev, withdrawBound, "node 3 at last resort")
	out, err = cli(t, n2, "drain", "dns")
	if err == nil || !strings.Contains(out, "drain of dns refused: 192.0.2.53/32: no other router advertises it at normal metric") {
		t.Errorf("drain with nobody else at normal metric: %v: %s", err, out)
	}
	if w := where(n2); w != lab.LastResortDev {
		t.Errorf("a refused drain moved node 2's prefixes to %q", w)
	}
	samples, gaps := watch.end(t)
	if len(gaps) > 0 {
		t.Fatalf("the router lacked a route %d times in %d samples:\n%s", len(gaps), samples, strings.Join(gaps, "\n"))
	}

	// Forced, it goes; node 3 still holds the address.
	if out, err := cli(t, n2, "drain", "dns", "--force"); err != nil || !strings.Contains(out, "forced") {
		t.Errorf("forced drain: %v: %s", err, out)
	}
	waitWhere(t, a, n2, "", 4*time.Second, "node 2 removed after a forced drain")
	waitRoutes(t, a, devs(n3), time.Second, "node 3 alone, at last resort")
}

func fullStatusOf(t *testing.T, n *lab.Node) status.Document {
	t.Helper()
	st, err := fullStatus(t, n)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// On a failing node at last resort, a frozen ospfd (vtysh hangs) and then a
// restarted one: the node holds its prefixes while it cannot read the
// fleet, says why, and removes them once it can and sees the others; the
// healthy nodes keep their routes throughout.
func TestFailOpenHoldsWhileTheFleetCannotBeRead(t *testing.T) {
	a := newFailOpenLab(t)
	n1 := a.Nodes[0]
	ospfd := n1.FRR.Daemons["ospfd"]
	ospfd.Signal(syscall.SIGSTOP)
	defer ospfd.Signal(syscall.SIGCONT)
	n1.DNS.Stop(2 * time.Second)
	waitWhere(t, a, n1, lab.LastResortDev, withdrawBound, "node 1 at last resort")
	st := waitStatus(t, n1, 10*time.Second, "node 1 explains", func(st status.Document) bool {
		return strings.Contains(serviceNamed(st, "dns").Reason, "192.0.2.53/32: the fleet view is unknown (ospfd did not answer in time (hung or overloaded))")
	})
	// ospf6d still answers: the /128 goes; the /32 is held.
	if _, ok := lab.WaitFor(labFleetInterval+2*time.Second, func() bool { return whereOf(n1, lab.AnycastV6) == "" }); !ok {
		t.Errorf("the /128, whose fleet ospf6d shows, is on %q", whereOf(n1, lab.AnycastV6))
	}
	time.Sleep(labFleetInterval)
	if w := whereOf(n1, lab.AnycastV4); w != lab.LastResortDev {
		t.Fatalf("node 1 moved its /32 to %q without a view of the fleet", w)
	}
	t.Logf("node 1 with ospfd frozen: %s: %s", serviceNamed(st, "dns").State, serviceNamed(st, "dns").Reason)

	// Thawed: the read works again; the others are at normal metric.
	ospfd.Signal(syscall.SIGCONT)
	waitWhere(t, a, n1, "", 15*time.Second, "node 1 removes its prefixes after the thaw")
	waitRoutes(t, a, devs(a.Nodes[1:]...), 10*time.Second, "the router routes to nodes 2 and 3")

	// ospfd restarted on node 1, which recovers meanwhile: back on lo, and
	// the router returns to it once ospfd is up.
	ospfd.Stop(2 * time.Second)
	if err := n1.StartDNS(); err != nil {
		t.Fatal(err)
	}
	waitWhere(t, a, n1, "lo", labInterval+labRise*labFast+time.Second, "node 1 back on lo while its ospfd is down")
	if err := n1.FRR.Start("ospfd"); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, a, devs(a.Nodes...), 20*time.Second, "every node after ospfd's restart")
	for _, n := range a.Nodes[1:] {
		if n.Watchdog.Exited() || where(n) != "lo" {
			t.Errorf("%s: exited %v, prefixes on %q", n.NS.Name, n.Watchdog.Exited(), where(n))
		}
	}
}
