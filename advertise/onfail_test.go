package advertise

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// on_fail: a degrade check that falls holds a passing service at last
// resort (half a withdrawal's penalty) and back on lo when it rises; a
// report check moves nothing but is shown and logged; without a
// last-resort interface degrading is unavailable and says so.
func TestDegradeAndReportChecks(t *testing.T) {
	withClasses := func(c *config.Config) *config.Config {
		svc := &c.Services[0]
		svc.Checks = append(svc.Checks,
			config.Check{Type: "tcp", Address: "degrade", Timeout: 15 * time.Millisecond, OnFail: config.OnFailDegrade},
			config.Check{Type: "tcp", Address: "report", Timeout: 15 * time.Millisecond, OnFail: config.OnFailReport})
		svc.Damping = shortDamping
		return c
	}
	synctest.Test(t, func(t *testing.T) {
		w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
		for _, name := range []string{"degrade", "report"} {
			w.checks[name] = &switchCheck{}
			w.checks[name].healthy.Store(true)
		}
		w.others(normalPeer)
		c := withClasses(withChecks(cfgOf(service("dns", "192.0.2.53/32"))))
		c.FRR.Verify = true
		c.StateDir = t.TempDir()
		if err := w.sup.Start(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.sup.Stop(context.Background(), config.OnExitKeep) })
		w.settle()

		w.checks["report"].healthy.Store(false)
		w.advance(time.Second)
		st := w.service("dns")
		if st.State != status.Up || w.where() != "lo" || st.Checks[2].OK || st.Checks[2].OnFail != "report" {
			t.Fatalf("a failing report check: %s on %s, checks %+v", st.State, w.where(), st.Checks)
		}
		if n := strings.Count(w.logText(), `msg="report check failing (it moves no address)"`); n != 1 {
			t.Errorf("the report check's failure logged %d times, want once:\n%s", n, w.logText())
		}

		w.checks["degrade"].healthy.Store(false)
		w.until("degraded", func() bool { return w.state("dns") == status.Degraded })
		w.settle()
		st = w.service("dns")
		if w.where() != "last resort" || !strings.Contains(st.Reason, "degraded: 2 consecutive failing rounds of its degrade checks (fall 2)") || st.Damping.Penalty < 490 || st.Damping.Penalty > 500 {
			t.Errorf("degraded: on %s, %q, damping %+v", w.where(), st.Reason, st.Damping)
		}
		w.checks["degrade"].healthy.Store(true)
		w.until("back on lo", func() bool { return w.where() == "lo" })
		if st := w.service("dns"); st.State != status.Up || !strings.Contains(st.Reason, "degrade checks pass again") {
			t.Errorf("after the degrade checks pass: %s, %q", st.State, st.Reason)
		}
		// The withdraw check still withdraws.
		w.checks["dns"].healthy.Store(false)
		w.until("withdrawn", func() bool { return w.where() == "absent" })
	})
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true, "degrade": false, "report": true})
		c := withClasses(withChecks(cfgOf(service("dns", "192.0.2.53/32"))))
		c.StateDir = t.TempDir()
		if err := w.sup.Start(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.sup.Stop(context.Background(), config.OnExitKeep) })
		w.until("degraded", func() bool { return w.state("dns") == status.Degraded })
		if st := w.service("dns"); !w.iface.has("192.0.2.53/32") || !strings.Contains(st.Reason, "degrading is unavailable") {
			t.Errorf("degraded without a last-resort interface: present %v, %q", w.iface.has("192.0.2.53/32"), st.Reason)
		}
	})
}

// A round's verdict per on_fail class, over every combination of a
// withdraw, a degrade and a report check passing, failing or starved:
// each class is judged by its own checks alone.
func TestClassVerdict(t *testing.T) {
	outcomes := map[string]error{"pass": nil, "fail": errors.New("refused"), "starved": fmt.Errorf("check: %w", &checker.Starved{Running: 8})}
	names := []string{"pass", "fail", "starved"}
	for _, w := range names {
		for _, d := range names {
			for _, r := range names {
				results := []CheckResult{{Check: "w", Err: outcomes[w]}, // OnFail "": withdraw
					{Check: "d", OnFail: config.OnFailDegrade, Err: outcomes[d]}, {Check: "r", OnFail: config.OnFailReport, Err: outcomes[r]}}
				for class, own := range map[string]string{config.OnFailWithdraw: w, config.OnFailDegrade: d, config.OnFailReport: r} {
					failed, decided := classVerdict(results, class)
					wantFailed, wantDecided := 0, own != "starved"
					if own == "fail" {
						wantFailed = 1
					}
					if len(failed) != wantFailed || decided != wantDecided {
						t.Errorf("withdraw %s, degrade %s, report %s: the %s class: %d failed, decided %v; want %d, %v",
							w, d, r, class, len(failed), decided, wantFailed, wantDecided)
					}
				}
			}
		}
	}
}

// The degrade checks rise and fall at the fast interval, as the others do.
func TestDegradeChecksUseTheFastInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true, "degrade": true})
		c := withChecks(cfgOf(service("dns", "192.0.2.53/32")))
		c.Services[0].Checks = append(c.Services[0].Checks,
			config.Check{Type: "tcp", Address: "degrade", Timeout: 15 * time.Millisecond, OnFail: config.OnFailDegrade})
		c.StateDir = t.TempDir()
		if err := w.sup.Start(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.sup.Stop(context.Background(), config.OnExitKeep) })
		w.settle()
		w.nextRound()
		w.checks["degrade"].healthy.Store(false)
		var failing []Round
		for len(failing) < 2 {
			if r := w.nextRound(); r.Results[1].Err != nil {
				failing = append(failing, r)
			}
		}
		if gap := failing[1].Scheduled.Sub(failing[0].Scheduled); gap != 5*time.Millisecond {
			t.Errorf("the second failing round of the degrade check came %s after the first, want the fast interval 5ms", gap)
		}
	})
}
