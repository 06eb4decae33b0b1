package advertise

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

const (
	// confirmWindow is how long after a change of the interface the
	// routing daemon may take before a difference counts as a mismatch.
	confirmWindow = 5 * time.Second
	// reverifyEvery is the period of verification when nothing changes.
	reverifyEvery = 10 * time.Second
	firstRetry    = 50 * time.Millisecond
	maxRetry      = time.Second
)

// verifyState is the read-back's view of one prefix.
type verifyState struct {
	advertised status.Advertised
	reason     string // why unknown, or what the mismatch is
	mismatches int    // episodes where FRR disagreed with the interface
	inMismatch bool
	confirmed  time.Time   // the change (its changedAt) last confirmed and logged
	bgp        *status.BGP // bgpd's part; nil when bgpd was not read
}

// verifier reads the routing daemons on its own goroutine: it confirms
// that they follow the interfaces, from this router's own LSAs (frr.Self)
// after each change and every reverifyEvery, and it keeps the fleet view
// (fleetStore) from the whole areas' databases (frr.Area), which it reads
// only while something needs it: a decision that depends on it
// (addressManager.fleetWanted: every fleet_interval, and fleetSettle after
// such a prefix moved), a drain's check (readArea), or a reader of status
// or the metrics finding the view older than fleet_interval (freshFleet).
// A steady node that nobody asks never reads the area. It never blocks a
// check or an address change: the address manager only wakes it through
// kick. mu is never held across vtysh, and is taken alone: never with the
// address manager's or the fleet store's lock held, nor they under it.
type verifier struct {
	addrs *addressManager
	fleet *fleetStore
	clock Clock
	log   logrus.FieldLogger
	kick  wakeup
	done  chan struct{} // run ended
	// window and every are confirmWindow and reverifyEvery; tests shorten them.
	window, every time.Duration

	// numbered numbers the reads as they start, and finishes each when
	// it has completed.
	numbered *barrier

	mu         sync.Mutex
	rb         ReadBack      // nil: verification is off
	fleetEvery time.Duration // frr.fleet_interval
	// lastArea is when the last read of the areas' databases began (zero:
	// none since the read-back was set); areaWanted makes the next read
	// one, whatever lastArea says.
	lastArea   time.Time
	areaWanted bool
	// reads counts the reads asked of each daemon, by what was read
	// (area, self, prefixes).
	reads  map[string]map[string]uint64
	state  map[netip.Prefix]*verifyState
	health lastErrors                   // per daemon read, last read-back error; "" when fine
	errors map[string]map[string]uint64 // per daemon, failed read-backs by frr.Kind
	// seen lists the daemons read successfully since the read-back was
	// set: one of them no longer running is an error, not a daemon that
	// is not configured.
	seen map[string]bool
}

func newVerifier(addrs *addressManager, fleet *fleetStore, kick wakeup, clock Clock, log logrus.FieldLogger) *verifier {
	return &verifier{addrs: addrs, fleet: fleet, clock: clock, log: log, kick: kick, done: make(chan struct{}), fleetEvery: reverifyEvery,
		numbered: newBarrier(),
		window:   confirmWindow, every: reverifyEvery,
		reads: map[string]map[string]uint64{},
		state: map[netip.Prefix]*verifyState{}, health: lastErrors{},
		errors: map[string]map[string]uint64{}, seen: map[string]bool{}}
}

func (v *verifier) run(ctx context.Context) {
	defer close(v.done)
	retry := firstRetry
	for {
		pending := v.verifyOnce(ctx)
		wait := v.every
		if pending {
			wait, retry = min(wait, retry), min(2*retry, maxRetry)
		} else {
			retry = firstRetry
		}
		wait = min(wait, v.untilAreaDue())
		timer := v.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-v.kick:
			timer.Stop()
			retry = firstRetry
		case <-timer.C():
		}
	}
}

