package advertise

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

func TestHealthyServiceAlreadyAdvertisedIsNeverTouched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32", "2001:db8::53/128"), map[string]bool{"dns": true})
		w.start(cfgOf(service("dns", "192.0.2.53/32", "2001:db8::53/128")))
		if got := w.state("dns"); got != status.Up {
			t.Fatalf("state %s, want up from the first moment", got)
		}
		for i := 0; i < 10; i++ {
			w.nextRound()
		}
		if h := w.iface.history(); len(h) != 0 {
			t.Errorf("a healthy advertised service was changed: %v", h)
		}
	})
}

func TestAbsentServiceRisesThenFallsThenRises(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface(), map[string]bool{"dns": true})
		w.start(cfgOf(service("dns", "192.0.2.53/32", "2001:db8::53/128")))
		w.until("both prefixes are added", func() bool { return w.iface.has("192.0.2.53/32") && w.iface.has("2001:db8::53/128") })

		w.checks["dns"].healthy.Store(false)
		w.until("both prefixes are removed", func() bool { return !w.iface.has("192.0.2.53/32") && !w.iface.has("2001:db8::53/128") })
		if got := w.state("dns"); got != status.Down {
			t.Errorf("state %s after withdrawal", got)
		}
		w.checks["dns"].healthy.Store(true)
		w.until("prefixes return", func() bool { return w.iface.has("192.0.2.53/32") && w.iface.has("2001:db8::53/128") })

		want := []string{"add 192.0.2.53/32", "add 2001:db8::53/128", "del 192.0.2.53/32", "del 2001:db8::53/128",
			"add 192.0.2.53/32", "add 2001:db8::53/128"}
		if got := w.iface.history(); !reflect.DeepEqual(got, want) {
			t.Errorf("changes %v, want %v", got, want)
		}
		// One line per state change, naming the check and its error.
		log := w.logText()
		for _, s := range []string{
			`level=info msg="service rising" from=down prefixes="192.0.2.53/32,2001:db8::53/128" reason="passing round 1 of rise 3" service=dns to=rising`,
			`level=info msg="service up" from=rising prefixes="192.0.2.53/32,2001:db8::53/128" reason="3 consecutive passing rounds (rise 3)" service=dns to=up`,
			`level=info msg="service falling" check="tcp dns" error="connection refused" from=up prefixes="192.0.2.53/32,2001:db8::53/128" reason="failing round 1 of fall 2" service=dns to=falling`,
			`level=warning msg="service down" check="tcp dns" error="connection refused" from=falling prefixes="192.0.2.53/32,2001:db8::53/128" reason="2 consecutive failing rounds (fall 2)" service=dns to=down`,
			`level=info msg="removed address" interface=lo prefix=192.0.2.53/32 reason="service down: 2 consecutive failing rounds (fall 2)" service=dns`,
		} {
			if !strings.Contains(log, s) {
				t.Errorf("log lacks %s; log:\n%s", s, log)
			}
		}
	})
}

func TestWithdrawAfterFallRoundsAtFastInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startAdvertised(t, 3)
		w.checks["dns"].healthy.Store(false)
		var rounds []Round
		for len(rounds) == 0 || rounds[len(rounds)-1].To != status.Down {
			r := w.nextRound()
			if r.Results[0].Err != nil {
				rounds = append(rounds, r)
			}
		}
		if len(rounds) != 3 {
			t.Fatalf("down after %d failing rounds, want 3", len(rounds))
		}
		// After the first failure the service is falling: each next round is
		// due one fast interval after the last was due.
		for i := 1; i < len(rounds); i++ {
			if gap := rounds[i].Scheduled.Sub(rounds[i-1].Scheduled); gap != 5*time.Millisecond {
				t.Errorf("round %d was due %s after the previous, want the fast interval 5ms", i, gap)
			}
		}
	})
}

func TestRoundsNeverOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface(), map[string]bool{"slow": true})
		w.checks["slow"].delay = 12 * time.Millisecond // most of the 15ms timeout, close to the 20ms interval
		s := service("slow", "192.0.2.80/32")
		s.Interval, s.FastInterval = 15*time.Millisecond, 15*time.Millisecond
		w.start(cfgOf(s))
		for i := 0; i < 10; i++ {
			w.nextRound()
		}
		if n := w.checks["slow"].overlaps.Load(); n != 0 {
			t.Errorf("%d rounds overlapped", n)
		}
	})
}

func TestAddressChangedByHandIsPutBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true, "web": false})
		w.start(cfgOf(service("dns", "192.0.2.53/32"), service("web", "203.0.113.80/32")))

		w.iface.byHand("192.0.2.53/32", false)
		w.until("the removed address is back", func() bool { return w.iface.has("192.0.2.53/32") })
		w.iface.byHand("203.0.113.80/32", true)
		w.until("the added address is gone", func() bool { return !w.iface.has("203.0.113.80/32") })
		if !strings.Contains(w.logText(), `msg="address changed outside anycast-watchdog; putting it back"`) {
			t.Errorf("no log line for the drift:\n%s", w.logText())
		}
	})
}

func TestFailingIPIsRetriedAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true})
		w.start(cfgOf(service("dns", "192.0.2.53/32")))
		w.iface.setFail(errors.New("ip addr del: exit status 2: RTNETLINK answers: Operation not permitted"))
		w.checks["dns"].healthy.Store(false)
		w.until("the service is down", func() bool { return w.state("dns") == status.Down })
		st := w.sup.Status()[0].Prefixes[0]
		if st.Error == "" || !st.Present || st.Wanted {
			t.Errorf("prefix status %+v, want present, not wanted, with the error", st)
		}
		w.iface.setFail(nil)
		w.until("the retry removes it", func() bool { return !w.iface.has("192.0.2.53/32") })
		log := w.logText()
		if n := strings.Count(log, "cannot change address; will retry"); n != 1 {
			t.Errorf("the same failure was logged %d times, want once:\n%s", n, log)
		}
		if !strings.Contains(log, "address change works again") {
			t.Errorf("no recovery line:\n%s", log)
		}
	})
}

// A failed withdrawal is retried even while the interface cannot be read.
func TestFailedChangeIsRetriedWhileTheInterfaceIsUnreadable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true})
		w.start(cfgOf(service("dns", "192.0.2.53/32")))
		w.iface.mu.Lock()
		w.iface.fail = errors.New("ip addr del: exit status 2: RTNETLINK answers: Operation not permitted")
		w.iface.showErr = errors.New("ip -j addr show: unexpected JSON")
		w.iface.mu.Unlock()
		w.checks["dns"].healthy.Store(false)
		w.until("the service is down", func() bool { return w.state("dns") == status.Down })
		w.iface.setFail(nil) // del works again; reading still does not
		w.until("the retry removes it", func() bool { return !w.iface.has("192.0.2.53/32") })
		if log := w.logText(); !strings.Contains(log, "cannot read the interface; only failed changes are retried") {
			t.Errorf("the unreadable interface was not logged:\n%s", log)
		}
	})
}

func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32", "203.0.113.80/32"), map[string]bool{"dns": true, "web": true, "ntp": true})
		dns, web := service("dns", "192.0.2.53/32"), service("web", "203.0.113.80/32")
		w.start(cfgOf(dns, web))
		w.until("dns has a streak", func() bool { return w.sup.Status()[0].Passes >= 3 })
		before := w.sup.Status()[0]

		// dns unchanged, web removed, ntp added.
		if err := w.reload(withChecks(cfgOf(service("dns", "192.0.2.53/32"), service("ntp", "198.51.100.123/32")))); err != nil {
			t.Fatal(err)
		}
		after := w.sup.Status()[0]
		if after.Name != "dns" || after.State != status.Up || after.Since != before.Since || after.Passes < before.Passes {
			t.Errorf("unchanged service lost its state: before %+v after %+v", before, after)
		}
		if w.iface.has("203.0.113.80/32") {
			t.Error("web's address is still there after the reload returned")
		}
		w.settle()
		w.until("ntp rises", func() bool { return w.iface.has("198.51.100.123/32") })
		for _, c := range w.iface.history() {
			if strings.Contains(c, "192.0.2.53") {
				t.Errorf("reload touched the unchanged service: %s", c)
			}
		}
	})
}

