package advertise

import (
	"context"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// reconcile reads the interfaces and notes where each prefix really is:
// addresses removed or added by hand are logged, and the next step puts
// them where the decisions say.
func (m *addressManager) reconcile() {
	m.mu.Lock()
	empty := len(m.prefixes) == 0
	m.mu.Unlock()
	if empty {
		return
	}
	primary, perr := m.show(context.Background())
	m.noteRead(m.primaryDev, perr)
	if perr == nil {
		if !primary.Up && !m.linkDown {
			m.log.WithField("interface", m.primaryDev).Error("interface is down: none of its addresses is advertised; set it up with `ip link set dev " + m.primaryDev + " up`")
		} else if primary.Up && m.linkDown {
			m.log.WithField("interface", m.primaryDev).Info("interface is up again")
		}
		m.linkDown = !primary.Up
	}
	lastResort, lerr := m.showLastResort(context.Background())
	if m.lastResort != nil {
		m.noteRead(m.lrDev, lerr)
	}
	type drift struct {
		p                  netip.Prefix
		service            string
		present, wanted    bool
		dev                string
		changedPresenceNow bool
	}
	var drifts []drift
	changed := false
	m.mu.Lock()
	for p, st := range m.prefixes {
		if st.err != nil {
			continue // being retried; the retry decides again
		}
		note := func(dev string, has bool, field *bool, target Location, here Location) {
			if *field == has {
				return
			}
			from := st.location()
			*field = has
			if st.location() != from {
				st.movedAt = m.clock.Now()
				changed = true
			}
			drifts = append(drifts, drift{p: p, service: st.service, present: has, wanted: target == here, dev: dev})
		}
		if perr == nil {
			note(m.primaryDev, primary.Has(p), &st.onPrimary, st.target, OnPrimary)
		}
		if m.lastResort != nil && lerr == nil {
			note(m.lrDev, lastResort.Has(p), &st.onLastResort, st.target, OnLastResort)
		}
	}
	m.mu.Unlock()
	if changed && m.onChange != nil {
		m.onChange()
	}
	slices.SortFunc(drifts, func(a, b drift) int { return a.p.Compare(b.p) })
	for _, d := range drifts {
		m.log.WithFields(logrus.Fields{"service": d.service, "prefix": d.p.String(), "interface": d.dev,
			"present": d.present, "want": d.wanted}).Warn("address changed outside anycast-watchdog; putting it back")
	}
}

// noteRead logs a change in whether an interface can be read, once.
func (m *addressManager) noteRead(dev string, err error) {
	switch {
	case !m.showErr.note(dev, err):
	case err != nil:
		m.log.WithError(err).WithField("interface", dev).Error("cannot read the interface; only failed changes are retried")
	default:
		m.log.WithField("interface", dev).Info("reading the interface works again")
	}
}

// watchedReconcileEvery is how often the interfaces are read while every
// one is watched (addressWatcher): the events tell of every change, and
// this read only covers the moments a watch was starting.
const watchedReconcileEvery = 30 * time.Second

// addressWatcher tells of each change of an interface's addresses as it
// happens; *ifaddr.Controller is the real one (ip monitor). An
// AddressControl that is not one is read at every reconcile tick.
type addressWatcher interface {
	Watch(ctx context.Context, changed func()) error
}

// reconcileLoop ends timed drains at the shortest service interval, and
// has the interfaces reconciled with the wishes: on every change the
// watches report, and every watchedReconcileEvery while every interface
// is watched; at every tick while one is not (no watcher, or its watch
// failed and waits to start again), as before watches existed.
func (s *Supervisor) reconcileLoop(ctx context.Context) {
	defer close(s.done)
	watched := s.watchInterfaces(ctx)
	last := s.opts.Clock.Now()
	for {
		timer := s.opts.Clock.NewTimer(time.Duration(s.reconcileEvery.Load()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
		s.expireDrains()
		if now := s.opts.Clock.Now(); !watched() || now.Sub(last) >= watchedReconcileEvery {
			s.addrs.reconcileSoon()
			last = now
		}
	}
}

// watchInterfaces starts a watch of each interface whose control is an
// addressWatcher; each change it reports asks for a reconciliation. A
// watch that ends is started again after a backoff (1 s, doubling to a
// minute), its failure logged once. watched reports whether every
// interface is being watched now.
func (s *Supervisor) watchInterfaces(ctx context.Context) (watched func() bool) {
	type iface struct {
		dev string
		ctl AddressControl
	}
	ifaces := []iface{{s.addrs.primaryDev, s.addrs.primary}}
	if s.addrs.lastResort != nil {
		ifaces = append(ifaces, iface{s.addrs.lrDev, s.addrs.lastResort})
	}
	var unwatched atomic.Int32
	for _, i := range ifaces {
		w, ok := i.ctl.(addressWatcher)
		if !ok {
			unwatched.Add(1)
			continue
		}
		unwatched.Add(1) // until its watch has started
		go s.watch(ctx, i.dev, w, &unwatched)
	}
	return func() bool { return unwatched.Load() == 0 }
}

// watch keeps one interface watched until ctx ends (see watchInterfaces).
func (s *Supervisor) watch(ctx context.Context, dev string, w addressWatcher, unwatched *atomic.Int32) {
	log := s.opts.Log.WithField("interface", dev)
	backoff, failing := time.Second, false
	for {
		unwatched.Add(-1)
		// Changes made before ip subscribed are read now, or at the
		// next watchedReconcileEvery.
		s.addrs.reconcileSoon()
		started := s.opts.Clock.Now()
		err := w.Watch(ctx, func() { s.addrs.reconcileSoon() })
		unwatched.Add(1)
		if ctx.Err() != nil {
			return
		}
		if s.opts.Clock.Now().Sub(started) > time.Minute {
			backoff, failing = time.Second, false // it ran a while: a new failure
		}
		if !failing {
			log.WithError(err).Warn("cannot watch the interface's addresses: reading them at every reconcile tick until the watch is back")
			failing = true
		}
		timer := s.opts.Clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
		backoff = min(2*backoff, time.Minute)
	}
}

func reconcileInterval(cfg *config.Config) time.Duration {
	every := time.Second
	for _, svc := range cfg.Services {
		every = min(every, svc.Interval)
	}
	return max(every, 100*time.Millisecond)
}
