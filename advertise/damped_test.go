package advertise

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/damping"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// shortDamping is the integration lab's: three withdrawals in a few
// seconds damp; 20 s half-life.
var shortDamping = config.Damping{Mode: damping.ModeSuppress, Penalty: 1000, HalfLife: 20 * time.Second, Suppress: 2000, Reuse: 1000, MaxSuppress: time.Minute}

// startDamped starts a fail-open world whose service dns is damped as
// given, another router advertising its prefix at normal metric.
func startDamped(t *testing.T, d config.Damping, stateDir string) *failOpenWorld {
	w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
	w.others(normalPeer)
	c := cfgOf(service("dns", "192.0.2.53/32"))
	c.Services[0].Damping = d
	c.FRR.Verify = true
	c.StateDir = stateDir
	w.world.start(c)
	return w
}

// dampingMode is shortDamping in another mode.
func dampingMode(mode string) config.Damping {
	d := shortDamping
	d.Mode = mode
	return d
}

// flaps flaps the service n times.
func (w *failOpenWorld) flaps(n int) {
	w.t.Helper()
	for range n {
		w.flap()
	}
}

// flap fails the service until it is withdrawn, then lets it pass until it
// is back (up, or damped).
func (w *failOpenWorld) flap() {
	w.t.Helper()
	w.checks["dns"].healthy.Store(false)
	w.until("withdrawn", func() bool { s := w.state("dns"); return s == status.Down || s == status.LastResort })
	w.checks["dns"].healthy.Store(true)
	w.until("passing again", func() bool { s := w.state("dns"); return s == status.Up || s == status.Damped })
}

func TestFlappingServiceIsHeldAtLastResortAndReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startDamped(t, shortDamping, t.TempDir())
		for i := 1; i <= 2; i++ {
			w.flap()
			if st := w.service("dns"); st.State != status.Up || w.where() != "lo" || st.Damping.Withdrawals != i || st.Damping.Damped {
				t.Fatalf("after %d withdrawals: %s on %s, damping %+v; two never damp", i, st.State, w.where(), st.Damping)
			}
		}
		w.flap()
		st := w.service("dns")
		if st.State != status.Damped || w.where() != "last resort" {
			t.Fatalf("after the third withdrawal: %s on %s, want damped at last resort", st.State, w.where())
		}
		d := st.Damping
		if !d.Damped || d.Withdrawals != 3 || d.Penalty < 2900 || d.Penalty > 3000 || d.ReleaseAt.IsZero() {
			t.Errorf("damping %+v", d)
		}
		if !strings.Contains(st.Reason, "damped: penalty 29") || !strings.Contains(st.Reason, "held at last resort until its penalty decays below reuse 1000") {
			t.Errorf("reason %q", st.Reason)
		}
		if log := w.logText(); !strings.Contains(log, `msg="service damped: flapping; held at last resort while its checks pass, until released"`) ||
			!strings.Contains(log, "withdrawals=3") {
			t.Errorf("no log line for the damping:\n%s", log)
		}

		// Held while it passes, until the release time it announced, and
		// back on lo then, not at a later round.
		announced := d.ReleaseAt
		time.Sleep(announced.Sub(w.clock.Wall()) - 10*time.Millisecond)
		w.settle()
		if w.where() != "last resort" || w.state("dns") != status.Damped {
			t.Fatalf("10 ms before the release: %s on %s", w.state("dns"), w.where())
		}
		w.until("released", func() bool { return w.where() == "lo" })
		if late := w.clock.Wall().Sub(announced); late < 0 || late > 5*time.Millisecond {
			t.Errorf("released %s after the announced %s", late, announced)
		}
		if st := w.service("dns"); st.State != status.Up || !strings.Contains(st.Reason, "released from damping") {
			t.Errorf("after the release: %s, %q", st.State, st.Reason)
		}
		if !strings.Contains(w.logText(), `msg="service released from damping: its penalty decayed below reuse"`) {
			t.Errorf("no log line for the release:\n%s", w.logText())
		}
	})
}

// A damped service that fails again is withdrawn as any other, and its
// penalty grows.
func TestDampedServiceThatFailsIsWithdrawn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startDamped(t, shortDamping, t.TempDir())
		w.flaps(3)
		before := w.service("dns").Damping.Penalty
		w.checks["dns"].healthy.Store(false)
		w.until("withdrawn from last resort", func() bool { return w.where() == "absent" })
		if st := w.service("dns"); st.State != status.Down || st.Damping.Withdrawals != 4 || st.Damping.Penalty <= before {
			t.Errorf("a damped service failing: %s, damping %+v (penalty before %.0f)", st.State, st.Damping, before)
		}
	})
}

func TestUndampReleasesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		w := startDamped(t, shortDamping, dir)
		w.flaps(3)
		done, err := w.sup.Undamp(context.Background(), []string{"dns"}, "uid 0")
		if err != nil || len(done) != 1 {
			t.Fatalf("Undamp: %v, %v", done, err)
		}
		// Back when Undamp returns, not at a later round; the file says so.
		if w.where() != "lo" {
			t.Errorf("on %s when Undamp returned", w.where())
		}
		if data, err := os.ReadFile(filepath.Join(dir, dampingFile)); err != nil || strings.Contains(string(data), `"dns"`) {
			t.Errorf("%s after undamp: %s (%v)", dampingFile, data, err)
		}
		w.settle()
		st := w.service("dns")
		if w.where() != "lo" || st.State != status.Up || st.Damping.Penalty != 0 || st.Damping.Withdrawals != 0 {
			t.Errorf("after undamp: %s on %s, damping %+v", st.State, w.where(), st.Damping)
		}
		if !strings.Contains(w.logText(), `msg="damping penalty cleared (undamp)" by="uid 0"`) {
			t.Errorf("no log line for the undamp:\n%s", w.logText())
		}
		if _, err := w.sup.Undamp(context.Background(), []string{"nope"}, "uid 0"); err == nil || err.Error() != "no such service: nope" {
			t.Errorf("undamp of an unknown service: %v", err)
		}
	})
}

