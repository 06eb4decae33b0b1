package advertise

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// fakeFRR is the local routing daemon's database: this router (selfID)
// originates what the interfaces have, at metric 0 on the primary one and
// 65535 on the last-resort one, unless told to leave prefixes out (not
// covered by its config); other routers advertise what others says. It
// can fail or hang. With bgp set it is bgpd instead of ospfd: the same
// facts as a BGP table, others' last-resort metric as graceful-shutdown,
// with peers established sessions of which fleetPeers are iBGP.
type fakeFRR struct {
	iface      *fakeInterface
	lastResort *fakeInterface // nil: none
	bgp        bool
	peers      int // bgp: established sessions, all sent every prefix
	fleetPeers int // bgp: of them, iBGP sessions to other nodes
	mu         sync.Mutex
	skip       map[netip.Prefix]bool
	others     map[netip.Prefix][]frr.Advertiser
	err        error
	hang       bool
	calls      int
	areaCalls  int // of calls, reads of the whole area
	bgpCalls   int
}

const selfID = "203.0.113.1"

// LSDB is the family's database: with frr.Self, this router's prefixes
// only.
func (f *fakeFRR) LSDB(ctx context.Context, fam frr.Family, scope frr.Scope) (frr.Fleet, error) {
	f.mu.Lock()
	f.calls++
	if scope == frr.Area {
		f.areaCalls++
	}
	err, hang := f.err, f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done() // vtysh against a frozen ospfd: only the deadline ends it
		return frr.Fleet{}, &frr.Error{Kind: frr.Timeout, Daemon: "ospfd", Err: ctx.Err()}
	}
	if err != nil {
		return frr.Fleet{}, err
	}
	db := frr.Fleet{RouterID: selfID, Prefixes: map[netip.Prefix][]frr.Advertiser{}}
	for metric, iface := range map[int]*fakeInterface{0: f.iface, 65535: f.lastResort} {
		if iface == nil {
			continue
		}
		link, _ := iface.Show(ctx)
		for _, p := range link.Prefixes {
			f.mu.Lock()
			skip := f.skip[p]
			f.mu.Unlock()
			if frr.FamilyOf(p) == fam && !skip {
				db.Prefixes[p] = append(db.Prefixes[p], frr.Advertiser{RouterID: selfID, Metric: metric})
			}
		}
	}
	f.mu.Lock()
	for p, advs := range f.others {
		if frr.FamilyOf(p) == fam && scope == frr.Area {
			db.Prefixes[p] = append(db.Prefixes[p], advs...)
		}
	}
	f.mu.Unlock()
	return db, nil
}

func (f *fakeFRR) Running(daemon string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return (daemon == "bgpd") == f.bgp
}

func (f *fakeFRR) BGP(ctx context.Context, prefixes []netip.Prefix) (map[frr.Family]frr.BGP, error) {
	f.mu.Lock()
	f.bgpCalls++
	f.mu.Unlock()
	out := map[frr.Family]frr.BGP{}
	for _, p := range prefixes {
		fam := frr.FamilyOf(p)
		if _, done := out[fam]; done {
			continue
		}
		b, err := f.bgpFamily(ctx, fam, prefixes)
		if err != nil {
			return nil, err
		}
		out[fam] = b
	}
	return out, nil
}

// bgpFamily is the family's table: the same facts as the LSDB.
func (f *fakeFRR) bgpFamily(ctx context.Context, fam frr.Family, prefixes []netip.Prefix) (frr.BGP, error) {
	db, err := f.LSDB(ctx, fam, frr.Area) // bgpd hears the other nodes over iBGP
	if err != nil {
		var fe *frr.Error
		if errors.As(err, &fe) {
			fe.Daemon = "bgpd"
		}
		return frr.BGP{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := frr.BGP{Configured: true, RouterID: selfID, AS: 64512, Peers: f.peers, Established: f.peers, FleetPeers: f.fleetPeers,
		Prefixes: map[netip.Prefix]frr.BGPPrefix{}}
	for _, p := range prefixes {
		if frr.FamilyOf(p) != fam {
			continue
		}
		var bp frr.BGPPrefix
		for _, a := range db.Prefixes[p] {
			lastResort := a.Metric >= 65535
			if a.RouterID == selfID {
				bp.Originated, bp.Best, bp.LastResort, bp.AdvertisedTo = true, true, lastResort, f.peers
				continue
			}
			if f.fleetPeers > 0 {
				bp.Fleet = append(bp.Fleet, frr.Advertiser{RouterID: a.RouterID, LastResort: lastResort})
			}
		}
		b.Prefixes[p] = bp
	}
	return b, nil
}

func (f *fakeFRR) set(fn func(f *fakeFRR)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// startVerified starts a world whose read-back is fake, with a short
// confirmation window.
func startVerified(t *testing.T, w *world, c *config.Config) {
	t.Helper()
	c.FRR.Verify = true
	w.sup.verify.window, w.sup.verify.every = 100*time.Millisecond, 50*time.Millisecond
	w.start(c)
}

func verifiedWorld(t *testing.T, iface *fakeInterface, rb *fakeFRR) *world {
	return newWorldWith(t, iface, map[string]bool{"dns": true}, rb)
}

func (w *world) prefix(name string, i int) status.Prefix { return w.service(name).Prefixes[i] }

func TestVerifyConfirmsChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iface := newFakeInterface()
		w := verifiedWorld(t, iface, &fakeFRR{iface: iface})
		startVerified(t, w, cfgOf(service("dns", "192.0.2.53/32", "2001:db8::53/128")))
		w.until("advertised: yes", func() bool {
			return w.prefix("dns", 0).Advertised == status.AdvertisedYes && w.prefix("dns", 1).Advertised == status.AdvertisedYes
		})
		w.checks["dns"].healthy.Store(false)
		w.until("advertised: no", func() bool {
			return w.prefix("dns", 0).Advertised == status.AdvertisedNo && w.prefix("dns", 1).Advertised == status.AdvertisedNo
		})
		if n := strings.Count(w.logText(), `msg="advertisement confirmed"`); n < 4 {
			t.Errorf("%d confirmations logged, want one per prefix per change:\n%s", n, w.logText())
		}
		if m := w.prefix("dns", 0).Mismatches; m != 0 {
			t.Errorf("%d mismatches", m)
		}
	})
}

