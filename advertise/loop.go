package advertise

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// loopDeps is what every service loop shares with the supervisor.
type loopDeps struct {
	addrs      *addressManager
	clock      Clock
	epoch      time.Time // the origin of this loop's roundGrid (gridEpoch); zero: exact times
	log        logrus.FieldLogger
	onRound    func(Round) // after every round, from the loop's goroutine; may be nil
	newChecker func(config.Check) (checker.Checker, error)
	penalties  *penaltyBook
}

// serviceLoop runs one service's rounds until its context ends.
type serviceLoop struct {
	loopDeps
	cfg    config.Service
	offset time.Duration // the service's place in its interval (offsets)
	checks []namedChecker
	log    logrus.FieldLogger // with the service's fields
	now    chan chan Round    // run a round now and send it back
	kick   chan struct{}      // run a round now (a watched unit runs again); buffered 1
	done   chan struct{}
	// firstRound is closed after the first round's verdict is applied.
	firstRound chan struct{}
	cancel     context.CancelFunc

	// mu guards the state below. It is never held across a command: a
	// change of advertisement is recorded with the address manager under
	// mu (so a drain and a verdict can never interleave) and waited for
	// after mu is released.
	mu         sync.Mutex
	hyst       Hysteresis
	degrade    Hysteresis // the degrade checks' own rise and fall; down: degraded
	drain      *status.Drain
	streaks    []int          // per check: consecutive passes (> 0) or failures (< 0)
	lastChecks []status.Check // of the last round
	since      time.Time      // wall time the state (or the drain) was entered
	reason     string         // why
	rounds     uint64
	undecided  int                    // rounds in a row without a verdict (roundVerdict): checks starved
	started    time.Time              // Clock.Now when the loop started, for progress before its first round
	lastRound  time.Time              // Clock.Now of the last round
	units      map[string]status.Unit // the watched units' last known states (units.go)
}

func newServiceLoop(cfg config.Service, offset time.Duration, advertised bool, deps loopDeps) (*serviceLoop, error) {
	l := &serviceLoop{
		loopDeps:   deps,
		cfg:        cfg,
		offset:     offset,
		log:        deps.log.WithFields(logrus.Fields{"service": cfg.Name, "prefixes": prefixList(cfg.Prefixes)}),
		now:        make(chan chan Round),
		kick:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		firstRound: make(chan struct{}),
	}
	l.epoch = gridEpoch(deps.epoch, cfg)
	var err error
	if l.checks, err = buildCheckers(cfg, deps.newChecker); err != nil {
		return nil, err
	}
	reason := "prefixes absent at start: must rise"
	if advertised {
		reason = "prefixes already on the interface at start: up, falls only through fall failures"
	}
	l.startAs(advertised, reason)
	return l, nil
}

// startAs sets the initial state before the loop runs.
func (l *serviceLoop) startAs(advertised bool, reason string) {
	l.hyst = NewHysteresis(l.cfg.Rise, l.cfg.Fall, advertised)
	l.degrade = NewHysteresis(l.cfg.Rise, l.cfg.Fall, true) // not degraded until its degrade checks fall
	l.streaks = make([]int, len(l.checks))
	l.lastChecks = nil
	l.units = map[string]status.Unit{}
	l.since, l.reason = l.clock.Wall(), reason
}