// A loop that ends, replaced by a reload or at stop, closes its checks
// (a DNS check keeps a socket between rounds); a loop left alone does not.
func TestEndedLoopsCloseTheirChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32", "203.0.113.80/32"), map[string]bool{"dns": true, "web": true})
		dns, web := service("dns", "192.0.2.53/32"), service("web", "203.0.113.80/32")
		w.start(cfgOf(dns, web))
		w.settle()
		changed := service("web", "203.0.113.80/32")
		changed.Rise++
		if err := w.reload(withChecks(cfgOf(dns, changed))); err != nil {
			t.Fatal(err)
		}
		if d, wb := w.checks["dns"].closes.Load(), w.checks["web"].closes.Load(); d != 0 || wb != 1 {
			t.Errorf("after reloading web: closes dns %d, web %d; want 0 and 1", d, wb)
		}
		w.sup.Stop(context.Background(), config.OnExitKeep)
		if d, wb := w.checks["dns"].closes.Load(), w.checks["web"].closes.Load(); d != 1 || wb != 2 {
			t.Errorf("after stop: closes dns %d, web %d; want 1 and 2", d, wb)
		}
	})
}

func TestReloadOfChangedServiceKeepsItAdvertised(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true})
		w.start(cfgOf(service("dns", "192.0.2.53/32")))
		changed := service("dns", "192.0.2.53/32", "2001:db8::53/128")
		changed.Rise = 5
		if err := w.reload(withChecks(cfgOf(changed))); err != nil {
			t.Fatal(err)
		}
		if st := w.state("dns"); st != status.Up {
			t.Errorf("changed service is %s, want still up", st)
		}
		if !w.iface.has("2001:db8::53/128") {
			t.Error("the new prefix is not there after the reload returned")
		}
		if h := w.iface.history(); !reflect.DeepEqual(h, []string{"add 2001:db8::53/128"}) {
			t.Errorf("changes %v, want only the new prefix added", h)
		}
	})
}

func TestFailedReloadChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true})
		w.start(cfgOf(service("dns", "192.0.2.53/32")))
		bad := withChecks(cfgOf(service("dns", "192.0.2.53/32"), service("missing-fake", "192.0.2.54/32")))
		bad.Services[1].Checks[0].Address = "no-such-fake"
		if err := w.reload(bad); err == nil {
			t.Fatal("reload with an unbuildable check succeeded")
		}
		moved := withChecks(cfgOf(service("dns", "192.0.2.53/32")))
		moved.Interface = "eth0"
		if err := w.reload(moved); err == nil || !strings.Contains(err.Error(), "interface cannot change on reload") {
			t.Fatalf("interface change: %v", err)
		}
		if st := w.sup.Status(); len(st) != 1 || st[0].State != status.Up {
			t.Errorf("status after failed reloads: %+v", st)
		}
	})
}

func TestStop(t *testing.T) {
	for _, tt := range []struct {
		onExit  string
		present bool
	}{{config.OnExitKeep, true}, {config.OnExitWithdraw, false}} {
		t.Run(tt.onExit, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				iface := newFakeInterface("192.0.2.53/32")
				w := newWorld(t, iface, map[string]bool{"dns": true})
				if err := w.sup.Start(context.Background(), withChecks(cfgOf(service("dns", "192.0.2.53/32")))); err != nil {
					t.Fatal(err)
				}
				<-w.sup.Ready()
				w.sup.Stop(context.Background(), tt.onExit)
				if got := iface.has("192.0.2.53/32"); got != tt.present {
					t.Errorf("after stop with %s: present %v", tt.onExit, got)
				}
			})
		})
	}
}

func TestStartFailsWhenInterfaceUnreadable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iface := newFakeInterface()
		iface.showErr = errors.New(`ip -j addr show dev lo: exec: "ip": executable file not found in $PATH`)
		w := newWorld(t, iface, map[string]bool{"dns": true})
		err := w.sup.Start(context.Background(), withChecks(cfgOf(service("dns", "192.0.2.53/32"))))
		if err == nil || !strings.Contains(err.Error(), "read the interface at start") {
			t.Errorf("Start = %v", err)
		}
	})
}

func TestCheckNowAndShutdownMidRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true})
		s := service("dns", "192.0.2.53/32")
		s.Interval, s.Timeout = time.Hour, time.Hour // only RunNow brings a round
		s.Checks[0].Timeout = time.Hour
		w.start(cfgOf(s))
		<-w.rounds
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := w.sup.CheckNow(ctx, "dns")
		if err != nil || len(r.Results) != 1 || r.Results[0].Err != nil || r.To != status.Up {
			t.Fatalf("CheckNow = %+v, %v", r, err)
		}
		if _, err := w.sup.CheckNow(ctx, "nope"); err == nil || err.Error() != `no service "nope"` {
			t.Errorf("CheckNow of an unknown service: %v", err)
		}
		// A round cut short by shutdown must not count as a failure.
		w.checks["dns"].delay = time.Hour
		go w.sup.CheckNow(context.Background(), "dns")
		w.until("the slow round runs", func() bool { return w.checks["dns"].running.Load() == 1 })
		w.sup.Stop(context.Background(), config.OnExitKeep)
		if st := w.sup.Status()[0]; st.Fails != 0 || st.State != status.Up {
			t.Errorf("after shutdown mid-round: %+v", st)
		}
	})
}

// A loop whose round never ends (a probe that ignores its deadline) must
// show as no progress, so that systemd's watchdog restarts the daemon.
func TestProgressReportsAWedgedLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true, "web": false})
		dns := service("dns", "192.0.2.53/32")
		w.start(cfgOf(dns, service("web", "203.0.113.80/32")))
		w.advance(time.Minute)
		if err := w.sup.Progress(); err != nil {
			t.Fatalf("healthy daemon: %v", err)
		}
		w.checks["web"].wedged.Store(true)
		defer w.checks["web"].wedged.Store(false)
		// window: interval 20ms + timeout 15ms + 2s slack; dns keeps going.
		for elapsed := time.Duration(0); elapsed <= 2100*time.Millisecond; elapsed += 100 * time.Millisecond {
			w.advance(100 * time.Millisecond)
			var ran bool
			for len(w.rounds) > 0 {
				if r := <-w.rounds; r.Service == dns.Name {
					ran = true
				}
			}
			if !ran {
				t.Fatalf("dns ran no round in the last 100ms (interval %s)", dns.Interval)
			}
			w.until("web's round hangs", func() bool { return w.checks["web"].running.Load() == 1 })
			if err := w.sup.Progress(); elapsed < 2*time.Second && err != nil {
				t.Fatalf("progress failed %s into the hang: %v", elapsed, err)
			}
		}
		if err := w.sup.Progress(); err == nil || !strings.Contains(err.Error(), `service "web" has completed no round for`) {
			t.Errorf("Progress = %v", err)
		}
	})
}

// No lock is held across ip: while ip hangs in a withdrawal, status (and so
// metrics) answer at once and show the withdrawal under way, and the other
// services keep their rounds.
func TestHungIPBlocksNoStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iface := newFakeInterface("192.0.2.53/32", "203.0.113.80/32")
		w := newWorld(t, iface, map[string]bool{"dns": true, "web": true})
		w.start(cfgOf(service("dns", "192.0.2.53/32"), service("web", "203.0.113.80/32")))
		hang := make(chan struct{})
		iface.mu.Lock()
		iface.hang = hang
		iface.mu.Unlock()
		w.checks["dns"].healthy.Store(false)
		// dns's loop waits for its withdrawal and the worker for ip, so the
		// world never settles: fire timers by hand.
		w.until("dns is down", func() bool { return w.service("dns").State == status.Down })
		answered := make(chan status.Service)
		for i := 0; i < 3; i++ {
			go func() { answered <- w.service("dns") }()
			select {
			case st := <-answered:
				if p := st.Prefixes[0]; p.Wanted || !p.Present {
					t.Errorf("while ip hangs: %+v, want not wanted but still present", p)
				}
			case <-time.After(100 * time.Millisecond):
				t.Fatal("status did not answer within 100ms while ip hangs")
			}
		}
		webRounds := 0
		w.until("web has three more rounds", func() bool {
			for len(w.rounds) > 0 {
				if r := <-w.rounds; r.Service == "web" {
					webRounds++
				}
			}
			return webRounds >= 3
		})
		close(hang)
		w.settle()
		if iface.has("192.0.2.53/32") {
			t.Error("the withdrawal was not carried out once ip answered")
		}
	})
}

