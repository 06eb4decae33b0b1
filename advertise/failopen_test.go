package advertise

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// failOpenWorld is a world with a last-resort interface and a fake FRR
// that sees both interfaces and the other routers the test puts there.
type failOpenWorld struct {
	*world
	lr  *fakeInterface
	frr *fakeFRR
}

func newFailOpen(t *testing.T, present, onLastResort []string, healthy bool) *failOpenWorld {
	iface, lr := newFakeInterface(present...), newFakeInterface(onLastResort...)
	rb := &fakeFRR{iface: iface, lastResort: lr}
	w := newFailOpenWorld(t, iface, lr, map[string]bool{"dns": healthy}, rb)
	return &failOpenWorld{world: w, lr: lr, frr: rb}
}

func (w *failOpenWorld) start() {
	c := cfgOf(service("dns", "192.0.2.53/32"))
	c.Services[0].DrainGrace = 2 * time.Second
	c.FRR.Verify = true
	w.world.start(c)
}

// others sets which other routers advertise the anycast /32, and at what
// metric.
func (w *failOpenWorld) others(advs ...frr.Advertiser) {
	w.frr.set(func(f *fakeFRR) {
		f.others = map[netip.Prefix][]frr.Advertiser{netip.MustParsePrefix("192.0.2.53/32"): advs}
	})
}

func (w *failOpenWorld) where() string {
	switch lo, lr := w.iface.has("192.0.2.53/32"), w.lr.has("192.0.2.53/32"); {
	case lo && lr:
		return "both"
	case lo:
		return "lo"
	case lr:
		return "last resort"
	}
	return "absent"
}

var (
	normalPeer     = frr.Advertiser{RouterID: "203.0.113.2", Metric: 0}
	lastResortPeer = frr.Advertiser{RouterID: "203.0.113.3", Metric: 65535}
)

// A failing service's prefix goes to last resort before it leaves lo (never
// a moment without it), stays there while nobody else advertises it at
// normal metric, leaves once somebody does, and comes back to lo when the
// service recovers.
func TestFailOpenHoldsTheLastAdvertisement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
		w.start()
		w.checks["dns"].healthy.Store(false)
		w.until("down", func() bool { return w.state("dns") == status.LastResort })
		if got := w.iface.history(); len(got) != 1 || got[0] != "del 192.0.2.53/32" {
			t.Errorf("lo changes %v", got)
		}
		if got := w.lr.history(); !reflect.DeepEqual(got, []string{"add 192.0.2.53/32"}) {
			t.Errorf("last-resort changes %v", got)
		}
		st := w.service("dns")
		if !strings.Contains(st.Reason, "held at last resort: 192.0.2.53/32: 0 other routers advertise it at normal metric") ||
			st.Prefixes[0].Interface != "anycast-lr" || !st.Prefixes[0].Wanted {
			t.Errorf("status %+v", st)
		}
		if !strings.Contains(w.logText(), `msg="added address" interface=anycast-lr prefix=192.0.2.53/32 reason="service down: 2 consecutive failing rounds (fall 2); held at last resort until another router advertises it at normal metric" service=dns`) {
			t.Errorf("no log line for the move:\n%s", w.logText())
		}

		// Another router only at last resort, a minute of fleet reads: held.
		w.others(lastResortPeer)
		w.advance(time.Minute)
		if w.where() != "last resort" {
			t.Fatalf("with only another last-resort advertiser the prefix is %s", w.where())
		}
		// The read-back fails: held, and status says why.
		w.frr.set(func(f *fakeFRR) {
			f.err = &frr.Error{Kind: frr.NotRunning, Daemon: "ospfd", Err: errors.New("exit status 1")}
		})
		w.advance(time.Minute)
		if st := w.service("dns"); w.where() != "last resort" || !strings.Contains(st.Reason, "the fleet view is unknown (ospfd is not running)") {
			t.Fatalf("with the LSDB unreadable: %s, %q", w.where(), st.Reason)
		}
		w.frr.set(func(f *fakeFRR) { f.err = nil })

		// A node recovers: at the next fleet read the prefix goes.
		w.others(lastResortPeer, normalPeer)
		w.until("the prefix leaves last resort", func() bool { return w.where() == "absent" })
		if st := w.service("dns"); st.State != status.Down || st.Prefixes[0].Interface != "" {
			t.Errorf("after another router advertised at normal metric: %s on %q", st.State, st.Prefixes[0].Interface)
		}
		if !strings.Contains(w.logText(), `reason="service down: 2 consecutive failing rounds (fall 2); 1 other routers advertise it at normal metric"`) {
			t.Errorf("no log line for the removal:\n%s", w.logText())
		}

		// Everybody gone: back at last resort.
		w.others()
		w.until("back at last resort", func() bool { return w.where() == "last resort" })

		// Healthy again: to lo first, then off last resort.
		w.checks["dns"].healthy.Store(true)
		w.until("up", func() bool { return w.state("dns") == status.Up })
		if w.where() != "lo" {
			t.Errorf("a recovered service's prefix is %s", w.where())
		}
		if got := w.lr.history(); !reflect.DeepEqual(got, []string{"add 192.0.2.53/32", "del 192.0.2.53/32", "add 192.0.2.53/32", "del 192.0.2.53/32"}) {
			t.Errorf("last-resort changes %v", got)
		}
	})
}

