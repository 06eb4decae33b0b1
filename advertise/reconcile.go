package advertise

import (
	"context"
	"net/netip"
	"slices"
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

// reconcileLoop ends timed drains and has the interface reconciled with the
// wishes, at the shortest service interval, until ctx ends.
func (s *Supervisor) reconcileLoop(ctx context.Context) {
	defer close(s.done)
	for {
		timer := s.opts.Clock.NewTimer(time.Duration(s.reconcileEvery.Load()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
		s.expireDrains()
		s.addrs.reconcileSoon()
	}
}

func reconcileInterval(cfg *config.Config) time.Duration {
	every := time.Second
	for _, svc := range cfg.Services {
		every = min(every, svc.Interval)
	}
	return max(every, 100*time.Millisecond)
}
