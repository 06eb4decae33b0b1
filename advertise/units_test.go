package advertise

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

var (
	unitRunning = status.Unit{Name: "unbound.service", LoadState: "loaded", ActiveState: "active", SubState: "running", Watched: true}
	unitCrashed = status.Unit{Name: "unbound.service", LoadState: "loaded", ActiveState: "failed", SubState: "failed", Result: "signal SEGV", Watched: true}
)

// unitWorld is a world whose service dns watches unbound.service, with
// checks that pass and an interval of 10 s, so that only the unit's events
// can explain a fast move.
func unitWorld(t *testing.T) *world {
	w := newWorld(t, newFakeInterface(), map[string]bool{"dns": true, "web": true})
	c := cfgOf(service("dns", "192.0.2.53/32"), service("web", "192.0.2.80/32"))
	c.Services[0].Interval, c.Services[0].Units = 10*time.Second, []string{"unbound.service"}
	c.Services[0].Damping = shortDamping
	w.start(c)
	w.until("both up", func() bool { return w.state("dns") == status.Up && w.state("web") == status.Up })
	w.sup.SetUnit(unitRunning)
	w.settle()
	return w
}

// A watched unit that stops takes its service down at once, whatever its
// checks say, through the same verdict as failing rounds (the log line,
// the reason, damping); it stays down while the unit is stopped; when the
// unit runs again a round starts at once and the service rises through
// its checks at the fast interval.
func TestUnitStopTakesTheServiceDownAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := unitWorld(t)
		start := time.Now()
		w.sup.SetUnit(unitCrashed)
		w.settle()
		if took := time.Since(start); w.iface.has("192.0.2.53/32") || took > 0 {
			t.Fatalf("unit crashed: 192.0.2.53/32 present %v after %s", w.iface.has("192.0.2.53/32"), took)
		}
		st := w.service("dns")
		if st.State != status.Down || st.Reason != "unit unbound.service failed (signal SEGV)" || st.Fails != 2 {
			t.Errorf("status after the crash: %s %q fails %d", st.State, st.Reason, st.Fails)
		}
		if len(st.Units) != 1 || st.Units[0] != unitCrashed {
			t.Errorf("status units: %+v", st.Units)
		}
		if st.Damping == nil || st.Damping.Withdrawals != 1 {
			t.Errorf("the unit's withdrawal was not counted for damping: %+v", st.Damping)
		}
		for _, want := range []string{`level=warning msg="watched unit stopped: the service is down at once" prefixes=192.0.2.53/32 service=dns unit=unbound.service unit_result="signal SEGV" unit_state="failed (failed)"`,
			`level=warning msg="service down" from=up prefixes=192.0.2.53/32 reason="unit unbound.service failed (signal SEGV)" service=dns to=down unit=unbound.service`} {
			if !strings.Contains(w.logText(), want) {
				t.Errorf("log lacks\n%s\n%s", want, w.logText())
			}
		}
		var event *Round
		for len(w.rounds) > 0 {
			if r := <-w.rounds; r.Unit != nil {
				event = &r
			}
		}
		if event == nil || event.Service != "dns" || event.From != status.Up || event.To != status.Down || !event.Withdrawn || event.Unit.Name != "unbound.service" {
			t.Errorf("OnRound was told of the unit's verdict as %+v, want dns up → down, withdrawn, by unbound.service", event)
		}
		if w.state("web") != status.Up || !w.iface.has("192.0.2.80/32") {
			t.Errorf("another service moved: web %s", w.state("web"))
		}

		// Its checks pass, rounds come: it stays down while the unit is stopped.
		w.advance(25 * time.Second)
		if st := w.service("dns"); st.State != status.Down || w.iface.has("192.0.2.53/32") {
			t.Fatalf("rounds while the unit is stopped: %s, present %v", st.State, w.iface.has("192.0.2.53/32"))
		}

		// Running again: a round at once, then rise at the fast interval.
		restarted := time.Now()
		w.sup.SetUnit(unitRunning)
		w.settle()
		if st := w.service("dns"); st.State != status.Rising || st.Passes != 1 {
			t.Fatalf("the unit runs again: %s with %d passes, want rising from a round at once", st.State, st.Passes)
		}
		w.until("up", func() bool { return w.iface.has("192.0.2.53/32") })
		if took, want := time.Since(restarted), 2*5*time.Millisecond; took > want {
			t.Errorf("back after %s, want within rise-1 fast intervals (%s)", took, want)
		}
	})
}

