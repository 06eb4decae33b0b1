package advertise

import (
	"slices"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// The service loop's part of watching systemd units (units:; package
// unitwatch follows them on the system bus, the daemon hands each change
// to SetUnit). A watched unit that stops takes its service down at once,
// as fall failing rounds would, through the same judge and settle as a
// round's verdict, so that damping, failing open and the log are the
// same; while it stays stopped every round fails. When it runs again the
// loop starts a round at once and the service rises through its checks
// (a unit can be active before it serves). A unit not watched (the bus
// lost, not yet read, unknown to systemd) decides nothing: the checks do.

// SetUnit records a watched unit's state with every service that names
// it: a stop takes each down at once, a start starts a round. It does not
// wait for the addresses to move.
func (s *Supervisor) SetUnit(u status.Unit) {
	var events []Round
	s.mu.Lock()
	for _, l := range s.loops {
		if slices.Contains(l.cfg.Units, u.Name) {
			if r, ok := l.unitChanged(u); ok {
				events = append(events, r)
			}
		}
	}
	s.mu.Unlock()
	if s.opts.OnRound != nil {
		for _, r := range events {
			s.opts.OnRound(r) // metrics count the transition as a round's
		}
	}
}

// unitChanged records u's state and acts on a stop or a start; a stop that
// changed the service's state is returned as an event (ok).
func (l *serviceLoop) unitChanged(u status.Unit) (event Round, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	was := l.units[u.Name]
	l.units[u.Name] = u
	switch {
	case u.Stopped() && !was.Stopped():
		l.log.WithFields(unitFields(u)).Warn("watched unit stopped: the service is down at once")
		if l.drain != nil {
			return Round{}, false // drained: nothing decides, and its prefixes are out already
		}
		prev := l.wish()
		from, to, reason := l.judge(nil, &u)
		withdrawn, _ := l.settle(prev, from, to, reason, false, nil, &u)
		now := l.clock.Now()
		return Round{Service: l.cfg.Name, Scheduled: now, Started: now, Ended: now, From: from, To: to, Withdrawn: withdrawn, Unit: &u}, from != to
	case was.Stopped() && !u.Stopped():
		if u.Active() {
			l.log.WithFields(unitFields(u)).Info("watched unit runs again: the service rises through its checks, from a round now")
		}
		select {
		case l.kick <- struct{}{}:
		default: // a round is asked for already
		}
	}
	return Round{}, false
}

// stoppedUnit is the first of the service's units that is watched and
// stopped, or nil. Call with mu held.
func (l *serviceLoop) stoppedUnit() *status.Unit {
	for _, name := range l.cfg.Units {
		if u := l.units[name]; u.Stopped() {
			return &u
		}
	}
	return nil
}

// unitStatus is the service's units as status shows them, in the
// configuration's order. Call with mu held.
func (l *serviceLoop) unitStatus() []status.Unit {
	var out []status.Unit
	for _, name := range l.cfg.Units {
		u, ok := l.units[name]
		if !ok {
			u = status.Unit{Name: name, Error: "not read yet"}
		}
		out = append(out, u)
	}
	return out
}

func unitFields(u status.Unit) logrus.Fields {
	f := logrus.Fields{"unit": u.Name, "unit_state": u.ActiveState + " (" + u.SubState + ")"}
	if u.Result != "" {
		f["unit_result"] = u.Result
	}
	return f
}
