package advertise

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// fleetStore keeps the last view of the fleet per address family (the
// link-state database, with bgpd's paths from other nodes added):
// the verifier writes it, the address manager's decisions and status read
// it. Its lock is taken alone.
type fleetStore struct {
	mu               sync.Mutex
	lastResortMetric int
	views            map[frr.Family]fleetView
	off              bool // the read-back is off: there will be no view
}

type fleetView struct {
	db  frr.Fleet
	at  time.Time // when the read began
	err error     // the read failed: db is from no read
}

func newFleetStore(lastResortMetric int) *fleetStore {
	return &fleetStore{lastResortMetric: lastResortMetric, views: map[frr.Family]fleetView{}}
}

func (f *fleetStore) setMetric(m int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastResortMetric = m
}

// update records a read that began at at.
func (f *fleetStore) update(fam frr.Family, db frr.Fleet, at time.Time, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views[fam], f.off = fleetView{db: db, at: at, err: err}, false
}

// forget drops every view: the read-back was turned off.
func (f *fleetStore) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views, f.off = map[frr.Family]fleetView{}, true
}

// sight counts the other routers advertising p, from a read that began at
// least fleetSettle after since; an older or failed read is not fresh.
func (f *fleetStore) sight(p netip.Prefix, since time.Time) fleetSight {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.views[frr.FamilyOf(p)]
	if !ok || v.err != nil || v.at.Before(since.Add(fleetSettle)) {
		return fleetSight{}
	}
	s := fleetSight{Fresh: true}
	for _, a := range v.db.Prefixes[p] {
		if a.RouterID == v.db.RouterID {
			continue
		}
		s.Any++
		if !f.lastResort(a) {
			s.Normal++
		}
	}
	return s
}

// lastResort says whether a advertises at last resort: in OSPF at the
// last-resort metric or more, in BGP with the graceful-shutdown community.
// Call with mu held.
func (f *fleetStore) lastResort(a frr.Advertiser) bool {
	return a.LastResort || a.Metric >= f.lastResortMetric
}

// normalElsewhere counts the other routers advertising p at normal
// metric, from the last read; unknown says why there is no count.
func (f *fleetStore) normalElsewhere(p netip.Prefix) (n int, unknown string) {
	if sight := f.sight(p, time.Time{}); sight.Fresh {
		return sight.Normal, ""
	}
	_, why := f.advertisers(p)
	return 0, "the fleet view is unknown (" + why + ")"
}

// advertisers is p's part of status: every router advertising it, this
// one included, or why that is not known.
func (f *fleetStore) advertisers(p netip.Prefix) ([]status.Advertiser, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.views[frr.FamilyOf(p)]
	switch {
	case f.off:
		return nil, "read-back is off (frr.verify: false)"
	case !ok:
		return nil, "not read yet"
	case v.err != nil:
		return nil, v.err.Error()
	}
	out := []status.Advertiser{}
	for _, a := range v.db.Prefixes[p] {
		class := status.ClassNormal
		if f.lastResort(a) {
			class = status.ClassLastResort
		}
		out = append(out, status.Advertiser{RouterID: a.RouterID, Metric: a.Metric, Self: a.RouterID == v.db.RouterID, Class: class})
	}
	slices.SortFunc(out, func(a, b status.Advertiser) int { return strings.Compare(a.RouterID, b.RouterID) })
	return out, ""
}
