package advertise

import (
	"context"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// LastResort is the last-resort interface's health; nil when failing open
// is off.
func (s *Supervisor) LastResort() *status.LastResortHealth {
	if s.lastResort == nil {
		return nil
	}
	h := *s.lastResort
	return &h
}

// Progress returns an error when a service loop is wedged: it has not
// completed a round in its expected window. systemd's watchdog is pinged
// only while this is nil.
func (s *Supervisor) Progress() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Clock.Now()
	for _, svc := range s.cfg.Services {
		if l, ok := s.loops[svc.Name]; ok {
			if err := l.progress(now); err != nil {
				return err
			}
		}
	}
	return nil
}

// FRRHealth returns the read-back's view of each routing daemon read so
// far, ospfd first.
func (s *Supervisor) FRRHealth() []status.FRR { return s.verify.healthStatus() }

// Config returns the running configuration and when it was loaded.
func (s *Supervisor) Config() (*config.Config, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg, s.loadedAt
}

// FreshFleet has the view of the fleet read again when it is
// frr.fleet_interval old or older, and waits for that read for at most
// frr.timeout or until ctx ends: status and scrapes show the fleet as it
// is, and ask ospfd at most once per fleet_interval however often they
// come. Status alone never reads.
func (s *Supervisor) FreshFleet(ctx context.Context) {
	s.mu.Lock()
	timeout := s.cfg.FRR.Timeout
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s.verify.freshFleet(ctx)
}

// Status returns every service in configuration order, with the fleet
// view as last read.
func (s *Supervisor) Status() []status.Service {
	s.mu.Lock()
	loops := make([]*serviceLoop, 0, len(s.cfg.Services))
	for _, svc := range s.cfg.Services {
		if l, ok := s.loops[svc.Name]; ok {
			loops = append(loops, l)
		}
	}
	s.mu.Unlock()
	out := make([]status.Service, 0, len(loops))
	for _, l := range loops {
		st := l.snapshot() // one status.Prefix per configured prefix, in order
		s.verify.fill(l.cfg.Prefixes, st.Prefixes)
		for i, p := range l.cfg.Prefixes {
			st.Prefixes[i].Advertisers, st.Prefixes[i].FleetError = s.fleet.advertisers(p)
		}
		out = append(out, st)
	}
	return out
}
