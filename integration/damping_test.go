//go:build integration

package integration

import (
	"math"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// labDamping is the damping tests' block: the defaults' shape, short
// enough for a test (three withdrawals a few seconds apart damp; released
// at most a minute after the last).
const labDamping = "{half_life: 20s, max_suppress: 60s}"

// newDampingLab is newFailOpenLab with labDamping on every node.
func newDampingLab(t *testing.T) *lab.AnycastLab {
	t.Helper()
	a := buildAnycastLab(t, lab.AnycastOptions{Nodes: 3, MinArrival0: true, LastResort: true})
	for _, n := range a.Nodes {
		c := n.WatchdogConfig()
		c.FleetInterval, c.Metrics, c.Damping = labFleetInterval, metricsAddr, labDamping
		startWith(t, n, c)
	}
	waitRoutes(t, a, devs(a.Nodes...), 15*time.Second, "every node advertised")
	return a
}

// flapDNS stops the nodes' DNS for down, then starts it and lets it run for
// up, together.
func flapDNS(t *testing.T, down, up time.Duration, nodes ...*lab.Node) {
	t.Helper()
	for _, n := range nodes {
		n.DNS.Stop(2 * time.Second)
	}
	time.Sleep(down)
	for _, n := range nodes {
		if err := n.StartDNS(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(up)
}

// entries counts the times the router's route to the /32 gained dev after
// since (in says whether dev was in its set then), and returns when the
// last one was.
func entries(w *routeWatch, dev string, since time.Time, in bool) (n int, last time.Time) {
	at := returns(w, dev, since, in)
	if len(at) == 0 {
		return 0, time.Time{}
	}
	return len(at), at[len(at)-1]
}

// returns lists when the router's route to the /32 gained dev after since
// (in says whether dev was in its set then), oldest first.
func returns(w *routeWatch, dev string, since time.Time, in bool) []time.Time {
	var at []time.Time
	for _, c := range w.routes.Changes(since) {
		if c.Router != 0 || c.Prefix != lab.AnycastV4 {
			continue
		}
		has := slices.Contains(c.Devs, dev)
		if has && !in {
			at = append(at, c.At)
		}
		in = has
	}
	return at
}

func dampingOf(t *testing.T, n *lab.Node) status.Service {
	t.Helper()
	s := serviceNamed(fullStatusOf(t, n), "dns")
	if s.Damping == nil {
		t.Fatalf("%s: no damping in status: %+v", n.NS.Name, s)
	}
	return s
}

// Node 1's service flaps (down 1 s, up 2 s) for 60 s: the router sees it
// bounce twice, then never again at normal metric while it is damped,
// though it keeps flapping; a restart of its daemon keeps it damped; it is
// back in the router's set at the release time its status announced; and
// undamp brings it back at once.
func TestFlappingNodeIsDampedAndReleased(t *testing.T) {
	a := newDampingLab(t)
	n1 := a.Nodes[0]
	watch := watchRoutes(t, a)
	start := time.Now()
	for time.Since(start) < 60*time.Second {
		flapDNS(t, time.Second, 2*time.Second, n1)
	}
	flapEnd := time.Now()
	s := dampingOf(t, n1)
	withdrawals := metric(t, n1, "anycast_watchdog_withdrawals_total", `service="dns"`)
	bounces, _ := entries(watch, n1.RouterDev, start, true)
	t.Logf("60 s of flapping: %v withdrawals, the router took node 1 back %d times; penalty %.0f (ceiling 8000), state %s",
		withdrawals, bounces, s.Damping.Penalty, s.State)
	if withdrawals < 10 || bounces > 2 {
		t.Fatalf("%v withdrawals and %d returns to the router's set: it must stop bouncing after the third withdrawal\n%s", withdrawals, bounces, whyRoutesChanged(a))
	}
	s = waitStatus(t, n1, labInterval+labRise*labFast+time.Second, "node 1 passes, damped", func(st status.Document) bool {
		return serviceNamed(st, "dns").State == status.Damped
	}).Services[0]
	if where(n1) != lab.LastResortDev || !s.Damping.Damped || s.Damping.ReleaseAt.IsZero() || s.Damping.ReleaseAt.After(flapEnd.Add(61*time.Second)) {
		t.Fatalf("after the flapping: %s on %q, damping %+v (flapping ended %s)", s.State, where(n1), s.Damping, flapEnd.Format(time.TimeOnly))
	}
	waitRoutes(t, a, devs(a.Nodes[1:]...), time.Second, "the router routes to the others while node 1 is held")

	// A restart of node 1's daemon while damped: still damped, nothing
	// forgotten, no withdrawal added.
	n1.Watchdog.Signal(syscall.SIGTERM)
	if _, err := n1.Watchdog.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n1.StartWatchdog(); err != nil {
		t.Fatal(err)
	}
	after := waitStatus(t, n1, 5*time.Second, "damped again after the restart", func(st status.Document) bool {
		return serviceNamed(st, "dns").State == status.Damped
	}).Services[0]
	if after.Damping.Withdrawals != s.Damping.Withdrawals || math.Abs(after.Damping.ReleaseAt.Sub(s.Damping.ReleaseAt).Seconds()) > 0.01 {
		t.Errorf("after a restart: damping %+v, before %+v", after.Damping, s.Damping)
	}

	// Released at the announced time, give or take 1.5 s, and not before:
	// the router's table, read directly, has node 1 back; the sampler's
	// log has it nowhere between the flapping and 1.5 s before the release.
	// (The sampler's own view of the return is not waited for: in two CI
	// runs it lacked node 1 for the whole second after the direct read had
	// it, while this test's local runs, on idle and on loaded cores, never
	// did; its error, if any, and node 1's log are printed when that
	// happens, for the next look.)
	release := after.Damping.ReleaseAt
	back := waitRoutes(t, a, devs(a.Nodes...), time.Until(release)+5*time.Second, "node 1 back in the router's set after its release")
	backAt := time.Now()
	if at := returns(watch, n1.RouterDev, flapEnd, false); len(at) > 0 && at[0].Before(release.Add(-1500*time.Millisecond)) {
		t.Fatalf("node 1 returned to the router's set at %s, before the release its status announced for %s",
			at[0].Format("15:04:05.000"), release.Format("15:04:05.000"))
	}
	if math.Abs(backAt.Sub(release).Seconds()) > 1.5 {
		t.Fatalf("node 1 back in the router's set at %s; its status announced the release for %s", backAt.Format("15:04:05.000"), release.Format("15:04:05.000"))
	}
	if _, ok := watch.routes.Wait(flapEnd, devs(a.Nodes...), time.Second, lab.AnycastV4); !ok {
		t.Logf("the route sampler does not show node 1 back: %s (sampler error: %v)\n%s\nnode 1's log:\n%s", watch.routes.Mismatch(devs(a.Nodes...), lab.AnycastV4),
			watch.routes.Err(), whyRoutesChanged(a), tailLines(n1.Watchdog.Log(), 40))
	}
	t.Logf("released: back in the router's set %s after the release time its status announced (%s after the flapping ended; waited %s)",
		backAt.Sub(release).Round(time.Millisecond), release.Sub(flapEnd).Round(time.Second), back.Round(time.Millisecond))
	waitLog(t, n1.Watchdog, time.Second, `msg="service released from damping: its penalty decayed below reuse"`)

	// Two flaps a few seconds apart damp it again; undamp puts it back at
	// once: one round's move and OSPF's propagation.
	flapDNS(t, time.Second, 2*time.Second, n1)
	flapDNS(t, time.Second, 2*time.Second, n1)
	waitStatus(t, n1, 3*time.Second, "damped again", func(st status.Document) bool { return serviceNamed(st, "dns").State == status.Damped })
	waitRoutes(t, a, devs(a.Nodes[1:]...), time.Second, "node 1 held")
	undampAt := time.Now()
	if out, err := cli(t, n1, "undamp", "dns"); err != nil || !strings.Contains(out, "damping penalty cleared") {
		t.Fatalf("undamp: %v: %s", err, out)
	}
	took, ok := watch.routes.Wait(undampAt, devs(a.Nodes...), time.Second, lab.AnycastV4, lab.AnycastV6)
	if !ok {
		t.Fatalf("node 1 not back within a second of undamp\n%s", whyRoutesChanged(a))
	}
	t.Logf("undamp: node 1 back in the router's set %s after the command was given", took.Round(time.Millisecond))
	if s := dampingOf(t, n1); s.State != status.Up || s.Damping.Penalty != 0 {
		t.Errorf("after undamp: %s, damping %+v", s.State, s.Damping)
	}
	waitLog(t, n1.Watchdog, time.Second, `msg="damping penalty cleared (undamp)"`)
}

// Every node flaps at once: each is damped, and damping never takes the
// address off the network: the router has a route in every 10 ms sample,
// and ends with ECMP over every node at last resort.
func TestEveryNodeFlappingKeepsARoute(t *testing.T) {
	a := newDampingLab(t)
	watch := watchRoutes(t, a)
	for range 5 {
		flapDNS(t, time.Second, 2*time.Second, a.Nodes...)
	}
	for _, n := range a.Nodes {
		waitStatus(t, n, 3*time.Second, n.NS.Name+" damped", func(st status.Document) bool { return serviceNamed(st, "dns").State == status.Damped })
		if w := where(n); w != lab.LastResortDev {
			t.Errorf("%s damped holds its prefixes on %q, want %s", n.NS.Name, w, lab.LastResortDev)
		}
	}
	waitRoutes(t, a, devs(a.Nodes...), 2*time.Second, "ECMP over every node at last resort")
	samples, gaps := watch.end(t)
	if len(gaps) > 0 {
		t.Fatalf("the router lacked a route %d times in %d samples:\n%s", len(gaps), samples, strings.Join(gaps, "\n"))
	}
	t.Logf("every node flapping 5 times, all damped: no route missing in %d samples (10 ms apart); node 1 withdrew %v times", samples,
		metric(t, a.Nodes[0], "anycast_watchdog_withdrawals_total", `service="dns"`))
}
