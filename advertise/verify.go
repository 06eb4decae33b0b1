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

// verifier reads the link-state databases on its own goroutine: it
// confirms that the routing daemons follow the interfaces, and it keeps the
// fleet view (fleetStore) that the address manager decides from, read
// again fleetSettle after each move and every fleet_interval. It never
// blocks a check or an address change: the address manager only wakes it
// through kick. mu is never held across vtysh.
type verifier struct {
	addrs *addressManager
	fleet *fleetStore
	clock Clock
	log   logrus.FieldLogger
	kick  wakeup
	done  chan struct{} // run ended
	// window and every are confirmWindow and reverifyEvery; tests shorten them.
	window, every time.Duration

	// reads numbers the reads as they start, and finishes each when it
	// has completed.
	reads *barrier

	mu         sync.Mutex
	rb         ReadBack      // nil: verification is off
	fleetEvery time.Duration // frr.fleet_interval
	state      map[netip.Prefix]*verifyState
	health     lastErrors                   // per daemon read, last read-back error; "" when fine
	errors     map[string]map[string]uint64 // per daemon, failed read-backs by frr.Kind
	// seen lists the daemons read successfully since the read-back was
	// set: one of them no longer running is an error, not a daemon that
	// is not configured.
	seen map[string]bool
}

func newVerifier(addrs *addressManager, fleet *fleetStore, kick wakeup, clock Clock, log logrus.FieldLogger) *verifier {
	return &verifier{addrs: addrs, fleet: fleet, clock: clock, log: log, kick: kick, done: make(chan struct{}), fleetEvery: reverifyEvery,
		reads:  newBarrier(),
		window: confirmWindow, every: reverifyEvery,
		state: map[netip.Prefix]*verifyState{}, health: lastErrors{},
		errors: map[string]map[string]uint64{}, seen: map[string]bool{}}
}

func (v *verifier) run(ctx context.Context) {
	defer close(v.done)
	retry := firstRetry
	for {
		pending := v.verifyOnce(ctx)
		v.mu.Lock()
		wait := min(v.every, v.fleetEvery)
		v.mu.Unlock()
		if pending {
			wait, retry = min(wait, retry), min(2*retry, maxRetry)
		} else {
			retry = firstRetry
		}
		wait = min(wait, v.untilSettled())
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
	this := v.reads.take()
	defer v.reads.finish(this)
	managed := v.addrs.snapshot()
	reads, ok := v.read(ctx, rb, managed, seen)
	if !ok {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.noteReads(reads)
	return v.compare(managed, reads)
}

// read asks every routing daemon that serves a managed prefix's family
// (bgpd once for both), hands the fleet view to the fleet store and tells
// the address manager whether bgpd originates, which sets the order of its
// moves; ok is false when ctx ended during the read. mu is not held: vtysh
// may take seconds.
func (v *verifier) read(ctx context.Context, rb ReadBack, managed map[netip.Prefix]prefixSnapshot, seen map[string]bool) (reads map[frr.Family]familyRead, ok bool) {
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
		r := readFamily(ctx, rb, fam, bgp[fam], seen)
		if ctx.Err() != nil {
			return nil, false
		}
		db, err := r.fleet()
		v.fleet.update(fam, db, at, err)
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
	for _, r := range reads {
		for _, d := range r.read {
			outcome[d] = r.errs[d]
		}
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

// readAgain has the databases read again and returns once a read that
// started after the call has completed, or ctx ends, or verification is
// off.
func (v *verifier) readAgain(ctx context.Context) {
	want := v.reads.last() + 1
	v.kick.notify()
	v.reads.waitFor(ctx, v.done, func() bool {
		v.mu.Lock()
		off := v.rb == nil
		v.mu.Unlock()
		return off || v.reads.done(want)
	})
}

// untilSettled is how long until a prefix that moved has settled
// (fleetSettle) and wants a fresh read of its fleet; 0 when one is due.
func (v *verifier) untilSettled() time.Duration {
	v.mu.Lock()
	off := v.rb == nil
	v.mu.Unlock()
	if off {
		return idleWait
	}
	now, wait := v.clock.Now(), idleWait
	for p, snap := range v.addrs.snapshot() {
		due := snap.changedAt.Add(fleetSettle)
		if v.fleet.attemptedAt(p).Before(due) {
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
	v.rb, v.fleetEvery = rb, fleetEvery
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
		out = append(out, status.FRR{Daemon: d, OK: msg == "", Error: msg, Errors: errs})
	}
	return out
}
