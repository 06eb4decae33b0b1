package advertise

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// rbStub answers from canned reads; which daemons run is its keys.
type rbStub struct {
	lsdb map[frr.Family]frr.Fleet
	bgp  map[frr.Family]frr.BGP
	err  map[string]error
}

func (r rbStub) Running(d string) bool {
	if d == bgpd {
		return r.bgp != nil || r.err[d] != nil
	}
	return r.lsdb != nil || r.err[d] != nil
}

func (r rbStub) LSDB(_ context.Context, fam frr.Family, _ frr.Scope) (frr.Fleet, error) {
	return r.lsdb[fam], r.err[fam.IGPDaemon()]
}

func (r rbStub) BGP(context.Context, []netip.Prefix) (map[frr.Family]frr.BGP, error) {
	return r.bgp, r.err[bgpd]
}

// Every combination of routing daemons for one family: what is read, what
// the fleet view is, and the verdict on a prefix that is on the interface.
func TestReadFamily(t *testing.T) {
	p := netip.MustParsePrefix("192.0.2.53/32")
	ospf := frr.Fleet{RouterID: selfID, Prefixes: map[netip.Prefix][]frr.Advertiser{p: {{RouterID: selfID}, {RouterID: "203.0.113.2", Metric: 65535}}}}
	ospfWithout := frr.Fleet{RouterID: selfID, Prefixes: map[netip.Prefix][]frr.Advertiser{}}
	bgp := func(originated bool, sent, established, fleetPeers int, fleet ...frr.Advertiser) frr.BGP {
		return frr.BGP{Configured: true, RouterID: selfID, Peers: 2, Established: established, FleetPeers: fleetPeers,
			Prefixes: map[netip.Prefix]frr.BGPPrefix{p: {Originated: originated, AdvertisedTo: sent, Fleet: fleet}}}
	}
	other := frr.Advertiser{RouterID: "203.0.113.3", LastResort: true}
	down := &frr.Error{Kind: frr.NotRunning, Daemon: bgpd}
	tests := []struct {
		name      string
		rb        rbStub
		seen      map[string]bool
		read      []string
		fleet     []frr.Advertiser // nil with fleetErr
		fleetErr  string
		agrees    bool
		reason    string
		bgpStatus *status.BGP
	}{
		{name: "ospfd only", rb: rbStub{lsdb: map[frr.Family]frr.Fleet{frr.IPv4: ospf}}, read: []string{"ospfd"},
			fleet: ospf.Prefixes[p], agrees: true},
		{name: "ospfd not covering it", rb: rbStub{lsdb: map[frr.Family]frr.Fleet{frr.IPv4: ospfWithout}}, read: []string{"ospfd"},
			fleet: nil, reason: "ospfd does not advertise it"},
		{name: "bgpd only, with a fleet session", rb: rbStub{bgp: map[frr.Family]frr.BGP{frr.IPv4: bgp(true, 2, 2, 1, other)}}, read: []string{bgpd},
			fleet: []frr.Advertiser{{RouterID: selfID}, other}, agrees: true,
			bgpStatus: &status.BGP{Originated: true, PeersAdvertised: 2, PeersEstablished: 2}},
		{name: "bgpd only, no fleet session", rb: rbStub{bgp: map[frr.Family]frr.BGP{frr.IPv4: bgp(true, 1, 1, 0)}}, read: []string{bgpd},
			fleetErr: "cannot see the other anycast nodes", agrees: true,
			bgpStatus: &status.BGP{Originated: true, PeersAdvertised: 1, PeersEstablished: 1}},
		{name: "bgpd sends it to nobody", rb: rbStub{bgp: map[frr.Family]frr.BGP{frr.IPv4: bgp(true, 0, 0, 0)}}, read: []string{bgpd},
			fleetErr: "cannot see", reason: "sends it to no BGP peer (0 of 2 sessions established)",
			bgpStatus: &status.BGP{Originated: true}},
		{name: "bgpd does not originate it", rb: rbStub{bgp: map[frr.Family]frr.BGP{frr.IPv4: bgp(false, 0, 2, 1)}}, read: []string{bgpd},
			fleet: nil, reason: "bgpd does not originate it", bgpStatus: &status.BGP{PeersEstablished: 2}},
		{name: "both: the IGP's view with bgpd's nodes added", rb: rbStub{lsdb: map[frr.Family]frr.Fleet{frr.IPv4: ospf}, bgp: map[frr.Family]frr.BGP{frr.IPv4: bgp(true, 2, 2, 0, other)}},
			read: []string{"ospfd", bgpd}, fleet: append(ospf.Prefixes[p], other), agrees: true,
			bgpStatus: &status.BGP{Originated: true, PeersAdvertised: 2, PeersEstablished: 2}},
		{name: "bgpd without router bgp is not read back", rb: rbStub{lsdb: map[frr.Family]frr.Fleet{frr.IPv4: ospf}, bgp: map[frr.Family]frr.BGP{frr.IPv4: {}}},
			read: []string{"ospfd", bgpd}, fleet: ospf.Prefixes[p], agrees: true},
		{name: "nothing runs", rb: rbStub{}, fleetErr: "ospfd/bgpd: neither runs here with an instance (`router ospf`, `router bgp`): nothing advertises IPv4"},
		{name: "bgpd without router bgp alone", rb: rbStub{bgp: map[frr.Family]frr.BGP{frr.IPv4: {}}}, read: []string{bgpd}, fleetErr: "neither runs here"},
		{name: "bgpd read before is not running now", rb: rbStub{err: map[string]error{bgpd: down}}, seen: map[string]bool{bgpd: true},
			read: []string{bgpd}, fleetErr: "bgpd is not running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bgp := readBGP(context.Background(), tt.rb, []netip.Prefix{p}, tt.seen)[frr.IPv4]
			r := readFamily(context.Background(), tt.rb, frr.IPv4, frr.Area, bgp, tt.seen)
			if !reflect.DeepEqual(r.read, tt.read) {
				t.Errorf("read %v, want %v", r.read, tt.read)
			}
			db, err := r.fleet()
			switch {
			case tt.fleetErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.fleetErr) {
					t.Errorf("fleet error %v, want %q", err, tt.fleetErr)
				}
			case err != nil:
				t.Errorf("fleet error %v", err)
			case !reflect.DeepEqual(db.Prefixes[p], tt.fleet):
				t.Errorf("fleet %+v, want %+v", db.Prefixes[p], tt.fleet)
			}
			if r.first != nil {
				return
			}
			v := r.judge(p, true)
			if v.agrees != tt.agrees || !strings.Contains(v.reason, tt.reason) || (tt.agrees && v.reason != "") {
				t.Errorf("verdict %+v, want agrees %v, reason %q", v, tt.agrees, tt.reason)
			}
			if !reflect.DeepEqual(v.bgp, tt.bgpStatus) {
				t.Errorf("bgp status %+v, want %+v", v.bgp, tt.bgpStatus)
			}
		})
	}
}