// The fleet view must be read after the move settled: an advertisement at
// normal metric seen before (or right after) the move may be another node
// that is failing too and about to move.
func TestFailOpenWaitsForAFreshView(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
		w.others(normalPeer)
		w.start()
		w.checks["dns"].healthy.Store(false)
		w.until("at last resort", func() bool { return w.where() == "last resort" })
		moved := w.clock.Now()
		w.until("removed", func() bool { return w.where() == "absent" })
		// At the read 1 s after the move: not before, and not at the next
		// periodic read (fleet_interval 5 s).
		if waited := w.clock.Now().Sub(moved); waited < fleetSettle || waited > fleetSettle+100*time.Millisecond {
			t.Errorf("removed %s after the move, want at the read %s after it", waited, fleetSettle)
		}
	})
}

func TestFailOpenOffWithdrawsAtOnce(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setUp func(w *failOpenWorld)
	}{
		{"fail_open: false", func(w *failOpenWorld) {}},
		{"no last-resort interface", func(w *failOpenWorld) {
			w.lr.ensureErr = errors.New("create anycast-lr as a dummy interface: Unknown device type")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
				tt.setUp(w)
				c := cfgOf(service("dns", "192.0.2.53/32"))
				c.Services[0].FailOpen = tt.name != "fail_open: false"
				w.world.start(c)
				w.checks["dns"].healthy.Store(false)
				w.until("withdrawn", func() bool { return w.where() == "absent" })
				if h := w.lr.history(); len(h) != 0 {
					t.Errorf("the last-resort interface was used: %v", h)
				}
				if st := w.service("dns"); st.State != status.Down {
					t.Errorf("state %s", st.State)
				}
				lr := w.sup.LastResort()
				if wantOK := w.lr.ensureErr == nil; lr == nil || lr.OK != wantOK || lr.Interface != "anycast-lr" {
					t.Errorf("last-resort health %+v", lr)
				}
				if w.lr.ensureErr != nil && !strings.Contains(w.logText(), "no last-resort interface: failing open is off") {
					t.Errorf("the missing interface was not logged:\n%s", w.logText())
				}
			})
		})
	}
}

// A last-resort interface that fails at run time does not hold a
// withdrawal back.
func TestFailingLastResortInterfaceStillWithdraws(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
		w.start()
		w.lr.setFail(errors.New("ip addr add 192.0.2.53/32 dev anycast-lr: exit status 2: Cannot find device"))
		w.checks["dns"].healthy.Store(false)
		w.until("withdrawn from lo", func() bool { return !w.iface.has("192.0.2.53/32") })
		if !strings.Contains(w.logText(), "cannot change address; will retry") {
			t.Errorf("the failure was not logged:\n%s", w.logText())
		}
		w.lr.setFail(nil)
		w.until("at last resort once it works", func() bool { return w.where() == "last resort" })
	})
}

// A restart keeps each prefix where it is: one at last resort stays there
// (the service must rise), one on both interfaces stays on lo.
func TestStartKeepsPrefixesWhereTheyAre(t *testing.T) {
	t.Run("at last resort", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newFailOpen(t, nil, []string{"192.0.2.53/32"}, false)
			w.start()
			w.advance(10 * time.Second)
			if w.where() != "last resort" || len(w.iface.history())+len(w.lr.history()) != 0 || w.state("dns") != status.LastResort {
				t.Errorf("%s, %s; changes %v %v", w.where(), w.state("dns"), w.iface.history(), w.lr.history())
			}
		})
	})
	t.Run("on both", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newFailOpen(t, []string{"192.0.2.53/32"}, []string{"192.0.2.53/32"}, true)
			w.start()
			if w.where() != "lo" || len(w.iface.history()) != 0 || w.state("dns") != status.Up {
				t.Errorf("%s, %s; lo changes %v", w.where(), w.state("dns"), w.iface.history())
			}
		})
	})
}

// drain moves to last resort at once, removes after drain_grace, and is
// refused when nobody else advertises the prefix at normal metric.
func TestDrainWithoutLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
		w.start()
		w.advance(time.Second) // a fleet read
		_, err := w.sup.Drain(context.Background(), []string{"dns"}, "x", "root", time.Time{}, false)
		if err == nil || err.Error() != "drain of dns refused: 192.0.2.53/32: no other router advertises it at normal metric, so draining it could take it off the network; --force drains anyway" {
			t.Fatalf("drain of the only node: %v", err)
		}
		if w.where() != "lo" {
			t.Fatalf("a refused drain moved the prefix to %s", w.where())
		}
		// Another node comes up after the last read: drain reads again first.
		w.others(normalPeer)
		drainedAt := w.clock.Now()
		if _, err := w.sup.Drain(context.Background(), []string{"dns"}, "kernel upgrade", "root", time.Time{}, false); err != nil {
			t.Fatal(err)
		}
		if w.where() != "last resort" || w.state("dns") != status.Draining {
			t.Fatalf("right after drain: %s, %s", w.where(), w.state("dns"))
		}
		w.until("removed", func() bool { return w.where() == "absent" })
		if took := w.clock.Now().Sub(drainedAt); took != 2*time.Second {
			t.Errorf("removed %s after the drain, want drain_grace 2s", took)
		}
		if st := w.service("dns"); st.State != status.Drained {
			t.Errorf("after the grace: %s", st.State)
		}
	})
}

