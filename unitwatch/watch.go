// Package unitwatch follows systemd units on the system bus, for the
// services that name them (units:): every change of a watched unit's
// active state reaches the daemon as an event, within a bus round trip of
// systemd's own, so that a service whose process dies is withdrawn at once
// rather than at its next round. Nothing is polled: the watcher subscribes
// to systemd's PropertiesChanged signals and reads a unit only when it
// starts watching it, after a reconnection, and to learn how a stopped
// service unit's process ended.
//
// Losing the bus (the D-Bus daemon restarted, access refused) never stops
// a service: every unit is then reported not watched, so the daemon's
// checks alone decide, and the watcher dials again with backoff (100 ms,
// doubling to 30 s).
//
// Lock order: Watcher.mu is a leaf, never held across a bus call or while
// telling the daemon of a change.
package unitwatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// Bus is the system bus as the watcher uses it: SystemBus is the real one;
// tests fake it.
type Bus interface {
	// Unit reads a unit's state now, its Result included.
	Unit(ctx context.Context, name string) (status.Unit, error)
	// Result reads how a service unit's main process last ended, in words
	// ("signal KILL"; "" when it succeeded).
	Result(ctx context.Context, name string) (string, error)
	// Changes are every unit's changes of state, from the subscription
	// on; Overflow is signalled when some were dropped.
	Changes() <-chan Change
	Overflow() <-chan struct{}
	// Lost is closed when the connection ends.
	Lost() <-chan struct{}
	Close()
}

// Change is a unit's new active and sub state, as a PropertiesChanged
// signal carries them.
type Change struct {
	Unit        string
	ActiveState string
	SubState    string
}

// Dialer connects to the bus and subscribes to systemd's signals.
type Dialer func(ctx context.Context) (Bus, error)

// Backoff bounds the wait between two dials after the bus is lost.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 30 * time.Second
)

// callTimeout bounds one read of a unit: a bus that stops answering
// leaves the unit not watched (the checks decide), never the watcher hung.
const callTimeout = 2 * time.Second

// Watcher follows the units it is told to watch (Watch) and tells the
// daemon of each change (notify) from its own goroutine (Run).
type Watcher struct {
	dial   Dialer
	log    logrus.FieldLogger
	notify func(status.Unit)

	mu      sync.Mutex // guards below
	names   []string
	units   map[string]status.Unit
	up      bool
	lastErr string        // why not up; "" before the first dial
	changed chan struct{} // the names changed; buffered 1
}

// New returns a watcher that dials with dial and calls notify with every
// new state of a watched unit, one call at a time.
func New(dial Dialer, log logrus.FieldLogger, notify func(status.Unit)) *Watcher {
	return &Watcher{dial: dial, log: log, notify: notify, units: map[string]status.Unit{}, changed: make(chan struct{}, 1)}
}

// Watch sets the units to watch; each is read, and its state told, even
// if it was watched before (a reload's new service loops learn it so).
// With none, the watcher holds no connection.
func (w *Watcher) Watch(names []string) {
	w.mu.Lock()
	w.names = slices.Clone(names)
	for name := range w.units {
		if !slices.Contains(names, name) {
			delete(w.units, name)
		}
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// Status is the watch as status shows it; nil when no unit is watched.
func (w *Watcher) Status() *status.UnitWatch {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.names) == 0 {
		return nil
	}
	return &status.UnitWatch{Up: w.up, Error: w.lastErr, Units: len(w.names)}
}

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	retry := minRetry
	for ctx.Err() == nil {
		if !w.wanted(ctx) {
			return
		}
		began := time.Now()
		err := w.session(ctx)
		if ctx.Err() != nil || err == nil { // session ends without an error only with ctx
			return
		}
		if time.Since(began) > maxRetry {
			retry = minRetry // it ran a while: this is a new outage
		}
		w.lost(err, retry)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, maxRetry)
	}
}

// wanted waits until some unit is to be watched; false when ctx ended.
func (w *Watcher) wanted(ctx context.Context) bool {
	for {
		w.mu.Lock()
		n := len(w.names)
		w.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-w.changed:
		}
	}
}

