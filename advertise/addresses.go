package advertise

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// AddressControl reads and changes the interface; *ifaddr.Controller is the
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
)

// addressManager is the only writer of the interface. Callers record wishes
// (set) under mu, which is never held across a command; one worker
// goroutine (run) carries them out and reconciles the interface with them,
// so changes and reconciliations are serialised without a lock: a
// reconciliation can never act on a stale wish and undo a withdrawal that
// happened meanwhile, and a hung ip blocks no reader.
type addressManager struct {
	ctl   AddressControl
	dev   string
	clock Clock
	log   logrus.FieldLogger
	// onChange is called, without blocking, when a prefix's presence
	// changes: the read-back verifier listens.
	onChange func()
	work     wakeup        // wakes the worker
	done     chan struct{} // the worker ended

	mu       sync.Mutex
	prefixes map[netip.Prefix]*prefixState
	// Every wish and reconciliation request takes the next generation;
	// applied is the last one the worker carried out. progress is closed
	// and replaced whenever applied moves.
	wished, applied uint64
	progress        chan struct{}
	reconcileAsked  bool

	// The worker's own: read and written only by run.
	showErr  string // last failure to read the interface, logged once
	linkDown bool
}

type prefixState struct {
	service   string
	want      bool
	pending   bool   // want not carried out yet
	reason    string // why want was last set
	release   bool   // stop managing once the pending wish is carried out
	present   bool   // as last applied or read
	changedAt time.Time
	err       error // last failure to apply
	failures  int
	retryAt   time.Time
}

// change is one command the worker runs, as decided under mu.
type change struct {
	prefix  netip.Prefix
	st      *prefixState // the state it was decided for
	service string
	want    bool
	reason  string
	wasErr  error // the failure this retries, if any
	present bool  // presence before the command, for the log
}

func newAddressManager(ctl AddressControl, dev string, clock Clock, log logrus.FieldLogger, onChange func()) *addressManager {
	return &addressManager{ctl: ctl, dev: dev, clock: clock, log: log, onChange: onChange,
		work: newWakeup(), done: make(chan struct{}),
		prefixes: map[netip.Prefix]*prefixState{}, progress: make(chan struct{})}
}

// show reads the interface once, for start-up and reload decisions.
func (m *addressManager) show(ctx context.Context) (ifaddr.Link, error) {
	ctx, cancel := context.WithTimeout(ctx, ipTimeout)
	defer cancel()
	return m.ctl.Show(ctx)
}

// manage makes service the owner of prefixes with the given wish, without
// touching the interface; the next reconciliation carries it out.
func (m *addressManager) manage(service string, prefixes []netip.Prefix, want bool, present func(netip.Prefix) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range prefixes {
		m.prefixes[p] = &prefixState{service: service, want: want, present: present(p), changedAt: m.clock.Now()}
	}
}

// set records the wish for the managed ones of prefixes and wakes the
// worker; it returns the generation to wait for. It never blocks on a
// command, so callers may hold their own lock (lock order: theirs, then mu).
func (m *addressManager) set(prefixes []netip.Prefix, want bool, reason string) uint64 {
	return m.record(prefixes, want, reason, false)
}

// retire withdraws prefixes and stops managing them once that is done
// (tried once; no retry).
func (m *addressManager) retire(prefixes []netip.Prefix, reason string) uint64 {
	return m.record(prefixes, false, reason, true)
}

func (m *addressManager) record(prefixes []netip.Prefix, want bool, reason string, release bool) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range prefixes {
		if st, ok := m.prefixes[p]; ok {
			st.want, st.pending, st.reason, st.release = want, true, reason, release
		}
	}
	return m.next()
}

// reconcileSoon asks the worker to read the interface and put back whatever
// differs from the wishes; it returns the generation to wait for.
func (m *addressManager) reconcileSoon() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reconcileAsked = true
	return m.next()
}