// After a start the second round comes within one interval (or one fast
// interval while rising), never an interval plus the service's offset, so
// that the worst-case times of docs/behaviour.md hold from the first round on; from then
// on rounds keep one interval apart.
func TestSecondRoundAfterStartComesWithinAnInterval(t *testing.T) {
	for _, tt := range []struct {
		name    string
		present bool // up at start: the next round is due an interval later
		period  time.Duration
	}{
		{"up at start", true, 20 * time.Millisecond},
		{"rising at start", false, 5 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// Offsets 19.6 ms (near the end of the interval) and 4.4 ms
				// (below the fast interval).
				for _, name := range []string{"c", "dns"} {
					var present []string
					if tt.present {
						present = []string{"192.0.2.53/32"}
					}
					w := newWorld(t, newFakeInterface(present...), map[string]bool{name: true})
					s := service(name, "192.0.2.53/32")
					s.Rise = 10
					w.start(cfgOf(s))
					first := <-w.rounds
					second := w.nextRound()
					third := w.nextRound()
					offset := firstDelay(name, s.Interval)
					want := min(tt.period, offset)
					if offset == 0 {
						want = tt.period
					}
					if gap := second.Scheduled.Sub(first.Scheduled); gap != want {
						t.Errorf("%s (offset %s): second round %s after the first, want %s", name, offset, gap, want)
					}
					if gap := third.Scheduled.Sub(second.Scheduled); gap != tt.period {
						t.Errorf("%s: third round %s after the second, want %s", name, gap, tt.period)
					}
				}
			})
		})
	}
}

// Rounds of services whose fast interval allows it start on the grid
// (roundGrid from the supervisor's start), so that services falling in one
// slot wake the runtime once; the first round runs at once, the second
// comes no later than the offset, the fast rounds keep the fast interval,
// and at rest the service keeps its place in the interval.
func TestRoundsStartOnTheGrid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		names := []string{"dns", "web", "ntp", "c"}
		healthy := map[string]bool{}
		var services []config.Service
		for i, name := range names {
			healthy[name] = true
			s := service(name, fmt.Sprintf("192.0.2.%d/32", 53+i))
			s.Interval, s.FastInterval, s.Timeout = time.Second, 200*time.Millisecond, 100*time.Millisecond
			services = append(services, s)
		}
		w := newWorld(t, newFakeInterface(), healthy)
		w.start(cfgOf(services...))
		epoch := w.sup.epoch
		byService := map[string][]Round{}
		for len(byService) < len(names) || slices.ContainsFunc(names, func(n string) bool { return len(byService[n]) < 5 }) {
			r := w.nextRound()
			byService[r.Service] = append(byService[r.Service], r)
		}
		for _, name := range names {
			rs := byService[name]
			offset := firstDelay(name, time.Second)
			if second := rs[1].Scheduled.Sub(rs[0].Scheduled); second > min(offset, 200*time.Millisecond) || second <= min(offset, 200*time.Millisecond)-roundGrid {
				t.Errorf("%s (offset %s): second round %s after the first", name, offset, second)
			}
			for i, r := range rs[1:] {
				if off := r.Scheduled.Sub(epoch) % roundGrid; off != 0 {
					t.Errorf("%s: round %d scheduled %s after the epoch, %s off the grid", name, i+2, r.Scheduled.Sub(epoch), off)
				}
			}
			// Rising (rise 3) at the fast interval, then up at the interval.
			if gap := rs[2].Scheduled.Sub(rs[1].Scheduled); gap != 200*time.Millisecond {
				t.Errorf("%s: rounds 2 and 3 %s apart, want the fast interval", name, gap)
			}
			// Up: the fourth round at the service's own place in the interval
			// (its offset from the start, on the grid), within an interval of
			// the third; the fifth an interval on.
			phase := onGrid(rs[0].Scheduled.Add(offset), epoch)
			if gap := rs[3].Scheduled.Sub(rs[2].Scheduled); gap <= 0 || gap > time.Second || rs[3].Scheduled.Sub(phase)%time.Second != 0 {
				t.Errorf("%s: round 4 %s after round 3 and %s after the phase %s; want within an interval, at the phase",
					name, gap, rs[3].Scheduled.Sub(phase), phase.Sub(epoch))
			}
			if gap := rs[4].Scheduled.Sub(rs[3].Scheduled); gap != time.Second {
				t.Errorf("%s: rounds 4 and 5 %s apart, want the interval", name, gap)
			}
		}
	})
}