// session dials, reads every watched unit and follows their changes until
// the bus is lost (the error says how) or ctx ends.
func (w *Watcher) session(ctx context.Context) error {
	bus, err := w.dial(ctx)
	if err != nil {
		return err
	}
	defer bus.Close()
	w.mu.Lock()
	wasDown, lastErr := !w.up, w.lastErr
	w.up, w.lastErr = true, ""
	n := len(w.names)
	w.mu.Unlock()
	if wasDown && lastErr != "" {
		w.log.WithField("units", n).Info("unit watch restored: following the watched units on the system bus again")
	} else {
		w.log.WithField("units", n).Info("following the watched units on the system bus")
	}
	if err := w.readAll(ctx, bus); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-bus.Lost():
			return errors.New("the system bus connection was lost")
		case <-bus.Overflow():
			// Changes were dropped: read every unit again rather than
			// trust a state that may have moved on.
			w.log.Warn("unit watch: signals dropped (the host's units changed faster than they were read); reading the watched units again")
			if err := w.readAll(ctx, bus); err != nil {
				return err
			}
		case <-w.changed:
			if !w.wanted(ctx) {
				return nil
			}
			if err := w.readAll(ctx, bus); err != nil {
				return err
			}
		case c := <-bus.Changes():
			if err := w.apply(ctx, bus, c); err != nil {
				return err
			}
		}
	}
}

// readAll reads every watched unit and tells its state. A unit the bus
// cannot read (not a name systemd takes) is told not watched, with why;
// the bus lost is returned.
func (w *Watcher) readAll(ctx context.Context, bus Bus) error {
	w.mu.Lock()
	names := slices.Clone(w.names)
	w.mu.Unlock()
	for _, name := range names {
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		u, err := bus.Unit(callCtx, name)
		cancel()
		if err != nil {
			if isLost(bus) {
				return fmt.Errorf("read unit %s: %w", name, err)
			}
			u = status.Unit{Name: name, Error: "read: " + err.Error()}
		}
		w.tell(u)
	}
	return nil
}

// apply merges a change into a watched unit's state and tells it; it
// reads a stopped service unit's result first, so that the reason names
// it ("failed (signal SEGV)").
func (w *Watcher) apply(ctx context.Context, bus Bus, c Change) error {
	w.mu.Lock()
	u, ok := w.units[c.Unit]
	w.mu.Unlock()
	if !ok || c.ActiveState == "" || (c.ActiveState == u.ActiveState && c.SubState == u.SubState) {
		return nil // not watched, or no change of state
	}
	u.ActiveState, u.SubState, u.Result = c.ActiveState, c.SubState, ""
	if !u.Active() && isService(u.Name) {
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		r, err := bus.Result(callCtx, u.Name)
		cancel()
		if err != nil && isLost(bus) {
			return fmt.Errorf("read unit %s: %w", u.Name, err)
		}
		u.Result = r // without it, the state alone says enough to act on
	}
	w.tell(u)
	return nil
}

// tell records u, if still watched, and passes it on.
func (w *Watcher) tell(u status.Unit) {
	w.mu.Lock()
	if !slices.Contains(w.names, u.Name) {
		w.mu.Unlock()
		return
	}
	w.units[u.Name] = u
	w.mu.Unlock()
	w.notify(u)
}

// lost marks every unit not watched, logs the outage once (and each retry
// at debug) and tells the daemon, so that its checks alone decide.
func (w *Watcher) lost(err error, retry time.Duration) {
	w.mu.Lock()
	was, first := w.up, w.lastErr == "" && !w.up
	w.up, w.lastErr = false, err.Error()
	var units []status.Unit
	for _, name := range w.names {
		u := w.units[name]
		u.Name, u.Watched, u.Error = name, false, "unit watch: "+err.Error()
		w.units[name] = u
		units = append(units, u)
	}
	w.mu.Unlock()
	entry := w.log.WithError(err).WithField("retry_in", retry.String())
	switch {
	case was:
		entry.Warn("unit watch lost: the checks alone decide until the system bus is back")
	case first:
		entry.Warn("cannot watch units on the system bus: the checks alone decide until it can")
	default:
		entry.Debug("unit watch: the system bus is still out of reach")
	}
	for _, u := range units {
		w.notify(u)
	}
}

func isLost(bus Bus) bool {
	select {
	case <-bus.Lost():
		return true
	default:
		return false
	}
}

func isService(name string) bool { return strings.HasSuffix(name, ".service") }

// Lookup reads the named units once over a new connection (check-config
// and doctor ask whether systemd knows them); a unit the bus refuses is
// returned not watched, with why.
func Lookup(ctx context.Context, dial Dialer, names []string) ([]status.Unit, error) {
	bus, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	defer bus.Close()
	out := make([]status.Unit, 0, len(names))
	for _, name := range names {
		u, err := bus.Unit(ctx, name)
		if err != nil {
			if isLost(bus) || ctx.Err() != nil {
				return nil, fmt.Errorf("read unit %s: %w", name, err)
			}
			u = status.Unit{Name: name, Error: "read: " + err.Error()}
		}
		out = append(out, u)
	}
	return out, nil
}