// next takes a generation and wakes the worker. Call with mu held.
func (m *addressManager) next() uint64 {
	m.wished++
	m.work.notify()
	return m.wished
}

// wait returns once the worker has carried out generation gen, or ctx ends,
// or the worker has stopped.
func (m *addressManager) wait(ctx context.Context, gen uint64) {
	for {
		m.mu.Lock()
		applied, progress := m.applied, m.progress
		m.mu.Unlock()
		if applied >= gen {
			return
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return
		case <-m.done:
			return
		}
	}
}

// run is the worker: it carries out wishes and reconciliations until ctx
// ends. Commands run with their own deadline, not ctx's, so that the
// on_exit withdrawal after the loops stopped still works.
func (m *addressManager) run(ctx context.Context) {
	defer close(m.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.work:
		}
		m.mu.Lock()
		gen, reconcile := m.wished, m.reconcileAsked
		m.reconcileAsked = false
		changes := m.pendingChanges()
		m.mu.Unlock()

		m.apply(changes)
		if reconcile {
			m.reconcile()
		}

		m.mu.Lock()
		m.applied = gen
		close(m.progress)
		m.progress = make(chan struct{})
		m.mu.Unlock()
	}
}

// pendingChanges takes every wish not carried out yet. Call with mu held.
func (m *addressManager) pendingChanges() []change {
	var out []change
	for p, st := range m.prefixes {
		if st.pending {
			st.pending = false
			out = append(out, m.changeFor(p, st, st.reason))
		}
	}
	return out
}

func (m *addressManager) changeFor(p netip.Prefix, st *prefixState, reason string) change {
	return change{prefix: p, st: st, service: st.service, want: st.want, reason: reason, wasErr: st.err, present: st.present}
}

// apply runs each change's command, without mu, and records the outcome;
// in prefix order, so that what happens does not depend on map order.
func (m *addressManager) apply(changes []change) {
	slices.SortFunc(changes, func(a, b change) int { return a.prefix.Compare(b.prefix) })
	for _, c := range changes {
		ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
		op, verb := m.ctl.Del, "removed"
		if c.want {
			op, verb = m.ctl.Add, "added"
		}
		err := op(ctx, c.prefix)
		cancel()
		m.record1(c, err, verb)
	}
}

// record1 records one command's outcome and logs it once.
func (m *addressManager) record1(c change, err error, verb string) {
	log := m.log.WithFields(logrus.Fields{"service": c.service, "prefix": c.prefix.String(), "interface": m.dev})
	m.mu.Lock()
	st := c.st
	if st.release && m.prefixes[c.prefix] == st && !st.pending {
		delete(m.prefixes, c.prefix)
	}
	if err != nil {
		st.failures++
		st.retryAt = m.clock.Now().Add(min(time.Second<<min(st.failures-1, 5), maxRetryDelay))
		retryIn := st.retryAt.Sub(m.clock.Now())
		st.err = err
		m.mu.Unlock()
		if c.wasErr == nil || c.wasErr.Error() != err.Error() {
			log.WithError(err).WithField("retry_in", retryIn.String()).Error("cannot change address; will retry")
		}
		return
	}
	failures := st.failures
	changed := m.observe(st, c.want)
	st.err, st.failures = nil, 0
	m.mu.Unlock()
	if c.wasErr != nil {
		log.WithField("failures", failures).Info("address change works again")
	}
	if c.present != c.want || c.wasErr != nil {
		log.WithField("reason", c.reason).Info(verb + " address")
	}
	if changed && m.onChange != nil {
		m.onChange()
	}
}

// observe records p's presence and reports whether it changed. Call with mu
// held.
func (m *addressManager) observe(st *prefixState, present bool) bool {
	if st.present == present {
		return false
	}
	st.present, st.changedAt = present, m.clock.Now()
	return true
}

