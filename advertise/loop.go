package advertise

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// CheckResult is one check's outcome in one round.
type CheckResult struct {
	Check   string // config.Check.String()
	Err     error
	Latency time.Duration
}

// Round is what one round did, for observers (metrics, benchmarks).
type Round struct {
	Service   string
	Scheduled time.Time // when it was due
	Started   time.Time
	Ended     time.Time
	Results   []CheckResult
	From, To  State
}

// CheckStatus is a check's last result and how many rounds in a row it
// has had that result.
type CheckStatus struct {
	CheckResult
	Consecutive int
}

// ServiceStatus is a snapshot of one service for status and logs.
type ServiceStatus struct {
	Name      string
	State     State
	Since     time.Time // when State (or the drain) was entered
	Reason    string    // why
	Drain     *Drain    // set while drained
	Passes    int       // consecutive passing rounds
	Fails     int       // consecutive failing rounds
	Rise      int
	Fall      int
	Rounds    uint64
	LastRound time.Time
	Checks    []CheckStatus // of the last round
	Prefixes  []PrefixStatus
}

type namedChecker struct {
	cfg     config.Check
	checker checker.Checker
}

// serviceLoop runs one service's rounds until its context ends.
type serviceLoop struct {
	cfg     config.Service
	checks  []namedChecker
	addrs   *addressManager
	clock   Clock
	log     logrus.FieldLogger
	onRound func(Round)
	now     chan chan Round // run a round now and send it back
	done    chan struct{}
	// firstRound is closed after the first round's verdict is applied.
	firstRound chan struct{}
	cancel     context.CancelFunc

	// mu guards the state below; it is held while the service's addresses
	// change, so a drain and a verdict can never interleave.
	mu        sync.Mutex
	hyst      Hysteresis
	drain     *Drain
	streaks   []int     // per check: consecutive passes (> 0) or failures (< 0)
	started   time.Time // when the loop started, for progress before its first round
	lastRound time.Time // Clock.Now of the last round; status.LastRound is wall time
	status    ServiceStatus
}

func newServiceLoop(cfg config.Service, advertised bool, addrs *addressManager, clock Clock,
	log logrus.FieldLogger, onRound func(Round), newChecker func(config.Check) (checker.Checker, error)) (*serviceLoop, error) {
	l := &serviceLoop{
		cfg: cfg, addrs: addrs, clock: clock, onRound: onRound,
		log:        log.WithFields(logrus.Fields{"service": cfg.Name, "prefixes": prefixList(cfg.Prefixes)}),
		hyst:       NewHysteresis(cfg.Rise, cfg.Fall, advertised),
		now:        make(chan chan Round),
		done:       make(chan struct{}),
		firstRound: make(chan struct{}),
	}
	var err error
	if l.checks, err = buildCheckers(cfg, newChecker); err != nil {
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
	l.streaks = make([]int, len(l.checks))
	l.status = ServiceStatus{Name: l.cfg.Name, Since: l.clock.Wall(), Reason: reason}
}

// advertised reports whether the service's prefixes should be on the
// interface now. Call with mu held.
func (l *serviceLoop) advertised() bool { return l.drain == nil && l.hyst.State().Advertised() }

// setDrain drains (d set) or undrains (d nil) the service. A drain
// withdraws at once; an undrain makes the service rise again from down.
func (l *serviceLoop) setDrain(ctx context.Context, d *Drain, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	was := l.advertised()
	l.drain = d
	l.status.Since = l.clock.Wall()
	if d == nil {
		l.hyst = NewHysteresis(l.cfg.Rise, l.cfg.Fall, false)
		l.status.Reason = why + ": must rise again"
	} else {
		l.status.Reason = "drained: " + d.Reason
	}
	if was != l.advertised() {
		l.addrs.set(ctx, l.cfg.Prefixes, l.advertised(), l.status.Reason)
	}
}

// firstDelay spreads the services' rounds over their interval, stable per
// name, so that many services do not all probe in the same millisecond.
func firstDelay(name string, interval time.Duration) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(name))
	return time.Duration(uint64(h.Sum32()) % uint64(interval))
}

func (l *serviceLoop) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
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

func (l *serviceLoop) run(ctx context.Context) {
	defer close(l.done)
	// The first round runs at once for a quick first verdict; later rounds
	// keep a per-service offset on the grid.
	scheduled := l.clock.Now()
	offset := firstDelay(l.cfg.Name, l.cfg.Interval)
	var waiting []chan Round // asked for this round
	for {
		if wait := scheduled.Sub(l.clock.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-l.clock.After(wait):
			case reply := <-l.now:
				waiting = append(waiting, reply)
				scheduled = l.clock.Now()
			}
		} else {
			select {
			case reply := <-l.now:
				waiting = append(waiting, reply)
			default:
			}
		}
		started := l.clock.Now()
		results := l.runChecks(ctx)
		if ctx.Err() != nil {
			return // cancelled checks say nothing about the service
		}
		from, to := l.observe(ctx, results)
		if l.status.Rounds == 1 {
			close(l.firstRound)
		}
		ended := l.clock.Now()
		round := Round{Service: l.cfg.Name, Scheduled: scheduled, Started: started, Ended: ended,
			Results: results, From: from, To: to}
		if l.onRound != nil {
			l.onRound(round)
		}
		for _, reply := range waiting {
			reply <- round
		}
		waiting = nil
		l.mu.Lock()
		period := l.hyst.Period(l.cfg.Interval, l.cfg.FastInterval)
		l.mu.Unlock()
		scheduled = nextRound(scheduled.Add(offset), ended, period)
		offset = 0
	}
}