// on_exit: withdraw takes the same graceful path.
func TestStopWithWithdrawGoesThroughLastResort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
		w.start()
		stopped := make(chan struct{})
		go func() { w.sup.Stop(context.Background(), "withdraw"); close(stopped) }()
		w.until("at last resort", func() bool { return w.where() == "last resort" })
		// Until the clock reaches drain_grace, Stop waits and the prefix stays,
		// however often the worker is woken meanwhile.
		time.Sleep(1900 * time.Millisecond)
		w.sup.addrs.wait(context.Background(), w.sup.addrs.reconsider())
		w.advance(50 * time.Millisecond)
		select {
		case <-stopped:
			t.Fatalf("Stop returned before drain_grace; the prefix is %s", w.where())
		default:
		}
		if w.where() != "last resort" {
			t.Fatalf("before drain_grace the prefix is %s", w.where())
		}
		time.Sleep(50 * time.Millisecond)
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("Stop did not return after the grace")
		}
		if w.where() != "absent" {
			t.Errorf("after stop: %s", w.where())
		}
	})
}

// batchInterface is a fake interface that can move a prefix from its peer
// in one step, as ip -batch does; it records the moves.
type batchInterface struct {
	*fakeInterface
	peer  *fakeInterface
	moves *[]string
}

func (b batchInterface) Move(ctx context.Context, p netip.Prefix, from string, addFirst bool) error {
	if err := b.Add(ctx, p); err != nil {
		return err
	}
	*b.moves = append(*b.moves, fmt.Sprintf("move %s from %s, add first: %v", p, from, addFirst))
	return b.peer.Del(ctx, p)
}

// A move between the interfaces is one step where the interface can do
// it, so the routing daemon sees one change; the add comes first, unless
// bgpd originates the prefix (zebra must see it leave first).
func TestMovesAreOneStep(t *testing.T) {
	for _, bgp := range []bool{false, true} {
		t.Run(fmt.Sprintf("bgp %v", bgp), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
				w.frr.set(func(f *fakeFRR) { f.bgp, f.peers, f.fleetPeers = bgp, 1, 1 })
				var moves []string // appended to by the worker only
				w.sup.addrs.primary = batchInterface{w.iface, w.lr, &moves}
				w.sup.opts.LastResort = batchInterface{w.lr, w.iface, &moves}
				w.start()
				w.until("read back", func() bool { return w.service("dns").Prefixes[0].Advertised == status.AdvertisedYes })
				w.checks["dns"].healthy.Store(false)
				w.until("at last resort", func() bool { return w.where() == "last resort" })
				w.checks["dns"].healthy.Store(true)
				w.until("back on lo", func() bool { return w.where() == "lo" })
				want := []string{fmt.Sprintf("move 192.0.2.53/32 from lo, add first: %v", !bgp), fmt.Sprintf("move 192.0.2.53/32 from anycast-lr, add first: %v", !bgp)}
				if !reflect.DeepEqual(moves, want) {
					t.Errorf("moves %v, want %v", moves, want)
				}
				added, removed := strings.Index(w.logText(), `msg="added address" interface=anycast-lr prefix=192.0.2.53/32`), strings.Index(w.logText(), `msg="removed address" interface=lo prefix=192.0.2.53/32`)
				if added < 0 || removed < 0 || (added < removed) == bgp {
					t.Errorf("a move logs both halves, in the order they were made:\n%s", w.logText())
				}
			})
		})
	}
}

// A move between the interfaces leaves the prefix present, yet the
// verifier must hear of it: it confirms the move and reads the fleet again
// once the move has settled (without this the read came at the next
// periodic one, 4.7 s later in the demo).
func TestAMoveWakesTheVerifier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lo, lr := newFakeInterface("192.0.2.53/32"), newFakeInterface()
		woken := 0
		m := newAddressManager(lo, "lo", newFleetStore(65535), realClock{}, logrus.New(), func() { woken++ })
		m.useLastResort(lr, "anycast-lr")
		link, _ := lo.Show(context.Background())
		m.manage(managed{service: "dns", prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32")},
			wish: wish{Intent: IntentAdvertise}, failOpen: true}, link, ifaddr.Link{})
		m.set([]netip.Prefix{netip.MustParsePrefix("192.0.2.53/32")}, wish{Intent: IntentWithdraw}, "service down")
		m.step() // the worker's step, run here
		if !lr.has("192.0.2.53/32") || lo.has("192.0.2.53/32") {
			t.Fatalf("not moved: lo %v, last resort %v", lo.has("192.0.2.53/32"), lr.has("192.0.2.53/32"))
		}
		if woken == 0 {
			t.Error("the move did not wake the verifier")
		}
	})
}