// reconcile reads the interface and puts back whatever differs from the
// wishes: addresses removed or added by hand, and changes that failed.
func (m *addressManager) reconcile() {
	m.mu.Lock()
	empty := len(m.prefixes) == 0
	m.mu.Unlock()
	if empty {
		return
	}
	link, err := m.show(context.Background())
	now := m.clock.Now()
	var fixes []change
	changed := false
	if err != nil {
		if err.Error() != m.showErr {
			m.log.WithError(err).WithField("interface", m.dev).Error("cannot read the interface; only failed changes are retried")
			m.showErr = err.Error()
		}
		// Add and del are idempotent, so a change that failed is tried
		// again without knowing the interface: a reader that broke (say,
		// new ip -j output) must not hold a withdrawal back.
		m.mu.Lock()
		for p, st := range m.prefixes {
			if st.err != nil && !st.pending && !now.Before(st.retryAt) {
				fixes = append(fixes, m.changeFor(p, st, "retrying a failed change"))
			}
		}
		m.mu.Unlock()
		m.apply(fixes)
		return
	}
	if m.showErr != "" {
		m.log.WithField("interface", m.dev).Info("reading the interface works again")
		m.showErr = ""
	}
	if !link.Up && !m.linkDown {
		m.log.WithField("interface", m.dev).Error("interface is down: none of its addresses is advertised; set it up with `ip link set dev " + m.dev + " up`")
	} else if link.Up && m.linkDown {
		m.log.WithField("interface", m.dev).Info("interface is up again")
	}
	m.linkDown = !link.Up
	var drift []change
	m.mu.Lock()
	for p, st := range m.prefixes {
		if st.pending {
			continue // a newer wish: the next round of the worker carries it out
		}
		has := link.Has(p)
		if has == st.want && st.err == nil {
			changed = m.observe(st, has) || changed
			continue
		}
		if st.err != nil && now.Before(st.retryAt) {
			continue
		}
		reason := "retrying a failed change"
		if st.err == nil {
			reason = "changed outside anycast-watchdog"
		}
		changed = m.observe(st, has) || changed
		c := m.changeFor(p, st, reason)
		fixes = append(fixes, c)
		if st.err == nil {
			drift = append(drift, c)
		}
	}
	m.mu.Unlock()
	if changed && m.onChange != nil {
		m.onChange()
	}
	slices.SortFunc(drift, func(a, b change) int { return a.prefix.Compare(b.prefix) })
	for _, c := range drift {
		m.log.WithFields(logrus.Fields{"service": c.service, "prefix": c.prefix.String(), "interface": m.dev,
			"present": c.present, "want": c.want}).Warn("address changed outside anycast-watchdog; putting it back")
	}
	m.apply(fixes)
}

// withdrawAll wishes every managed prefix away, for on_exit: withdraw.
func (m *addressManager) withdrawAll(reason string) uint64 {
	m.mu.Lock()
	prefixes := make([]netip.Prefix, 0, len(m.prefixes))
	for p := range m.prefixes {
		prefixes = append(prefixes, p)
	}
	m.mu.Unlock()
	return m.set(prefixes, false, reason)
}

type prefixSnapshot struct {
	service   string
	present   bool
	changedAt time.Time
}

// snapshot returns every managed prefix's presence.
func (m *addressManager) snapshot() map[netip.Prefix]prefixSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[netip.Prefix]prefixSnapshot, len(m.prefixes))
	for p, st := range m.prefixes {
		out[p] = prefixSnapshot{service: st.service, present: st.present, changedAt: st.changedAt}
	}
	return out
}

// status reports the prefixes in the order given; the read-back's part is
// filled in by the verifier.
func (m *addressManager) status(prefixes []netip.Prefix) []status.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]status.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if st, ok := m.prefixes[p]; ok {
			ps := status.Prefix{Prefix: p.String(), Wanted: st.want, Present: st.present}
			if st.err != nil {
				ps.Error = st.err.Error()
			}
			out = append(out, ps)
		}
	}
	return out
}
