//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// A degrade check failing on node 1 moves the router to the other nodes
// (node 1 held at last resort, still serving if they all went), and back
// when it passes; a report check failing moves nothing and shows in status
// and metrics.
func TestDegradeCheckMovesTrafficAway(t *testing.T) {
	a := buildAnycastLab(t, lab.AnycastOptions{Nodes: 3, MinArrival0: true, LastResort: true})
	n1 := a.Nodes[0]
	dir := t.TempDir()
	degradeOK, reportOK := filepath.Join(dir, "degrade-ok"), filepath.Join(dir, "report-ok")
	for _, f := range []string{degradeOK, reportOK} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range a.Nodes {
		c := n.WatchdogConfig()
		c.FleetInterval, c.Metrics = labFleetInterval, metricsAddr
		if n == n1 {
			c.MoreChecks = []string{
				fmt.Sprintf("{type: exec, command: [/usr/bin/test, -e, %s], on_fail: degrade}", degradeOK),
				fmt.Sprintf("{type: exec, command: [/usr/bin/test, -e, %s], on_fail: report}", reportOK)}
		}
		startWith(t, n, c)
	}
	waitRoutes(t, a, devs(a.Nodes...), 15*time.Second, "every node advertised")
	watch := watchRoutes(t, a)

	// The report check: nothing moves, status and metrics say so.
	os.Remove(reportOK)
	waitStatus(t, n1, 2*time.Second, "the report check failing in status", func(st status.Document) bool {
		cs := serviceNamed(st, "dns").Checks
		return len(cs) == 3 && !cs[2].OK && cs[2].OnFail == "report"
	})
	if got := metric(t, n1, "anycast_watchdog_check_up", `on_fail="report"`); got != 0 {
		t.Errorf("anycast_watchdog_check_up of the report check: %v", got)
	}
	time.Sleep(labInterval * 2)
	if s := serviceNamed(fullStatusOf(t, n1), "dns"); s.State != status.Up || where(n1) != "lo" {
		t.Errorf("a failing report check moved node 1: %s on %q", s.State, where(n1))
	}
	waitLog(t, n1.Watchdog, time.Second, `msg="report check failing (it moves no address)"`)

	// The degrade check: node 1 to last resort, the router to the others.
	os.Remove(degradeOK)
	took := waitRoutes(t, a, devs(a.Nodes[1:]...), withdrawBound, "the router leaves the degraded node")
	st := waitStatus(t, n1, time.Second, "node 1 degraded", func(st status.Document) bool { return serviceNamed(st, "dns").State == status.Degraded })
	if w := where(n1); w != lab.LastResortDev {
		t.Errorf("degraded node 1 holds its prefixes on %q", w)
	}
	t.Logf("degraded: the router left node 1 %s after its degrade check began failing; status: %s", took.Round(time.Millisecond), serviceNamed(st, "dns").Reason)

	os.WriteFile(degradeOK, nil, 0o644)
	back := waitRoutes(t, a, devs(a.Nodes...), labInterval+labRise*labFast+time.Second, "node 1 back at normal metric")
	t.Logf("the router took node 1 back %s after its degrade check passed again", back.Round(time.Millisecond))
	samples, gaps := watch.end(t)
	if len(gaps) > 0 {
		t.Fatalf("the router lacked a route %d times in %d samples:\n%s", len(gaps), samples, strings.Join(gaps, "\n"))
	}
}