// verifyOnce reads the daemons once and compares; it reports whether a
// recent change is still unconfirmed.
func (v *verifier) verifyOnce(ctx context.Context) (pending bool) {
	v.mu.Lock()
	rb, seen := v.rb, maps.Clone(v.seen)
	v.mu.Unlock()
	if rb == nil {
		return false
	}
	this := v.numbered.take()
	defer v.numbered.finish(this)
	// The scope is chosen after the number is taken: a readArea that
	// waits for this read has set areaWanted before it (see readArea).
	scope := frr.Self
	if v.untilAreaDue() == 0 {
		scope = frr.Area
		v.mu.Lock()
		v.lastArea, v.areaWanted = v.clock.Now(), false
		v.mu.Unlock()
	}
	managed := v.addrs.snapshot()
	reads, ok := v.read(ctx, rb, scope, managed, seen)
	if !ok {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.noteReads(reads)
	return v.compare(managed, reads)
}

// read asks every routing daemon that serves a managed prefix's family
// (bgpd once for both; the IGP's database in scope), hands the fleet view
// to the fleet store when the read has one (the area's, or bgpd's alone),
// and tells the address manager whether bgpd originates, which sets the
// order of its moves; ok is false when ctx ended during the read. mu is
// not held: vtysh may take seconds.
func (v *verifier) read(ctx context.Context, rb ReadBack, scope frr.Scope, managed map[netip.Prefix]prefixSnapshot, seen map[string]bool) (reads map[frr.Family]familyRead, ok bool) {
	families := map[frr.Family]bool{}
	for p := range managed {
		families[frr.FamilyOf(p)] = true
	}
	all := slices.SortedFunc(maps.Keys(managed), netip.Prefix.Compare)
	at := v.clock.Now()
	bgp := readBGP(ctx, rb, all, seen) // one call for both families
	reads = map[frr.Family]familyRead{}
	originates := false
	for fam := range families {
		r := readFamily(ctx, rb, fam, scope, bgp[fam], seen)
		if ctx.Err() != nil {
			return nil, false
		}
		if scope == frr.Area || !slices.Contains(r.read, fam.IGPDaemon()) {
			db, err := r.fleet()
			v.fleet.update(fam, db, at, err)
		}
		reads[fam] = r
		originates = originates || r.bgp != nil
	}
	if len(families) > 0 {
		v.addrs.deleteFirst.Store(originates)
		v.addrs.reconsider() // decisions wait for a fresh view of the fleet
	}
	return reads, true
}

// noteReads records each daemon's outcome once (bgpd answered for both
// families in one call, and counts one read), and a family that no daemon
// serves under the family's pair of names until one does. Call with mu
// held.
func (v *verifier) noteReads(reads map[frr.Family]familyRead) {
	outcome := map[string]error{}
	asked := map[[2]string]bool{}
	for _, r := range reads {
		for _, d := range r.read {
			outcome[d] = r.errs[d]
			what := r.scope.String()
			if d == bgpd {
				what = "prefixes"
			}
			asked[[2]string{d, what}] = true
		}
	}
	for k := range asked {
		if v.reads[k[0]] == nil {
			v.reads[k[0]] = map[string]uint64{}
		}
		v.reads[k[0]][k[1]]++
	}
	for _, d := range slices.Sorted(maps.Keys(outcome)) {
		v.noteHealth(d, outcome[d])
	}
	for fam, r := range reads {
		none := eitherDaemon(fam)
		var fe *frr.Error
		if errors.As(r.first, &fe) && fe.Kind == frr.NotConfigured {
			v.noteHealth(none, r.first)
		} else if _, ok := v.health[none]; ok {
			v.noteHealth(none, nil)
			delete(v.health, none)
			delete(v.seen, none)
		}
	}
}

// compare judges each managed prefix against what the daemons said, logs
// a confirmation, a mismatch or its end once, and reports whether a recent
// change is still within its confirmation window. Call with mu held.
func (v *verifier) compare(managed map[netip.Prefix]prefixSnapshot, reads map[frr.Family]familyRead) (pending bool) {
	now := v.clock.Now()
	for p, snap := range managed {
		st := v.state[p]
		if st == nil {
			st = &verifyState{}
			v.state[p] = st
		}
		log := v.log.WithFields(logrus.Fields{"service": snap.service, "prefix": p.String()})
		r := reads[frr.FamilyOf(p)]
		if r.first != nil {
			st.advertised, st.reason, st.bgp = status.AdvertisedUnknown, r.first.Error(), nil
			continue
		}
		verdict := r.judge(p, snap.present)
		st.advertised, st.reason, st.bgp = status.AdvertisedNo, "", verdict.bgp
		if verdict.advertised {
			st.advertised = status.AdvertisedYes
		}
		if verdict.agrees {
			if st.inMismatch {
				log.WithField("advertised", st.advertised).Info("advertisement matches the interface again")
			} else if !st.confirmed.Equal(snap.changedAt) {
				log.WithFields(logrus.Fields{"advertised": st.advertised, "after": now.Sub(snap.changedAt).Round(time.Millisecond).String()}).
					Info("advertisement confirmed")
			}
			st.inMismatch, st.confirmed = false, snap.changedAt
			continue
		}
		if now.Sub(snap.changedAt) < v.window {
			pending = true
			continue
		}
		st.reason = verdict.reason
		if !st.inMismatch {
			st.inMismatch = true
			st.mismatches++
			log.WithFields(logrus.Fields{"present": snap.present, "advertised": st.advertised}).Warn(st.reason)
		}
	}
	for p := range v.state {
		if _, ok := managed[p]; !ok {
			delete(v.state, p)
		}
	}
	return pending
}

// noteHealth logs a change in a daemon's read-back health and notes a
// daemon read successfully as seen. Call with mu held.
func (v *verifier) noteHealth(daemon string, err error) {
	if err != nil {
		kind := string(frr.Failed)
		var fe *frr.Error
		if errors.As(err, &fe) {
			kind = string(fe.Kind)
		}
		if v.errors[daemon] == nil {
			v.errors[daemon] = map[string]uint64{}
		}
		v.errors[daemon][kind]++
	} else {
		v.seen[daemon] = true
	}
	switch {
	case !v.health.note(daemon, err):
	case err != nil:
		v.log.WithField("daemon", daemon).WithError(err).
			Warn("cannot read back what FRR advertises; checks and address control go on")
	default:
		v.log.WithField("daemon", daemon).Info("FRR read-back works again")
	}
}

func mismatchReason(p netip.Prefix, present bool) string {
	switch {
	case present && p.Addr().Is4():
		return "address is on the interface but ospfd does not advertise it: the FRR configuration does not cover " +
			p.String() + "; put it in a `network` statement of the area under `router ospf` and make sure the interface is in OSPF (e.g. `ip ospf passive` on lo)"
	case present:
		return "address is on the interface but ospf6d does not advertise it: the FRR configuration does not cover " +
			p.String() + "; put the interface in the area (`ipv6 ospf6 area 0` under `interface lo`)"
	}
	return "address is off the interface but FRR still advertises " + p.String() +
		" (a static or redistributed route?); traffic may still be drawn here"
}

// readArea has the areas' databases read and returns once a read that
// started after the call has completed, or ctx ends, or verification is
// off. areaWanted is set before the number to wait for is taken, so that
// the read with that number (or a later one) sees it.
func (v *verifier) readArea(ctx context.Context) {
	v.mu.Lock()
	v.areaWanted = true
	v.mu.Unlock()
	want := v.numbered.last() + 1
	v.kick.notify()
	v.numbered.waitFor(ctx, v.done, func() bool {
		v.mu.Lock()
		off := v.rb == nil
		v.mu.Unlock()
		return off || v.numbered.done(want)
	})
}

// freshFleet has the areas' databases read when the last read began
// fleet_interval ago or more (or never), and waits for it until ctx ends:
// a reader of status or the metrics sees a view at most fleet_interval
// old, and ospfd is asked at most once per fleet_interval however often
// they come.
func (v *verifier) freshFleet(ctx context.Context) {
	v.mu.Lock()
	fresh := v.rb == nil || (!v.lastArea.IsZero() && v.clock.Now().Sub(v.lastArea) < v.fleetEvery)
	v.mu.Unlock()
	if !fresh {
		v.readArea(ctx)
	}
}

// untilAreaDue is how long until the areas' databases are due to be
// read (0: now): when asked (areaWanted); else, while a decision depends
// on the fleet view, fleet_interval after the last read, or fleetSettle
// after such a prefix moved if no read has begun since; never otherwise
// (idleWait).
func (v *verifier) untilAreaDue() time.Duration {
	v.mu.Lock()
	off, wanted, last, every := v.rb == nil, v.areaWanted, v.lastArea, v.fleetEvery
	v.mu.Unlock()
	switch {
	case off:
		return idleWait
	case wanted:
		return 0
	}
	prefixes := v.addrs.fleetWanted()
	if len(prefixes) == 0 {
		return idleWait
	}
	now := v.clock.Now()
	wait := last.Add(every).Sub(now)
	for _, moved := range prefixes {
		if due := moved.Add(fleetSettle); last.Before(due) {
			wait = min(wait, due.Sub(now))
		}
	}
	return max(wait, 0)
}

// setReadBack switches the read-back (nil turns verification and the
// fleet view off), sets how often the fleet is read when nothing changes,
// and verifies again.
func (v *verifier) setReadBack(rb ReadBack, fleetEvery time.Duration) {
	if fleetEvery <= 0 {
		fleetEvery = reverifyEvery // a configuration built by hand, not loaded
	}
	v.mu.Lock()
	v.rb, v.fleetEvery, v.lastArea = rb, fleetEvery, time.Time{}
	if rb == nil {
		v.state, v.health, v.seen = map[netip.Prefix]*verifyState{}, lastErrors{}, map[string]bool{}
		v.fleet.forget()
	}
	v.mu.Unlock()
	v.kick.notify()
}

// fill sets the read-back's part of the status of each of prefixes (out
// has one entry per prefix, in order): what FRR says, or unknown with why.
func (v *verifier) fill(prefixes []netip.Prefix, out []status.Prefix) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, pfx := range prefixes {
		p := &out[i]
		switch st, ok := v.state[pfx]; {
		case v.rb == nil:
			p.Advertised, p.AdvertisedReason = status.AdvertisedUnknown, "read-back is off (frr.verify: false)"
		case !ok:
			p.Advertised, p.AdvertisedReason = status.AdvertisedUnknown, "not verified yet"
		default:
			p.Advertised, p.AdvertisedReason, p.Mismatches, p.BGP = st.advertised, st.reason, st.mismatches, st.bgp
		}
	}
}

// healthStatus returns every daemon read back so far: ospfd, ospf6d,
// bgpd, then any other (a family no daemon serves).
func (v *verifier) healthStatus() []status.FRR {
	v.mu.Lock()
	defer v.mu.Unlock()
	order := []string{"ospfd", "ospf6d", bgpd}
	daemons := slices.Collect(maps.Keys(v.health))
	slices.SortFunc(daemons, func(a, b string) int {
		ia, ib := slices.Index(order, a), slices.Index(order, b)
		if ia < 0 {
			ia = len(order)
		}
		if ib < 0 {
			ib = len(order)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	out := []status.FRR{}
	for _, d := range daemons {
		msg := v.health[d]
		errs := maps.Clone(v.errors[d])
		if errs == nil {
			errs = map[string]uint64{}
		}
		reads := maps.Clone(v.reads[d])
		if reads == nil {
			reads = map[string]uint64{}
		}
		out = append(out, status.FRR{Daemon: d, OK: msg == "", Error: msg, Errors: errs, Reads: reads})
	}
	return out
}