// A service with an exec check keeps its exact offset: its second round
// comes exactly the offset after the first, not moved back to a slot.
func TestExecServicesKeepExactTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const name = "script"
		offset := firstDelay(name, time.Second)
		s := service(name, "192.0.2.53/32")
		s.Interval, s.FastInterval, s.Timeout = time.Second, time.Second, 100*time.Millisecond
		s.Checks = []config.Check{{Type: config.CheckExec, Command: []string{"/bin/true"}, Timeout: 100 * time.Millisecond}}
		w := newWorld(t, newFakeInterface(), map[string]bool{name: true})
		w.start(cfgOf(s))
		first, second := w.nextRound(), w.nextRound()
		if first.Scheduled.Sub(w.sup.epoch)%roundGrid == 0 && offset%roundGrid == 0 {
			t.Fatalf("offset %s falls on the grid: the test cannot tell; rename the service", offset)
		}
		if gap := second.Scheduled.Sub(first.Scheduled); gap != offset {
			t.Errorf("second round %s after the first, want exactly %s", gap, offset)
		}
	})
}

// A reload that changes a failing service's settings, but not its checks,
// keeps its progress toward fall: reloaded before every round, it is still
// withdrawn after fall failing rounds. A change of its checks starts it
// over, keeping only whether it is advertised.
func TestReloadKeepsProgressTowardFall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startAdvertised(t, 5)
		<-w.rounds // the first, passing
		w.checks["dns"].healthy.Store(false)
		failing := 0
		count := func() {
			for len(w.rounds) > 0 {
				if r := <-w.rounds; r.Results[0].Err != nil {
					failing++
				}
			}
			if got := w.service("dns").Fails; got != failing {
				t.Fatalf("after %d failing rounds: fails %d", failing, got)
			}
		}
		for i := 0; failing < 5; i++ {
			next := service("dns", "192.0.2.53/32")
			next.Fall = 5
			next.Interval = 20*time.Millisecond + time.Duration(i+1)*time.Microsecond // a change on every reload
			if err := w.reload(withChecks(cfgOf(next))); err != nil {
				t.Fatal(err)
			}
			w.settle() // the replacement's first round runs at once
			count()
			if failing < 5 {
				w.until("the next round", func() bool { return len(w.rounds) > 0 })
				count()
			}
		}
		if st := w.state("dns"); st != status.Down || w.iface.has("192.0.2.53/32") {
			t.Fatalf("after 5 failing rounds with fall 5: %s, present %v; want down, withdrawn", st, w.iface.has("192.0.2.53/32"))
		}

		// New checks: the streaks are about other probes, so they start over.
		w.checks["dns"].healthy.Store(true)
		w.nextRound()
		if p := w.service("dns").Passes; p != 1 {
			t.Fatalf("passes %d after one passing round", p)
		}
		next := service("dns", "192.0.2.53/32")
		next.Checks[0].Timeout = 10 * time.Millisecond
		if err := w.reload(withChecks(cfgOf(next))); err != nil {
			t.Fatal(err)
		}
		w.settle() // the replacement's first round, passing
		if st := w.service("dns"); st.Passes != 1 || st.State != status.Rising {
			t.Errorf("after a change of checks and one passing round: %s, %d passes; want rising, 1 (started over)", st.State, st.Passes)
		}
	})
}

func TestRoundVerdict(t *testing.T) {
	pass := CheckResult{Check: "dns"}
	fail := CheckResult{Check: "tcp", Err: errors.New("connection refused")}
	starved := CheckResult{Check: "script", Err: fmt.Errorf("check: %w", &checker.Starved{Running: 8})}
	for _, tt := range []struct {
		name       string
		results    []CheckResult
		wantFailed int // how many of results, all of them fail
		decided    bool
	}{
		{"all pass", []CheckResult{pass, pass}, 0, true},
		{"one fails", []CheckResult{pass, fail}, 1, true},
		{"starved alone: no verdict", []CheckResult{starved}, 0, false},
		{"starved beside a pass: no verdict", []CheckResult{pass, starved}, 0, false},
		{"starved beside a failure: fails", []CheckResult{starved, fail}, 1, true},
		{"two fail", []CheckResult{fail, pass, fail}, 2, true},
		{"no checks passes", nil, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			failed, decided := roundVerdict(tt.results)
			if len(failed) != tt.wantFailed || decided != tt.decided {
				t.Fatalf("roundVerdict = (%d failed, decided %v), want (%d, %v)", len(failed), decided, tt.wantFailed, tt.decided)
			}
			for _, r := range failed {
				if r.Err == nil || isStarved(r.Err) {
					t.Errorf("%+v counted as failed", r)
				}
			}
		})
	}
}

