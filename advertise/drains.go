package advertise

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// drainsFile names the drains' file in state_dir, and is its subject in
// lastErrors.
const drainsFile = "drains.json"

func newDrainFile(stateDir string) stateFile[status.Drain] {
	return newStateFile[status.Drain](stateDir, drainsFile, "drains")
}

// Drain takes the named services (all of them when names is empty) out of
// rotation, whatever their checks say, until Undrain or until (when not
// zero): their prefixes go to last resort at once and are removed after
// drain_grace. It refuses, changing nothing, when another router is not
// seen advertising one of their prefixes at normal metric, unless force.
// The drain is saved first: if it cannot be saved, nothing changes. It
// returns once the first move is carried out (or ctx ends).
func (s *Supervisor) Drain(ctx context.Context, names []string, reason, by string, until time.Time, force bool) ([]string, error) {
	if !force {
		// Decide on a view of the fleet from after the request, not one
		// that may predate the other nodes' advertisements.
		s.mu.Lock()
		timeout := s.cfg.FRR.Timeout
		s.mu.Unlock()
		readCtx, cancel := context.WithTimeout(ctx, 2*timeout)
		s.verify.readArea(readCtx)
		cancel()
	}
	s.mu.Lock()
	targets, err := s.targets(names)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if !force {
		if err := s.drainWouldStrand(targets); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	next := maps.Clone(s.drains)
	now := s.opts.Clock.Now()
	for _, name := range targets {
		next[name] = status.Drain{Reason: reason, By: by, Since: now, Until: until}
	}
	if err := newDrainFile(s.cfg.StateDir).save(next); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.drains = next
	var gen uint64
	for _, name := range targets {
		d := next[name]
		gen = max(gen, s.loops[name].setDrain(&d, ""))
		entry := s.opts.Log.WithFields(logrus.Fields{"service": name, "reason": reason, "by": by})
		if !until.IsZero() {
			entry = entry.WithField("until", until.Format(time.RFC3339))
		}
		entry.Warn("service drained: withdrawn whatever its checks say")
	}
	s.mu.Unlock()
	s.addrs.wait(ctx, gen)
	return targets, nil
}

// drainWouldStrand names a prefix of the services that no other router is
// seen advertising at normal metric. Call with mu held.
func (s *Supervisor) drainWouldStrand(names []string) error {
	for _, name := range names {
		for _, p := range s.loops[name].cfg.Prefixes {
			n, why := s.fleet.normalElsewhere(p)
			if n > 0 {
				continue
			}
			if why == "" {
				why = "no other router advertises it at normal metric"
			}
			return fmt.Errorf("drain of %s refused: %s: %s, so draining it could take it off the network; --force drains anyway",
				name, p, why)
		}
	}
	return nil
}

// Undrain puts the named services (all drained ones when names is empty)
// back under their checks; each must rise again before it is advertised.
// It returns those that were drained: a named service that was not is
// left alone, and an unknown name is an error that changes nothing.
func (s *Supervisor) Undrain(ctx context.Context, names []string, by string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(names) == 0 {
		for name := range s.drains {
			names = append(names, name)
		}
		slices.Sort(names)
	} else if _, err := s.targets(names); err != nil {
		return nil, err
	}
	var drained []string
	for _, name := range names {
		if _, ok := s.drains[name]; ok {
			drained = append(drained, name)
		}
	}
	if len(drained) == 0 {
		return nil, nil
	}
	return drained, s.undrain(drained, "undrained by "+by, by)
}

// undrain removes drains, saved first. An undrained service starts down,
// so no address changes here. Call with mu held.
func (s *Supervisor) undrain(names []string, why, by string) error {
	next := maps.Clone(s.drains)
	for _, name := range names {
		delete(next, name)
	}
	if err := newDrainFile(s.cfg.StateDir).save(next); err != nil {
		return err
	}
	s.saveErrs.note(drainsFile, nil)
	s.endDrains(names, why, by)
	return nil
}

// endDrains puts the drained ones of names back under their checks. Call
// with mu held.
func (s *Supervisor) endDrains(names []string, why, by string) {
	for _, name := range names {
		if _, was := s.drains[name]; !was {
			continue
		}
		delete(s.drains, name)
		if l, ok := s.loops[name]; ok {
			l.setDrain(nil, why)
		}
		s.opts.Log.WithFields(logrus.Fields{"service": name, "by": by}).Info("service undrained: " + why + "; it must rise again")
	}
}

// expireDrains ends timed drains that have run out.
func (s *Supervisor) expireDrains() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var expired []string
	now := s.opts.Clock.Now()
	for name, d := range s.drains {
		if d.Expired(now) {
			expired = append(expired, name)
		}
	}
	if len(expired) == 0 {
		return
	}
	slices.Sort(expired)
	if err := s.undrain(expired, "drain expired", "expiry"); err != nil {
		// The end of a drain is a fact of time: it takes effect although
		// the file cannot say so. The entry left in the file has expired
		// too, so a restart drops it as well.
		s.saveErrOnce(err, "cannot save drains; the expired drains end anyway")
		s.endDrains(expired, "drain expired", "expiry")
	}
}

// saveErrOnce logs a failure to save the drains once per distinct error.
// Call with mu held.
func (s *Supervisor) saveErrOnce(err error, msg string) {
	if s.saveErrs.note(drainsFile, err) {
		s.opts.Log.WithError(err).Error(msg)
	}
}

// dropRemovedDrains deletes from drains (the running ones, or those just
// loaded at start) every service that cfg does not have, saving and
// logging it: a drain of a service no longer configured would block
// undrain --all and come back with a service of the same name. Call with
// mu held, or before Start shares drains.
func (s *Supervisor) dropRemovedDrains(drains map[string]status.Drain, cfg *config.Config) {
	var stale []string
	for name := range drains {
		if _, ok := cfg.Service(name); !ok {
			stale = append(stale, name)
			delete(drains, name)
		}
	}
	if len(stale) == 0 {
		return
	}
	slices.Sort(stale)
	s.opts.Log.WithField("services", strings.Join(stale, ",")).Warn("dropping drains of services no longer in the configuration")
	if err := newDrainFile(cfg.StateDir).save(drains); err != nil {
		s.opts.Log.WithError(err).Error("cannot save drains")
	}
}

// targets resolves service names (all when empty), all known or an error.
func (s *Supervisor) targets(names []string) ([]string, error) {
	if len(names) == 0 {
		for _, svc := range s.cfg.Services {
			names = append(names, svc.Name)
		}
	}
	var unknown []string
	for _, n := range names {
		if _, ok := s.loops[n]; !ok {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("no such service: %s", strings.Join(unknown, ", "))
	}
	return names, nil
}