// takeOver starts a replacement loop where old, now stopped, left off. Its
// checks unchanged, the state, the streaks toward rise and fall and the
// checks' results carry over under the new thresholds: a reload, however
// often, never holds back a withdrawal. Its checks changed, only whether it
// is advertised carries over and it must prove itself again.
func (l *serviceLoop) takeOver(old *serviceLoop) {
	old.mu.Lock()
	hyst, degrade, streaks, checks, since, reason := old.hyst, old.degrade, old.streaks, old.lastChecks, old.since, old.reason
	units := maps.Clone(old.units)
	old.mu.Unlock()
	// The penalty decayed under the old parameters until now; the new
	// ones apply from here on.
	l.penalties.asOf(old.cfg.Name, old.cfg.Damping.Params(), l.clock.Wall())
	l.mu.Lock()
	defer l.mu.Unlock()
	// The units it still names keep their states (the watcher tells of
	// new ones when the daemon asks it to watch them).
	for name, u := range units {
		if slices.Contains(l.cfg.Units, name) {
			l.units[name] = u
		}
	}
	if !reflect.DeepEqual(old.cfg.Checks, l.cfg.Checks) {
		l.hyst = NewHysteresis(l.cfg.Rise, l.cfg.Fall, advertised(hyst.State()))
		l.reason, l.since = "configuration changed", l.clock.Wall()
		return
	}
	l.hyst = hyst.WithThresholds(l.cfg.Rise, l.cfg.Fall)
	l.degrade = degrade.WithThresholds(l.cfg.Rise, l.cfg.Fall)
	l.streaks, l.lastChecks = append([]int(nil), streaks...), checks
	l.since, l.reason = since, reason
}

// wish is what the service asks of its prefixes now. Call with mu held.
func (l *serviceLoop) wish() wish {
	i := l.intent()
	return wish{Intent: i, Damped: i == IntentAdvertise && l.held(), Degraded: i == IntentAdvertise && l.degraded()}
}

// degraded says whether the degrade checks have fallen. Call with mu held.
func (l *serviceLoop) degraded() bool { return !advertised(l.degrade.State()) }

// intent is what the service's state asks of its prefixes. Call with mu held.
func (l *serviceLoop) intent() Intent {
	switch {
	case l.drain != nil:
		return IntentDrain
	case advertised(l.hyst.State()):
		return IntentAdvertise
	}
	return IntentWithdraw
}

// setDrain drains (d set) or undrains (d nil) the service. A drain
// withdraws at once; an undrain makes the service rise again from down. It
// returns the address manager's generation to wait for (0: no change).
func (l *serviceLoop) setDrain(d *status.Drain, why string) (gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	was := l.wish()
	l.drain = d
	l.since = l.clock.Wall()
	if d == nil {
		l.hyst = NewHysteresis(l.cfg.Rise, l.cfg.Fall, false)
		l.reason = why + ": must rise again"
	} else {
		l.reason = "drained: " + d.Reason
	}
	if was != l.wish() {
		gen = l.addrs.set(l.cfg.Prefixes, l.wish(), l.reason)
	}
	return gen
}

// start runs the loop on its own goroutine until stop: a loop outlives the
// request that started it (a reload), so its context is its own.
func (l *serviceLoop) start() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.mu.Lock()
	l.started = l.clock.Now()
	l.mu.Unlock()
	go l.run(ctx)
}

// stop ends the loop and waits for it; a round under way is abandoned and
// its results ignored.
func (l *serviceLoop) stop() {
	l.cancel()
	<-l.done
}

// checkNow asks for a round as soon as the current one (if any) ends and
// returns it.
func (l *serviceLoop) checkNow(ctx context.Context) (Round, error) {
	reply := make(chan Round, 1)
	select {
	case l.now <- reply:
	case <-l.done:
		return Round{}, fmt.Errorf("service %s is stopping", l.cfg.Name)
	case <-ctx.Done():
		return Round{}, ctx.Err()
	}
	select {
	case r := <-reply:
		return r, nil
	case <-l.done:
		return Round{}, fmt.Errorf("service %s is stopping", l.cfg.Name)
	case <-ctx.Done():
		return Round{}, ctx.Err()
	}
}

// progress says whether the loop completed a round recently enough: within
// an interval, plus its longest check timeout, plus slack for the apply.
func (l *serviceLoop) progress(now time.Time) error {
	window := l.cfg.Interval + 2*time.Second
	for _, c := range l.cfg.Checks {
		window = max(window, l.cfg.Interval+c.Timeout+2*time.Second)
	}
	l.mu.Lock()
	last := l.started
	if l.lastRound.After(last) {
		last = l.lastRound
	}
	l.mu.Unlock()
	if since := now.Sub(last); since > window {
		return fmt.Errorf("service %q has completed no round for %s (expected within %s)", l.cfg.Name, since.Round(time.Millisecond), window)
	}
	return nil
}
