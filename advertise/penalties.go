package advertise

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/damping"
)

// dampingFile names the penalties' file in state_dir, and is its subject in
// lastErrors.
const dampingFile = "damping.json"

// penaltyBook is every service's damping state (package damping), the one
// copy of it: the service loops change it, status reads it, and each
// withdrawal is saved to state_dir as it is counted, so that a restarted or
// crash-looping daemon cannot forget a flapping service. A service whose
// mode is off has no entry. Its lock is a leaf: taken under
// serviceLoop.mu or Supervisor.mu, never the other way.
type penaltyBook struct {
	log logrus.FieldLogger

	mu       sync.Mutex
	file     stateFile[damping.State]
	states   map[string]damping.State
	saveErrs lastErrors
}

func newPenaltyBook(log logrus.FieldLogger) *penaltyBook {
	return &penaltyBook{log: log, states: map[string]damping.State{}, saveErrs: lastErrors{}}
}

// load reads the penalties kept in stateDir, for Start: a file that cannot
// be read is an error, since starting without it would forget a flapping
// service's history.
func (b *penaltyBook) load(stateDir string) error {
	f := newStateFile[damping.State](stateDir, dampingFile, "damping penalties")
	states, err := f.load()
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.file, b.states = f, states
	return nil
}

// asOf returns the service's state at now under p, and keeps it: before is
// the state as last kept, so that a caller can tell a release. Mode off
// forgets the service.
func (b *penaltyBook) asOf(service string, p damping.Params, now time.Time) (before, after damping.State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	before = b.states[service]
	if !p.Keeps() {
		delete(b.states, service)
		return before, damping.State{}
	}
	after = before.AsOf(p, now)
	b.states[service] = after
	return before, after
}

// withdrawn adds a withdrawal of weight (1: a withdrawal) to the service
// at now and saves it; see asOf for before. Mode off adds nothing.
func (b *penaltyBook) withdrawn(service string, p damping.Params, now time.Time, weight float64) (before, after damping.State) {
	if !p.Keeps() {
		return b.asOf(service, p, now)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	before = b.states[service]
	after = before.Withdrawn(p, now, weight)
	b.states[service] = after
	b.saveLocked()
	return before, after
}

// clear forgets a service's penalty (undamp) and returns the state it had;
// save writes it.
func (b *penaltyBook) clear(service string) damping.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	had := b.states[service]
	delete(b.states, service)
	return had
}

// save writes the states (see saveLocked).
func (b *penaltyBook) save() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.saveLocked()
}

// keepOnly forgets every service that keep does not say to keep (removed
// from the configuration, or its mode now off), saved when that changes
// anything.
func (b *penaltyBook) keepOnly(keep func(service string) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.states)
	maps.DeleteFunc(b.states, func(s string, _ damping.State) bool { return !keep(s) })
	if len(b.states) != n {
		b.saveLocked()
	}
}

// saveLocked writes the states. A failure does not undo what happened —
// the penalty counts, in memory, although the file cannot say so — and is
// logged once until saving works again. Call with mu held.
func (b *penaltyBook) saveLocked() {
	if b.file.path == "" {
		return // not loaded: a Supervisor that never started
	}
	err := b.file.save(b.states)
	if b.saveErrs.note(dampingFile, err) {
		if err != nil {
			b.log.WithError(err).Error("cannot save the damping penalties; they count anyway, but a restart would forget them")
		} else {
			b.log.Info("damping penalties saved again")
		}
	}
}

// peek returns the service's state as last kept.
func (b *penaltyBook) peek(service string) damping.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.states[service]
}

// Undamp clears the named services' damping penalties (all services when
// names is empty), saved once for all: a damped service whose checks pass
// goes back to normal metric at once. It returns the services that had a
// penalty; an unknown name is an error that changes nothing.
func (s *Supervisor) Undamp(ctx context.Context, names []string, by string) ([]string, error) {
	s.mu.Lock()
	targets, err := s.targets(names)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	var cleared []string
	var gen uint64
	for _, name := range targets {
		st, g := s.loops[name].undamp(by)
		gen = max(gen, g)
		if st.Penalty == 0 && !st.Damped {
			continue
		}
		cleared = append(cleared, name)
		s.opts.Log.WithFields(logrus.Fields{"service": name, "by": by, "penalty": int(st.Penalty), "withdrawals": st.Withdrawals,
			"was_damped": st.Damped}).Warn("damping penalty cleared (undamp)")
	}
	s.penalties.save()
	s.mu.Unlock()
	s.addrs.wait(ctx, gen)
	return cleared, nil
}