func TestVerifyReportsPrefixNotCoveredByFRR(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iface := newFakeInterface("192.0.2.53/32")
		rb := &fakeFRR{iface: iface, skip: map[netip.Prefix]bool{netip.MustParsePrefix("192.0.2.53/32"): true}}
		w := verifiedWorld(t, iface, rb)
		startVerified(t, w, cfgOf(service("dns", "192.0.2.53/32")))
		w.until("a mismatch", func() bool { return w.prefix("dns", 0).Mismatches == 1 })
		st := w.prefix("dns", 0)
		if st.Advertised != status.AdvertisedNo || !strings.Contains(st.AdvertisedReason, "the FRR configuration does not cover 192.0.2.53/32") {
			t.Errorf("status %+v", st)
		}
		w.advance(time.Second) // twenty more read-backs
		if n := strings.Count(w.logText(), "does not advertise it"); n != 1 {
			t.Errorf("mismatch logged %d times, want once per episode:\n%s", n, w.logText())
		}
		rb.set(func(f *fakeFRR) { f.skip = nil }) // the operator fixes frr.conf
		w.until("advertised: yes", func() bool { return w.prefix("dns", 0).Advertised == status.AdvertisedYes })
		if !strings.Contains(w.logText(), "advertisement matches the interface again") {
			t.Errorf("no recovery line:\n%s", w.logText())
		}
	})
}

func TestVerifyFRRDownIsUnknownAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iface := newFakeInterface("192.0.2.53/32")
		rb := &fakeFRR{iface: iface, err: &frr.Error{Kind: frr.NotRunning, Daemon: "ospfd", Err: errors.New("exit status 1")}}
		w := verifiedWorld(t, iface, rb)
		startVerified(t, w, cfgOf(service("dns", "192.0.2.53/32")))
		w.until("unknown", func() bool { return w.prefix("dns", 0).AdvertisedReason == "ospfd is not running" })
		if st := w.prefix("dns", 0); st.Advertised != status.AdvertisedUnknown {
			t.Errorf("status %+v", st)
		}
		if h := w.sup.FRRHealth(); len(h) != 1 || h[0].Daemon != "ospfd" || h[0].OK || h[0].Error != "ospfd is not running" || h[0].Errors["not-running"] == 0 {
			t.Errorf("health %+v", h)
		}
		// Checks and address control go on while FRR is down.
		w.checks["dns"].healthy.Store(false)
		w.until("withdrawn", func() bool { return !iface.has("192.0.2.53/32") })

		rb.set(func(f *fakeFRR) { f.err = nil })
		w.until("known again", func() bool { return w.prefix("dns", 0).Advertised == status.AdvertisedNo })
		log := w.logText()
		if strings.Count(log, "cannot read back what FRR advertises") != 1 || !strings.Contains(log, "FRR read-back works again") {
			t.Errorf("health lines wrong:\n%s", log)
		}
	})
}

// A hung vtysh must not delay a withdrawal: it comes at the second failing
// round, as without a read-back, and status answers meanwhile.
func TestVerifyHangDoesNotDelayWithdrawal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iface := newFakeInterface("192.0.2.53/32")
		rb := &fakeFRR{iface: iface, hang: true}
		w := verifiedWorld(t, iface, rb)
		startVerified(t, w, cfgOf(service("dns", "192.0.2.53/32")))
		w.checks["dns"].healthy.Store(false)
		var failing []Round
		for len(failing) < 2 {
			if r := w.nextRound(); r.Results[0].Err != nil {
				failing = append(failing, r)
			}
		}
		if iface.has("192.0.2.53/32") || failing[1].To != status.Down {
			t.Errorf("after the second failing round: present %v, state %s; want withdrawn, down", iface.has("192.0.2.53/32"), failing[1].To)
		}
		if gap := failing[1].Scheduled.Sub(failing[0].Scheduled); gap != 5*time.Millisecond {
			t.Errorf("the second failing round came %s after the first, want the fast interval", gap)
		}
		if p := w.prefix("dns", 0); p.Advertised != status.AdvertisedUnknown || p.AdvertisedReason != "not verified yet" {
			t.Errorf("prefix %+v, want unknown: not verified yet", p)
		}
	})
}

func TestVerifyOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iface := newFakeInterface("192.0.2.53/32")
		w := newWorld(t, iface, map[string]bool{"dns": true})
		w.start(cfgOf(service("dns", "192.0.2.53/32"))) // no ReadBack
		if st := w.prefix("dns", 0); st.Advertised != status.AdvertisedUnknown || !strings.Contains(st.AdvertisedReason, "read-back is off") {
			t.Errorf("status %+v", st)
		}
	})
}
