package advertise

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// AddressControl reads and changes one interface; *ifaddr.Controller is the
// real one. Add and Del must be idempotent.
type AddressControl interface {
	Show(ctx context.Context) (ifaddr.Link, error)
	Add(ctx context.Context, p netip.Prefix) error
	Del(ctx context.Context, p netip.Prefix) error
}

const (
	// ipTimeout bounds one ip call; ip answers in milliseconds.
	ipTimeout = 5 * time.Second
	// maxRetryDelay caps the backoff between retries of a failing change.
	maxRetryDelay = 16 * time.Second
	// idleWait is the worker's wait when nothing is due: it is woken for
	// everything else.
	idleWait = time.Hour
)

// addressManager is the only writer of the interfaces. Callers record what
// a service asks of its prefixes (set) under mu, which is never held across
// a command; one worker goroutine (run) decides where each prefix goes
// (decide) and carries it out, and reconciles the interfaces with it, so
// changes are serialised without a lock: a reconciliation can never act on
// a stale wish, and a hung ip blocks no reader.
type addressManager struct {
	primary    AddressControl
	primaryDev string
	// lastResort is nil when failing open is off or the interface could
	// not be found nor created.
	lastResort AddressControl
	lrDev      string
	fleet      *fleetStore
	clock      Clock
	log        logrus.FieldLogger
	// onChange is called, without blocking, when a prefix's place changes
	// (added, removed or moved): the verifier confirms it and reads the
	// fleet again once the move has settled.
	onChange func()
	work     wakeup        // wakes the worker
	done     chan struct{} // the worker ended
	// deleteFirst: bgpd originates the prefixes, so a move between the
	// interfaces deletes before it adds (see moveAtOnce); the verifier
	// sets it after each read.
	deleteFirst atomic.Bool

	// gens numbers the wishes: each wish and reconciliation request takes
	// the next generation under mu, and the worker finishes them.
	gens *barrier

	mu             sync.Mutex
	prefixes       map[netip.Prefix]*prefixState
	reconcileAsked bool

	// The worker's own: read and written only by run.
	showErr  lastErrors // per interface, the last failure to read it
	linkDown bool
}

type prefixState struct {
	service  string
	failOpen bool
	grace    time.Duration
	intent   Intent
	damped   bool      // IntentAdvertise held back from normal metric (wish.Damped)
	degraded bool      // IntentAdvertise with its degrade checks fallen (wish.Degraded)
	since    time.Time // when intent last changed: a drain's grace runs from it
	reason   string    // why intent was last set
	release  bool      // stop managing once it is absent (tried once)
	// Where it is, as last applied or read.
	onPrimary, onLastResort bool
	movedAt                 time.Time // when its location last changed
	target                  Location  // the last decision
	err                     error     // last failure to apply
	failures                int
	retryAt                 time.Time
}

func (st *prefixState) location() Location {
	switch {
	case st.onPrimary:
		return OnPrimary
	case st.onLastResort:
		return OnLastResort
	}
	return Absent
}

// placed reports whether the prefix is exactly where target says: there,
// and on no other interface.
func (st *prefixState) placed(target Location) bool {
	return st.onPrimary == (target == OnPrimary) && st.onLastResort == (target == OnLastResort)
}

func newAddressManager(primary AddressControl, primaryDev string, fleet *fleetStore, clock Clock, log logrus.FieldLogger, onChange func()) *addressManager {
	return &addressManager{primary: primary, primaryDev: primaryDev, fleet: fleet, clock: clock, log: log, onChange: onChange,
		work: newWakeup(), done: make(chan struct{}), showErr: lastErrors{},
		prefixes: map[netip.Prefix]*prefixState{}, gens: newBarrier()}
}

// useLastResort sets the last-resort interface; nil turns failing open off.
// Call before run.
func (m *addressManager) useLastResort(ctl AddressControl, dev string) {
	m.lastResort, m.lrDev = ctl, dev
}

// show reads the primary interface once, for start-up and reload decisions.
func (m *addressManager) show(ctx context.Context) (ifaddr.Link, error) {
	return m.read(ctx, m.primary)
}

// showLastResort reads the last-resort interface ("" link when off).
func (m *addressManager) showLastResort(ctx context.Context) (ifaddr.Link, error) {
	if m.lastResort == nil {
		return ifaddr.Link{}, nil
	}
	return m.read(ctx, m.lastResort)
}

func (m *addressManager) read(ctx context.Context, ctl AddressControl) (ifaddr.Link, error) {
	ctx, cancel := context.WithTimeout(ctx, ipTimeout)
	defer cancel()
	return ctl.Show(ctx)
}

// managed is what manage needs of one service.
type managed struct {
	service  string
	prefixes []netip.Prefix
	wish     wish
	reason   string
	failOpen bool
	grace    time.Duration
}

// manage makes a service the owner of its prefixes, where they are now
// (primary and lastResort say), without touching the interfaces; the
// worker's next step decides and carries out where they go.
func (m *addressManager) manage(s managed, primary, lastResort ifaddr.Link) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	for _, p := range s.prefixes {
		st := &prefixState{service: s.service, failOpen: s.failOpen, grace: s.grace,
			intent: s.wish.Intent, damped: s.wish.Damped, degraded: s.wish.Degraded, since: now, reason: s.reason,
			onPrimary: primary.Has(p), onLastResort: lastResort.Has(p), movedAt: now}
		st.target = st.location() // until the worker decides
		m.prefixes[p] = st
	}
}