// What a unit's state does to a service whose checks pass, from each
// state it can be heard in.
func TestUnitStates(t *testing.T) {
	for _, tt := range []struct {
		name string
		unit status.Unit
		down bool
	}{
		{"running", unitRunning, false},
		{"reloading", status.Unit{Name: "unbound.service", LoadState: "loaded", ActiveState: "reloading", SubState: "reload", Watched: true}, false},
		{"failed", unitCrashed, true},
		{"stopped by hand", status.Unit{Name: "unbound.service", LoadState: "loaded", ActiveState: "inactive", SubState: "dead", Watched: true}, true},
		{"stopping", status.Unit{Name: "unbound.service", LoadState: "loaded", ActiveState: "deactivating", SubState: "stop-sigterm", Watched: true}, true},
		{"restarting after a crash", status.Unit{Name: "unbound.service", LoadState: "loaded", ActiveState: "activating", SubState: "auto-restart", Result: "signal KILL", Watched: true}, true},
		{"not known to systemd", status.Unit{Name: "unbound.service", LoadState: "not-found", ActiveState: "inactive", SubState: "dead", Watched: true}, false},
		{"the bus lost", status.Unit{Name: "unbound.service", LoadState: "loaded", ActiveState: "failed", SubState: "failed", Error: "system bus: connection lost"}, false},
		{"another service's unit", status.Unit{Name: "nginx.service", LoadState: "loaded", ActiveState: "failed", SubState: "failed", Watched: true}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := unitWorld(t)
				w.sup.SetUnit(tt.unit)
				w.advance(time.Second)
				if down := !w.iface.has("192.0.2.53/32"); down != tt.down {
					t.Errorf("%s: withdrawn %v, want %v; status %+v", tt.unit, down, tt.down, w.service("dns"))
				}
			})
		})
	}
}

// The bus lost while the unit is stopped: the checks alone decide again,
// and they pass.
func TestUnitWatchLostHandsBackToTheChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := unitWorld(t)
		w.sup.SetUnit(unitCrashed)
		w.settle()
		lost := unitCrashed
		lost.Watched, lost.Error = false, "system bus: connection lost"
		w.sup.SetUnit(lost)
		w.until("back on lo", func() bool { return w.iface.has("192.0.2.53/32") })
		if st := w.service("dns"); st.State != status.Up || st.Units[0].Watched || st.Units[0].Error == "" {
			t.Errorf("after the watch was lost: %s, units %+v", st.State, st.Units)
		}
	})
}

// A drained service hears its unit stop and stays drained; undrained
// while the unit is stopped, it does not rise.
func TestUnitStopWhileDrained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := unitWorld(t)
		if _, err := w.sup.Drain(context.Background(), []string{"dns"}, "maintenance", "test", time.Time{}, true); err != nil {
			t.Fatal(err)
		}
		w.sup.SetUnit(unitCrashed)
		w.advance(time.Second)
		if st := w.service("dns"); st.State != status.Drained || w.iface.has("192.0.2.53/32") {
			t.Fatalf("drained, the unit crashed: %s", st.State)
		}
		if _, err := w.sup.Undrain(context.Background(), []string{"dns"}, "test"); err != nil {
			t.Fatal(err)
		}
		w.advance(30 * time.Second)
		if st := w.service("dns"); st.State != status.Down || w.iface.has("192.0.2.53/32") {
			t.Errorf("undrained with the unit stopped: %s, present %v", st.State, w.iface.has("192.0.2.53/32"))
		}
	})
}

// Every node's unit stopping still fails open: with nobody else at normal
// metric the prefix goes to last resort, not away.
func TestUnitStopFailsOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
		c := cfgOf(service("dns", "192.0.2.53/32"))
		c.Services[0].Interval, c.Services[0].Units = 10*time.Second, []string{"unbound.service"}
		c.FRR.Verify = true
		w.world.start(c)
		w.sup.SetUnit(unitRunning)
		w.sup.SetUnit(unitCrashed)
		w.until("at last resort", func() bool { return w.where() == "last resort" })
		w.advance(5 * time.Second)
		if st := w.service("dns"); w.where() != "last resort" || st.State != status.LastResort {
			t.Errorf("every node's unit stopped: on %s, %s %q", w.where(), st.State, st.Reason)
		}
	})
}

// A reload keeps the states of the units the service still names.
func TestReloadKeepsUnitStates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := unitWorld(t)
		w.sup.SetUnit(unitCrashed)
		w.settle()
		c, _ := w.sup.Config()
		next := *c
		next.Services = append([]config.Service(nil), c.Services...)
		next.Services[0].Rise = 4
		if err := w.reload(&next); err != nil {
			t.Fatal(err)
		}
		w.advance(25 * time.Second)
		if st := w.service("dns"); st.State != status.Down || len(st.Units) != 1 || st.Units[0] != unitCrashed {
			t.Errorf("after a reload: %s, units %+v", st.State, st.Units)
		}
	})
}