// The penalty is kept in state_dir: a restarted daemon holds the service
// as before, once it has risen.
func TestDampingSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		w := startDamped(t, shortDamping, dir)
		w.flaps(3)
		w.sup.Stop(context.Background(), config.OnExitKeep)
	})
	if data, err := os.ReadFile(filepath.Join(dir, dampingFile)); err != nil || !strings.Contains(string(data), `"damped": true`) {
		t.Fatalf("%s: %s, %v", dampingFile, data, err)
	}
	synctest.Test(t, func(t *testing.T) {
		w := startDamped(t, shortDamping, dir)
		// The prefix was left on lo by the fake interface of a new world:
		// the service starts up, and is held at once.
		w.until("held", func() bool { return w.where() == "last resort" })
		if st := w.service("dns"); st.State != status.Damped || st.Damping.Withdrawals != 3 {
			t.Errorf("after a restart: %s, damping %+v", st.State, st.Damping)
		}
	})
}

func TestObserveModeNeverHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startDamped(t, dampingMode(damping.ModeObserve), t.TempDir())
		w.flaps(3)
		st := w.service("dns")
		if st.State != status.Up || w.where() != "lo" || !st.Damping.Damped || st.Damping.Mode != "observe" {
			t.Errorf("observe: %s on %s, damping %+v", st.State, w.where(), st.Damping)
		}
		if !strings.Contains(w.logText(), `msg="service would be damped (damping mode observe: not held)"`) {
			t.Errorf("no log line:\n%s", w.logText())
		}
	})
}

// Without a last-resort interface a damped service stays absent while it
// passes (status says why); mode off keeps no penalty at all.
func TestDampedWithoutLastResortAndModeOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &failOpenWorld{world: newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true})}
		w.lr = newFakeInterface()
		c := cfgOf(service("dns", "192.0.2.53/32"))
		c.Services[0].Damping = shortDamping
		w.world.start(c)
		w.flaps(3)
		st := w.service("dns")
		if st.State != status.Damped || w.iface.has("192.0.2.53/32") || !strings.Contains(st.Reason, "withdrawn (no last-resort interface") {
			t.Errorf("damped without a last-resort interface: %s, present %v, %q", st.State, w.iface.has("192.0.2.53/32"), st.Reason)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		w := startDamped(t, dampingMode(damping.ModeOff), t.TempDir())
		w.flaps(4)
		if st := w.service("dns"); st.State != status.Up || st.Damping != nil {
			t.Errorf("mode off: %s, damping %+v", st.State, st.Damping)
		}
	})
}

// Drains and reloads never add to the penalty; a reload keeps it.
func TestDrainsAndReloadsAddNoPenalty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startDamped(t, shortDamping, t.TempDir())
		w.flap()
		for range 3 {
			if _, err := w.sup.Drain(context.Background(), []string{"dns"}, "test", "uid 0", time.Time{}, true); err != nil {
				t.Fatal(err)
			}
			if _, err := w.sup.Undrain(context.Background(), []string{"dns"}, "uid 0"); err != nil {
				t.Fatal(err)
			}
			w.until("up again", func() bool { return w.state("dns") == status.Up })
		}
		c := cfgOf(service("dns", "192.0.2.53/32"))
		c.Services[0].Damping = shortDamping
		c.Services[0].Rise = 2 // a changed service: its loop is replaced
		c.FRR.Verify = true
		if err := w.reload(withChecks(c)); err != nil {
			t.Fatal(err)
		}
		w.settle()
		if st := w.service("dns"); st.Damping.Withdrawals != 1 || st.Damping.Damped {
			t.Errorf("after three drains and a reload: damping %+v, want the one withdrawal", st.Damping)
		}
	})
}

// A reload keeps the penalty and applies new parameters from then on:
// observe to suppress holds a service that would be damped; a higher reuse
// releases it at once; mode off forgets it.
func TestReloadAppliesNewDampingParameters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startDamped(t, dampingMode(damping.ModeObserve), t.TempDir())
		w.flaps(3)
		reload := func(d config.Damping) {
			t.Helper()
			c := cfgOf(service("dns", "192.0.2.53/32"))
			c.Services[0].Damping = d
			c.FRR.Verify = true
			if err := w.reload(withChecks(c)); err != nil {
				t.Fatal(err)
			}
			w.until("a round after the reload", func() bool { return w.service("dns").Damping == nil || w.service("dns").Damping.Mode == d.Mode })
			w.nextRound()
			w.settle()
		}
		reload(shortDamping)
		if st := w.service("dns"); st.State != status.Damped || w.where() != "last resort" || !strings.Contains(st.Reason, "damped: penalty") {
			t.Errorf("observe → suppress: %s on %s, %q", st.State, w.where(), st.Reason)
		}
		higher := shortDamping
		higher.Reuse, higher.Suppress = 3500, 4000
		reload(higher)
		if st := w.service("dns"); st.State != status.Up || w.where() != "lo" || st.Damping.Withdrawals != 3 || st.Damping.Damped {
			t.Errorf("reuse above the penalty: %s on %s, damping %+v", st.State, w.where(), st.Damping)
		}
		reload(dampingMode(damping.ModeOff))
		if st := w.service("dns"); st.Damping != nil {
			t.Errorf("mode off keeps %+v", st.Damping)
		}
	})
}