// set records what the service asks of its managed prefixes and wakes the
// worker; it returns the generation to wait for. It never blocks on a
// command, so callers may hold their own lock (lock order: theirs, then mu).
func (m *addressManager) set(prefixes []netip.Prefix, w wish, reason string) uint64 {
	return m.record(prefixes, w, reason, false)
}

// retire withdraws prefixes at once and stops managing them once that is
// done (tried once; no retry).
func (m *addressManager) retire(prefixes []netip.Prefix, reason string) uint64 {
	return m.record(prefixes, wish{Intent: IntentWithdraw}, reason, true)
}

func (m *addressManager) record(prefixes []netip.Prefix, w wish, reason string, release bool) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	for _, p := range prefixes {
		if st, ok := m.prefixes[p]; ok {
			if st.intent != w.Intent {
				st.since = now
			}
			st.intent, st.damped, st.degraded, st.reason, st.release = w.Intent, w.Damped, w.Degraded, reason, release
		}
	}
	return m.next()
}

// reconcileSoon asks the worker to read the interfaces and put back
// whatever differs from its decisions; it returns the generation to wait
// for.
func (m *addressManager) reconcileSoon() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reconcileAsked = true
	return m.next()
}

// reconsider asks the worker to decide again (the fleet view changed); it
// returns the generation to wait for.
func (m *addressManager) reconsider() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.next()
}

// next takes a generation and wakes the worker. Call with mu held.
func (m *addressManager) next() uint64 {
	gen := m.gens.take()
	m.work.notify()
	return gen
}

// wait returns once the worker has carried out generation gen, or ctx ends,
// or the worker has stopped.
func (m *addressManager) wait(ctx context.Context, gen uint64) {
	m.gens.wait(ctx, gen, m.done)
}

// waitUntil returns once cond, evaluated under mu after each step of the
// worker, holds, or ctx ends, or the worker has stopped.
func (m *addressManager) waitUntil(ctx context.Context, cond func() bool) {
	m.gens.waitFor(ctx, m.done, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return cond()
	})
}

// run is the worker: it decides and carries out where every prefix goes,
// when woken and when something falls due (a drain's grace, a retry),
// until ctx ends. Commands run with their own deadline, not ctx's, so that
// the on_exit withdrawal after the loops stopped still works.
func (m *addressManager) run(ctx context.Context) {
	defer close(m.done)
	for {
		timer := m.clock.NewTimer(m.untilDue())
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-m.work:
			timer.Stop()
		case <-timer.C():
		}
		m.mu.Lock()
		gen, reconcile := m.gens.last(), m.reconcileAsked
		m.reconcileAsked = false
		m.mu.Unlock()

		if reconcile {
			m.reconcile()
		}
		m.step()

		m.gens.finish(gen)
	}
}

// untilDue is how long the worker may sleep: until the first drain grace
// ends or the first retry is due.
func (m *addressManager) untilDue() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	now, wait := m.clock.Now(), idleWait
	for _, st := range m.prefixes {
		switch {
		case st.err != nil:
			wait = min(wait, st.retryAt.Sub(now))
		case st.intent == IntentDrain && st.onLastResort:
			wait = min(wait, st.since.Add(st.grace).Sub(now))
		}
	}
	return max(wait, 0)
}

// withdrawAll drains every managed prefix, for on_exit: withdraw.
func (m *addressManager) withdrawAll(reason string) uint64 {
	m.mu.Lock()
	prefixes := make([]netip.Prefix, 0, len(m.prefixes))
	for p := range m.prefixes {
		prefixes = append(prefixes, p)
	}
	m.mu.Unlock()
	return m.set(prefixes, wish{Intent: IntentDrain}, reason)
}

// settled returns once every managed prefix is where the decisions put it
// and no drain grace is still running, or ctx ends.
func (m *addressManager) settled(ctx context.Context) {
	m.waitUntil(ctx, func() bool {
		for _, st := range m.prefixes {
			if !st.placed(st.target) || (st.intent == IntentDrain && st.onLastResort) {
				return false
			}
		}
		return true
	})
}

type prefixSnapshot struct {
	service   string
	present   bool // on either interface
	changedAt time.Time
}

// snapshot returns every managed prefix's presence.
func (m *addressManager) snapshot() map[netip.Prefix]prefixSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[netip.Prefix]prefixSnapshot, len(m.prefixes))
	for p, st := range m.prefixes {
		out[p] = prefixSnapshot{service: st.service, present: st.onPrimary || st.onLastResort, changedAt: st.movedAt}
	}
	return out
}

// status reports the prefixes in the order given; the read-back's part is
// filled in by the verifier. Both slices have one entry per prefix given,
// in that order; a prefix not managed (yet) is absent and not wanted.
func (m *addressManager) status(prefixes []netip.Prefix) ([]status.Prefix, []Location) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out, where := make([]status.Prefix, len(prefixes)), make([]Location, len(prefixes))
	for i, p := range prefixes {
		out[i].Prefix = p.String()
		st, ok := m.prefixes[p]
		if !ok {
			continue
		}
		ps := &out[i]
		ps.Wanted, ps.Present, where[i] = st.target != Absent, st.onPrimary || st.onLastResort, st.location()
		switch where[i] {
		case OnPrimary:
			ps.Interface = m.primaryDev
		case OnLastResort:
			ps.Interface = m.lrDev
		}
		if st.err != nil {
			ps.Error = st.err.Error()
		}
	}
	return out, where
}