// The fleet read through bgpd: failing open holds the prefix at last
// resort while no other node is seen at normal metric, releases it when
// one is, and holds it whatever it hears while no iBGP session is up.
func TestFailOpenThroughBGP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
		w.frr.set(func(f *fakeFRR) { f.bgp, f.peers, f.fleetPeers = true, 2, 1 })
		w.start()
		w.until("read back from bgpd", func() bool {
			p := w.service("dns").Prefixes[0]
			return p.Advertised == status.AdvertisedYes && reflect.DeepEqual(p.BGP, &status.BGP{Originated: true, PeersAdvertised: 2, PeersEstablished: 2})
		})
		if h := w.sup.FRRHealth(); len(h) != 1 || h[0].Daemon != "bgpd" || !h[0].OK {
			t.Errorf("FRR health %+v, want bgpd alone and fine", h)
		}
		w.checks["dns"].healthy.Store(false)
		w.until("at last resort", func() bool { return w.state("dns") == status.LastResort })
		w.advance(time.Minute)
		if w.where() != "last resort" {
			t.Fatalf("alone, the prefix is %s", w.where())
		}
		p := w.service("dns").Prefixes[0]
		if len(p.Advertisers) != 1 || !p.Advertisers[0].Self || p.Advertisers[0].Class != status.ClassLastResort {
			t.Errorf("advertisers %+v, want this node at last resort", p.Advertisers)
		}

		// Another node heard over iBGP with the prefix at normal: released.
		w.others(frr.Advertiser{RouterID: "203.0.113.2"})
		w.until("released", func() bool { return w.where() == "absent" })

		// No iBGP session: the fleet is unknown; with nobody seen the prefix
		// is not taken back, and once back at last resort it stays there.
		w.frr.set(func(f *fakeFRR) { f.fleetPeers = 0 })
		w.others()
		w.advance(time.Minute)
		if w.where() != "absent" {
			t.Errorf("with the fleet unknown an absent prefix came back: %s", w.where())
		}
		if p := w.service("dns").Prefixes[0]; !strings.Contains(p.FleetError, "no established iBGP session") {
			t.Errorf("fleet error %q", p.FleetError)
		}
		w.frr.set(func(f *fakeFRR) { f.fleetPeers = 1 })
		w.until("back at last resort with nobody seen", func() bool { return w.where() == "last resort" })
		w.frr.set(func(f *fakeFRR) { f.fleetPeers = 0 })
		w.others(frr.Advertiser{RouterID: "203.0.113.2"})
		w.advance(time.Minute)
		if st := w.service("dns"); w.where() != "last resort" || !strings.Contains(st.Reason, "the fleet view is unknown (bgpd has no established iBGP session") {
			t.Errorf("blind to the fleet: %s, %q", w.where(), st.Reason)
		}
	})
}