// Rounds whose checks starved hold the state: an up service is not
// withdrawn however many there are, a down one does not rise, and each
// run of them is logged once; a real failure after them withdraws.
func TestStarvedRoundsHoldTheState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true, "web": false})
		dns, web := service("dns", "192.0.2.53/32"), service("web", "192.0.2.80/32")
		w.start(cfgOf(dns, web))
		w.checks["dns"].starved.Store(true)
		w.checks["web"].starved.Store(true)
		counts := map[string]int{}
		for counts["dns"] < 3*dns.Fall || counts["web"] < 3*web.Rise {
			r := w.nextRound()
			if !isStarved(r.Results[0].Err) {
				continue // a round from before the switch
			}
			counts[r.Service]++
			want := map[string]status.State{"dns": status.Up, "web": status.Down}[r.Service]
			if r.From != want || r.To != want {
				t.Fatalf("%s: a starved round moved it %s -> %s, want it held %s", r.Service, r.From, r.To, want)
			}
		}
		if got := w.iface.has("192.0.2.53/32"); !got {
			t.Error("dns withdrawn after starved rounds")
		}
		starvedLogs := 0
		for _, e := range w.logs.AllEntries() {
			if strings.Contains(e.Message, "round without a verdict") {
				starvedLogs++
			}
		}
		if starvedLogs != 2 {
			t.Errorf("%d log lines for two runs of starved rounds, want one each", starvedLogs)
		}
		w.checks["dns"].starved.Store(false)
		w.checks["dns"].healthy.Store(false)
		for r := w.nextRound(); r.Service != "dns" || r.To != status.Down; r = w.nextRound() {
		}
		if w.iface.has("192.0.2.53/32") {
			t.Error("dns still advertised after fall failing rounds")
		}
	})
}

// deadlineCheck records the context its round gave it.
type deadlineCheck struct{ got *context.Context }

func (c deadlineCheck) Check(ctx context.Context) error {
	*c.got = ctx
	return nil
}

// Checks with the same timeout share one context, checks with another get
// their own, each deadline is the round's start plus the check's timeout,
// and every context is released when the round ends.
func TestRunChecksDeadlines(t *testing.T) {
	timeouts := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 100 * time.Millisecond, time.Second}
	ctxs := make([]context.Context, len(timeouts))
	var checks []namedChecker
	for i, timeout := range timeouts {
		c := config.Check{Type: config.CheckTCP, Address: "127.0.0.1:1", Timeout: timeout}
		checks = append(checks, namedChecker{cfg: c, name: c.String(), checker: deadlineCheck{&ctxs[i]}})
	}
	start := time.Now()
	results := runChecks(context.Background(), realClock{}, checks)
	for i, r := range results {
		if r.Err != nil || r.Check != checks[i].name {
			t.Errorf("result %d = %+v", i, r)
		}
		deadline, ok := ctxs[i].Deadline()
		if want := start.Add(timeouts[i]); !ok || deadline.Before(want) || deadline.After(want.Add(50*time.Millisecond)) {
			t.Errorf("check %d (timeout %s): deadline %s after the start, want %s", i, timeouts[i], deadline.Sub(start), timeouts[i])
		}
		if ctxs[i].Err() == nil {
			t.Errorf("check %d: its context is still live after the round", i)
		}
	}
	if ctxs[0] != ctxs[2] {
		t.Error("two checks with one timeout got two contexts, want one")
	}
	if ctxs[0] == ctxs[1] || ctxs[1] == ctxs[3] {
		t.Error("checks with different timeouts share a context")
	}
}

// startAdvertised starts a healthy dns whose 192.0.2.53/32 is on the
// interface, withdrawn after fall failing rounds.
func startAdvertised(t *testing.T, fall int) *world {
	w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true})
	s := service("dns", "192.0.2.53/32")
	s.Fall = fall
	w.start(cfgOf(s))
	return w
}
