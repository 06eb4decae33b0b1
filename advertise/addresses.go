package advertise

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
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

// addressManager is the only writer of the interface. Every change and
// every reconciliation runs under one lock, so a reconciliation can never
// act on a stale wish and undo a withdrawal that happened meanwhile.
type addressManager struct {
	ctl   AddressControl
	dev   string
	clock Clock
	log   logrus.FieldLogger

	// onChange is called, without blocking, when a prefix's presence
	// changes: the read-back verifier listens.
	onChange func()

	mu       sync.Mutex
	prefixes map[netip.Prefix]*prefixState
	showErr  string // last failure to read the interface, logged once
	linkDown bool
}

type prefixState struct {
	service   string
	want      bool
	present   bool      // as last applied or read
	changedAt time.Time // when present last changed
	err       error     // last failure to apply
	failures  int
	retryAt   time.Time
}

// PrefixStatus is what status shows for one prefix.
type PrefixStatus struct {
	Prefix  netip.Prefix
	Want    bool
	Present bool
	Err     error        // last failure to change it
	Verify  VerifyStatus // what FRR says
}

func newAddressManager(ctl AddressControl, dev string, clock Clock, log logrus.FieldLogger) *addressManager {
	return &addressManager{ctl: ctl, dev: dev, clock: clock, log: log, prefixes: map[netip.Prefix]*prefixState{}}
}

// show reads the interface once, for start-up decisions.
func (m *addressManager) show(ctx context.Context) (ifaddr.Link, error) {
	ctx, cancel := context.WithTimeout(ctx, ipTimeout)
	defer cancel()
	return m.ctl.Show(ctx)
}

// manage makes service the owner of prefixes with the given wish, without
// touching the interface; the next set or reconcile applies it.
func (m *addressManager) manage(service string, prefixes []netip.Prefix, want bool, present func(netip.Prefix) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range prefixes {
		m.prefixes[p] = &prefixState{service: service, want: want, present: present(p), changedAt: m.clock.Now()}
	}
}

// release stops managing prefixes and leaves them as they are.
func (m *addressManager) release(prefixes []netip.Prefix) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range prefixes {
		delete(m.prefixes, p)
	}
}

// set records the wish for prefixes and applies it at once.
func (m *addressManager) set(ctx context.Context, prefixes []netip.Prefix, want bool, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range prefixes {
		st, ok := m.prefixes[p]
		if !ok {
			continue
		}
		st.want = want
		m.apply(ctx, p, st, reason)
	}
}

// apply makes the interface match st.want for p. Call with mu held.
func (m *addressManager) apply(ctx context.Context, p netip.Prefix, st *prefixState, reason string) {
	ctx, cancel := context.WithTimeout(ctx, ipTimeout)
	defer cancel()
	op, verb := m.ctl.Del, "removed"
	if st.want {
		op, verb = m.ctl.Add, "added"
	}
	log := m.log.WithFields(logrus.Fields{"service": st.service, "prefix": p.String(), "interface": m.dev})
	if err := op(ctx, p); err != nil {
		st.failures++
		st.retryAt = m.clock.Now().Add(min(time.Second<<min(st.failures-1, 5), maxRetryDelay))
		if st.err == nil || st.err.Error() != err.Error() {
			log.WithError(err).WithField("retry_in", st.retryAt.Sub(m.clock.Now()).String()).
				Error("cannot change address; will retry")
		}
		st.err = err
		return
	}
	if st.err != nil {
		log.WithField("failures", st.failures).Info("address change works again")
	}
	if st.present != st.want || st.err != nil {
		log.WithField("reason", reason).Info(verb + " address")
	}
	m.observe(st, st.want)
	st.err, st.failures = nil, 0
}

// observe records p's presence. Call with mu held.
func (m *addressManager) observe(st *prefixState, present bool) {
	if st.present == present {
		return
	}
	st.present, st.changedAt = present, m.clock.Now()
	if m.onChange != nil {
		m.onChange()
	}
}

// reconcile reads the interface and puts back whatever differs from the
// wishes: addresses removed or added by hand, and changes that failed.
func (m *addressManager) reconcile(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.prefixes) == 0 {
		return
	}
	now := m.clock.Now()
	link, err := m.show(ctx)
	if err != nil {
		if err.Error() != m.showErr {
			m.log.WithError(err).WithField("interface", m.dev).Error("cannot read the interface; only failed changes are retried")
			m.showErr = err.Error()
		}
		// Add and del are idempotent, so a change that failed is tried
		// again without knowing the interface: a reader that broke (say,
		// new ip -j output) must not hold a withdrawal back.
		for p, st := range m.prefixes {
			if st.err != nil && !now.Before(st.retryAt) {
				m.apply(ctx, p, st, "retrying a failed change")
			}
		}
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
	for p, st := range m.prefixes {
		has := link.Has(p)
		if has == st.want && st.err == nil {
			m.observe(st, has)
			continue
		}
		if st.err != nil && now.Before(st.retryAt) {
			continue
		}
		reason := "retrying a failed change"
		if st.err == nil {
			reason = "changed outside anycast-watchdog"
			m.log.WithFields(logrus.Fields{"service": st.service, "prefix": p.String(), "interface": m.dev,
				"present": has, "want": st.want}).Warn("address changed outside anycast-watchdog; putting it back")
		}
		m.observe(st, has)
		m.apply(ctx, p, st, reason)
	}
}

// withdrawAll removes every managed prefix, for on_exit: withdraw.
func (m *addressManager) withdrawAll(ctx context.Context, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, st := range m.prefixes {
		st.want = false
		m.apply(ctx, p, st, reason)
	}
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

// status reports the prefixes in the order given.
func (m *addressManager) status(prefixes []netip.Prefix) []PrefixStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PrefixStatus, 0, len(prefixes))
	for _, p := range prefixes {
		if st, ok := m.prefixes[p]; ok {
			out = append(out, PrefixStatus{Prefix: p, Want: st.want, Present: st.present, Err: st.err})
		}
	}
	return out
}