// A healthy node whose bgpd has no session up is reported "not
// advertised", with why, and counted as a mismatch.
func TestBGPReadBackWithoutPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
		w.frr.set(func(f *fakeFRR) { f.bgp, f.peers, f.fleetPeers = true, 1, 0 })
		w.start()
		w.until("advertised", func() bool { return w.service("dns").Prefixes[0].Advertised == status.AdvertisedYes })
		w.frr.set(func(f *fakeFRR) { f.peers = 0 })
		w.advance(time.Minute)
		p := w.service("dns").Prefixes[0]
		if p.Advertised != status.AdvertisedNo || p.Mismatches != 1 || !strings.Contains(p.AdvertisedReason, "sends it to no BGP peer") {
			t.Errorf("prefix %+v", p)
		}
		if w.state("dns") != status.Up || w.where() != "lo" {
			t.Errorf("a healthy service was moved: %s, %s", w.state("dns"), w.where())
		}
	})
}

// bgpd is read once for both families: a failed read counts once in its
// errors, not once per family.
func TestFailedBGPReadCountsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFailOpen(t, []string{"192.0.2.53/32", "2001:db8::53/128"}, nil, true)
		w.frr.set(func(f *fakeFRR) { f.bgp, f.peers, f.fleetPeers = true, 1, 1 })
		c := cfgOf(service("dns", "192.0.2.53/32", "2001:db8::53/128"))
		c.FRR.Verify = true
		w.world.start(c)
		w.until("read back", func() bool { return w.service("dns").Prefixes[1].Advertised == status.AdvertisedYes })
		calls := func() int { w.frr.mu.Lock(); defer w.frr.mu.Unlock(); return w.frr.bgpCalls }
		w.frr.set(func(f *fakeFRR) { f.err = &frr.Error{Kind: frr.Timeout, Daemon: "bgpd", Err: context.DeadlineExceeded} })
		before := calls()
		w.until("a failed read", func() bool {
			h := w.sup.FRRHealth()
			return len(h) == 1 && !h[0].OK
		})
		h := w.sup.FRRHealth()[0]
		reads := calls() - before // errors are counted after a read ends
		if h.Daemon != "bgpd" || h.Errors["timeout"] == 0 || int(h.Errors["timeout"]) > reads {
			t.Errorf("health %+v after %d failed reads", h, reads)
		}
	})
}