func (l *serviceLoop) runChecks(ctx context.Context) []CheckResult {
	return runChecks(ctx, l.clock, l.checks)
}

// runChecks runs every check concurrently, each under its own deadline.
func runChecks(ctx context.Context, clock Clock, checks []namedChecker) []CheckResult {
	results := make([]CheckResult, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
			defer cancel()
			start := clock.Now()
			err := c.checker.Check(cctx)
			results[i] = CheckResult{Check: c.cfg.String(), Err: err, Latency: clock.Now().Sub(start)}
		}()
	}
	wg.Wait()
	return results
}

// Probe runs one round of a service's checks exactly as the daemon would,
// and changes nothing.
func Probe(ctx context.Context, svc config.Service) ([]CheckResult, error) {
	checks, err := buildCheckers(svc, checker.New)
	if err != nil {
		return nil, err
	}
	return runChecks(ctx, realClock{}, checks), nil
}

func buildCheckers(svc config.Service, newChecker func(config.Check) (checker.Checker, error)) ([]namedChecker, error) {
	var out []namedChecker
	for _, c := range svc.Checks {
		ch, err := newChecker(c)
		if err != nil {
			return nil, fmt.Errorf("service %s: check %s: %w", svc.Name, c, err)
		}
		out = append(out, namedChecker{cfg: c, checker: ch})
	}
	return out, nil
}

// observe feeds a round into the hysteresis, logs a state change with its
// cause, and applies a change of advertisement.
func (l *serviceLoop) observe(ctx context.Context, results []CheckResult) (from, to State) {
	var failed []CheckResult
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.Rounds++
	l.status.LastRound, l.lastRound = l.clock.Wall(), l.clock.Now()
	l.status.Checks = make([]CheckStatus, len(results))
	for i, r := range results {
		switch s := l.streaks[i]; {
		case r.Err == nil && s > 0:
			l.streaks[i]++
		case r.Err == nil:
			l.streaks[i] = 1
		case s < 0:
			l.streaks[i]--
		default:
			l.streaks[i] = -1
		}
		l.status.Checks[i] = CheckStatus{CheckResult: r, Consecutive: abs(l.streaks[i])}
	}
	if l.drain != nil {
		// Drained: checks run and are shown, but decide nothing.
		return l.hyst.State(), l.hyst.State()
	}
	from, to = l.hyst.Observe(len(failed) == 0)
	passes, fails := l.hyst.Streak()
	reason := ""
	if from != to {
		reason = transitionReason(to, passes, fails, l.cfg)
		l.status.Since, l.status.Reason = l.clock.Wall(), reason
		if len(failed) > 0 {
			l.status.Reason += ": " + failureText(failed)
		}
	}

	for _, r := range failed {
		l.log.WithFields(logrus.Fields{"check": r.Check, "failure": checker.Reason(r.Err), "latency": r.Latency.Round(time.Microsecond).String()}).
			WithError(r.Err).Debug("check failed")
	}
	if from == to {
		return from, to
	}
	entry := l.log.WithFields(logrus.Fields{"from": from.String(), "to": to.String(), "reason": reason})
	if len(failed) > 0 {
		entry = entry.WithFields(logrus.Fields{"check": failed[0].Check, "error": failed[0].Err.Error()})
		if len(failed) > 1 {
			entry = entry.WithField("also_failing", failureText(failed[1:]))
		}
	}
	if to == Down {
		entry.Warn("service down")
	} else {
		entry.Info("service " + to.String())
	}
	if from.Advertised() != to.Advertised() {
		l.addrs.set(ctx, l.cfg.Prefixes, to.Advertised(), "service "+to.String()+": "+reason)
	}
	return from, to
}

// transitionReason says in a few words why a state was entered; the
// failing checks go alongside it.
func transitionReason(to State, passes, fails int, s config.Service) string {
	switch to {
	case Up:
		if passes >= s.Rise {
			return fmt.Sprintf("%d consecutive passing rounds (rise %d)", passes, s.Rise)
		}
		return "checks pass again"
	case Rising:
		return fmt.Sprintf("passing round %d of rise %d", passes, s.Rise)
	case Falling:
		return fmt.Sprintf("failing round %d of fall %d", fails, s.Fall)
	}
	return fmt.Sprintf("%d consecutive failing rounds (fall %d)", fails, s.Fall)
}

// failureText names each failing check with its error.
func failureText(failed []CheckResult) string {
	parts := make([]string, len(failed))
	for i, r := range failed {
		msg := r.Err.Error()
		if errors.Is(r.Err, context.DeadlineExceeded) && !strings.Contains(msg, "deadline") {
			msg += " (timeout)"
		}
		parts[i] = r.Check + ": " + msg
	}
	return strings.Join(parts, "; ")
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

// snapshot is the status with what is derived from the live state (the
// hysteresis, the drain, the configuration) filled in.
func (l *serviceLoop) snapshot() ServiceStatus {
	l.mu.Lock()
	s := l.status
	s.Checks = append([]CheckStatus(nil), s.Checks...)
	s.State = l.hyst.State()
	s.Passes, s.Fails = l.hyst.Streak()
	s.Drain = l.drain
	s.Rise, s.Fall = l.cfg.Rise, l.cfg.Fall
	l.mu.Unlock()
	s.Prefixes = l.addrs.status(l.cfg.Prefixes)
	return s
}

func abs(n int) int { return max(n, -n) }

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
