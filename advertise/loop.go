package advertise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/status"
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
	From, To  status.State // the hysteresis's state before and after
}

type namedChecker struct {
	cfg     config.Check
	name    string // cfg.String(), made once rather than every round
	checker checker.Checker
}

// loopDeps is what every service loop shares with the supervisor.
type loopDeps struct {
	addrs      *addressManager
	clock      Clock
	epoch      time.Time // the origin of this loop's roundGrid (gridEpoch); zero: exact times
	log        logrus.FieldLogger
	onRound    func(Round) // after every round, from the loop's goroutine; may be nil
	newChecker func(config.Check) (checker.Checker, error)
}

// serviceLoop runs one service's rounds until its context ends.
type serviceLoop struct {
	loopDeps
	cfg    config.Service
	offset time.Duration // the service's place in its interval (offsets)
	checks []namedChecker
	log    logrus.FieldLogger // with the service's fields
	now    chan chan Round    // run a round now and send it back
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
	drain      *status.Drain
	streaks    []int          // per check: consecutive passes (> 0) or failures (< 0)
	lastChecks []status.Check // of the last round
	since      time.Time      // wall time the state (or the drain) was entered
	reason     string         // why
	rounds     uint64
	undecided  int       // rounds in a row without a verdict (roundVerdict): checks starved
	started    time.Time // Clock.Now when the loop started, for progress before its first round
	lastRound  time.Time // Clock.Now of the last round
}

func newServiceLoop(cfg config.Service, offset time.Duration, advertised bool, deps loopDeps) (*serviceLoop, error) {
	l := &serviceLoop{
		loopDeps:   deps,
		cfg:        cfg,
		offset:     offset,
		log:        deps.log.WithFields(logrus.Fields{"service": cfg.Name, "prefixes": prefixList(cfg.Prefixes)}),
		now:        make(chan chan Round),
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
	l.streaks = make([]int, len(l.checks))
	l.lastChecks = nil
	l.since, l.reason = l.clock.Wall(), reason
}

// takeOver starts a replacement loop where old, now stopped, left off. Its
// checks unchanged, the state, the streaks toward rise and fall and the
// checks' results carry over under the new thresholds: a reload, however
// often, never holds back a withdrawal. Its checks changed, only whether it
// is advertised carries over and it must prove itself again.
func (l *serviceLoop) takeOver(old *serviceLoop) {
	old.mu.Lock()
	hyst, streaks, checks, since, reason := old.hyst, old.streaks, old.lastChecks, old.since, old.reason
	old.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !reflect.DeepEqual(old.cfg.Checks, l.cfg.Checks) {
		l.hyst = NewHysteresis(l.cfg.Rise, l.cfg.Fall, advertised(hyst.State()))
		l.reason, l.since = "configuration changed", l.clock.Wall()
		return
	}
	l.hyst = hyst.WithThresholds(l.cfg.Rise, l.cfg.Fall)
	l.streaks, l.lastChecks = append([]int(nil), streaks...), checks
	l.since, l.reason = since, reason
}

// intent is what the service asks of its prefixes now. Call with mu held.
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
	was := l.intent()
	l.drain = d
	l.since = l.clock.Wall()
	if d == nil {
		l.hyst = NewHysteresis(l.cfg.Rise, l.cfg.Fall, false)
		l.reason = why + ": must rise again"
	} else {
		l.reason = "drained: " + d.Reason
	}
	if was != l.intent() {
		gen = l.addrs.set(l.cfg.Prefixes, l.intent(), l.reason)
	}
	return gen
}

// firstDelay spreads the services' rounds over their interval, stable per
// name, so that many services do not all probe in the same millisecond.
func firstDelay(name string, interval time.Duration) time.Duration {
	return time.Duration(uint64(nameHash(name)) % uint64(interval))
}

func nameHash(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

// offsets gives each service its place in its interval. A service's own
// hash places it (firstDelay), except services with an exec check: those
// sharing an interval are spaced evenly, in the order of their hashes from
// the first one's place, because hashed places fall close together by
// chance and forks close together cost more. bench/checks -exec, 500
// services at 10 s, median of 2 pairs against a bare loop spaced evenly:
// hashed 1.63×, the children 3.9–4.4 ms per exec against 2.4–2.6; spaced
// evenly 1.00×, 2.26 against 2.50.
func offsets(services []config.Service) map[string]time.Duration {
	out := map[string]time.Duration{}
	execByInterval := map[time.Duration][]string{}
	for _, s := range services {
		out[s.Name] = firstDelay(s.Name, s.Interval)
		if hasExecCheck(s) {
			execByInterval[s.Interval] = append(execByInterval[s.Interval], s.Name)
		}
	}
	for interval, names := range execByInterval {
		slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(nameHash(a), nameHash(b)), strings.Compare(a, b)) })
		first := out[names[0]]
		for rank, name := range names {
			out[name] = (first + time.Duration(rank)*(interval/time.Duration(len(names)))) % interval
		}
	}
	return out
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

func (l *serviceLoop) run(ctx context.Context) {
	defer close(l.done)
	defer l.closeChecks()
	// The first round runs at once for a quick first verdict; the second
	// comes after the per-service offset, or after the fast interval if
	// that is shorter and the service is rising or falling, so that the
	// worst-case detection time holds from the first round on. At rest,
	// rounds keep to the service's phase (onPhase): the offset's place in
	// the interval, on the grid.
	scheduled := l.clock.Now()
	offset := l.offset
	phase := onGrid(scheduled.Add(offset), l.epoch)
	var waiting []chan Round // asked for this round
	for {
		if wait := scheduled.Sub(l.clock.Now()); wait > 0 {
			timer := l.clock.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C():
			case reply := <-l.now:
				timer.Stop()
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
		from, to, first, gen := l.observe(results)
		if gen != 0 {
			l.addrs.wait(ctx, gen) // not under mu: a hung ip blocks no reader
		}
		if first {
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
		if period == l.cfg.Interval {
			scheduled = onGrid(notBefore(onPhase(scheduled, phase, period), ended), l.epoch)
		} else {
			if offset > 0 && offset < period {
				period = offset
			}
			scheduled = onGrid(nextRound(scheduled, ended, period), l.epoch)
		}
		offset = 0
	}
}

// closeChecks releases what the checks keep between rounds (a DNS check's
// UDP socket) once the loop has ended and no round runs.
func (l *serviceLoop) closeChecks() {
	for _, c := range l.checks {
		if closer, ok := c.checker.(io.Closer); ok {
			if err := closer.Close(); err != nil {
				l.log.WithError(err).WithField("check", c.name).Debug("closing the check")
			}
		}
	}
}

func (l *serviceLoop) runChecks(ctx context.Context) []CheckResult {
	return runChecks(ctx, l.clock, l.checks)
}

// runChecks runs every check concurrently, each under its own deadline;
// the last runs on the calling goroutine (a service with one check starts
// no goroutine per round). Checks with the same timeout share one context
// (made at the round's start, so each deadline is the same as its own
// would be): a context with a deadline costs a runtime timer, one per
// check was 5 % of a check's CPU in bench/checks.
func runChecks(ctx context.Context, clock Clock, checks []namedChecker) []CheckResult {
	results := make([]CheckResult, len(checks))
	ctxs := make([]context.Context, len(checks))
	for i, c := range checks {
		for j := range i {
			if checks[j].cfg.Timeout == c.cfg.Timeout {
				ctxs[i] = ctxs[j]
				break
			}
		}
		if ctxs[i] == nil {
			var cancel context.CancelFunc
			ctxs[i], cancel = context.WithTimeout(ctx, c.cfg.Timeout)
			defer cancel()
		}
	}
	run := func(i int) {
		start := clock.Now()
		err := checks[i].checker.Check(ctxs[i])
		results[i] = CheckResult{Check: checks[i].name, Err: err, Latency: clock.Now().Sub(start)}
	}
	var wg sync.WaitGroup
	for i := range len(checks) - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(i)
		}()
	}
	if len(checks) > 0 {
		run(len(checks) - 1)
	}
	wg.Wait()
	return results
}

// roundVerdict judges a round: failed are the checks that ran and failed,
// and the round fails when there is one, passes when every check passed. A
// check that could not start in time (*checker.Starved) proves nothing
// either way, so a round with one and no failure has no verdict (decided
// false): withdrawing on it would take a healthy service off the network
// for the daemon's own load (500 exec services at their start: 75–198 of
// them withdrawn in bench/checks), and rising on it would advertise on a
// part of the checks.
func roundVerdict(results []CheckResult) (failed []CheckResult, decided bool) {
	starved := false
	for _, r := range results {
		switch {
		case r.Err == nil:
		case isStarved(r.Err):
			starved = true
		default:
			failed = append(failed, r)
		}
	}
	return failed, len(failed) > 0 || !starved
}

func isStarved(err error) bool {
	var s *checker.Starved
	return errors.As(err, &s)
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
		out = append(out, namedChecker{cfg: c, name: c.String(), checker: ch})
	}
	return out, nil
}

// observe feeds a round into the hysteresis, logs a state change with its
// cause, and records a change of advertisement with the address manager;
// gen is the generation to wait for (0: no change). first is true for the
// loop's first round.
func (l *serviceLoop) observe(results []CheckResult) (from, to status.State, first bool, gen uint64) {
	failed, decided := roundVerdict(results)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rounds++
	first = l.rounds == 1
	l.lastRound = l.clock.Now()
	l.lastChecks = make([]status.Check, len(results))
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
		l.lastChecks[i] = checkStatus(r, abs(l.streaks[i]))
	}
	if l.drain != nil {
		// Drained: checks run and are shown, but decide nothing.
		return l.hyst.State(), l.hyst.State(), first, 0
	}
	if !decided {
		// The daemon's own load kept a check from running: the round says
		// nothing of the service, whose state holds. Logged when such rounds
		// begin and end, not every round, so a storm cannot flood the log.
		if l.undecided++; l.undecided == 1 {
			l.log.WithField("state", l.hyst.State().String()).Warn("round without a verdict: exec checks starved (the daemon's load, not the service's); the state holds")
		}
		return l.hyst.State(), l.hyst.State(), first, 0
	}
	if l.undecided > 0 {
		l.log.WithField("rounds", l.undecided).Info("rounds have a verdict again after starved ones")
		l.undecided = 0
	}
	from, to = l.hyst.Observe(len(failed) == 0)
	passes, fails := l.hyst.Streak()
	reason := ""
	if from != to {
		reason = transitionReason(to, passes, fails, l.cfg)
		l.since, l.reason = l.clock.Wall(), reason
		if len(failed) > 0 {
			l.reason += ": " + failureText(failed)
		}
	}

	for _, r := range failed {
		l.log.WithFields(logrus.Fields{"check": r.Check, "failure": checker.Reason(r.Err), "latency": r.Latency.Round(time.Microsecond).String()}).
			WithError(r.Err).Debug("check failed")
	}
	if from == to {
		return from, to, first, 0
	}
	entry := l.log.WithFields(logrus.Fields{"from": from.String(), "to": to.String(), "reason": reason})
	if len(failed) > 0 {
		entry = entry.WithFields(logrus.Fields{"check": failed[0].Check, "error": failed[0].Err.Error()})
		if len(failed) > 1 {
			entry = entry.WithField("also_failing", failureText(failed[1:]))
		}
	}
	if to == status.Down {
		entry.Warn("service down")
	} else {
		entry.Info("service " + to.String())
	}
	if advertised(from) != advertised(to) {
		gen = l.addrs.set(l.cfg.Prefixes, l.intent(), "service "+to.String()+": "+reason)
	}
	return from, to, first, gen
}

// transitionReason says in a few words why a state was entered; the
// failing checks go alongside it.
func transitionReason(to status.State, passes, fails int, s config.Service) string {
	switch to {
	case status.Up:
		if passes >= s.Rise {
			return fmt.Sprintf("%d consecutive passing rounds (rise %d)", passes, s.Rise)
		}
		return "checks pass again"
	case status.Rising:
		return fmt.Sprintf("passing round %d of rise %d", passes, s.Rise)
	case status.Falling:
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

// snapshot is the service's status, derived from the live state (the
// hysteresis, the drain, the configuration); the read-back's part of its
// prefixes is left to the verifier.
func (l *serviceLoop) snapshot() status.Service {
	l.mu.Lock()
	s := status.Service{Name: l.cfg.Name, State: l.hyst.State(), Since: l.since, Reason: l.reason,
		Rise: l.cfg.Rise, Fall: l.cfg.Fall, Checks: append([]status.Check{}, l.lastChecks...)}
	s.Passes, s.Fails = l.hyst.Streak()
	if l.drain != nil {
		s.State = status.Drained
		d := *l.drain
		s.Drain = &d
	}
	l.mu.Unlock()
	var where []Location
	s.Prefixes, where = l.addrs.status(l.cfg.Prefixes)
	var held []netip.Prefix // at last resort
	for i, loc := range where {
		if loc == OnLastResort {
			held = append(held, l.cfg.Prefixes[i])
		}
	}
	switch {
	case len(held) == 0:
	case s.State == status.Drained:
		s.State = status.Draining
		s.Reason += "; at last resort until drain_grace (" + l.cfg.DrainGrace.String() + ") has passed: " + prefixList(held)
	case s.State == status.Down:
		s.State = status.LastResort
		s.Reason += "; held at last resort: " + l.heldReason(held)
	}
	return s
}

// heldReason says, for each prefix held at last resort, how many other
// routers advertise it at normal metric, or why that is not known.
func (l *serviceLoop) heldReason(held []netip.Prefix) string {
	var parts []string
	for _, p := range held {
		n, unknown := l.addrs.fleet.normalElsewhere(p)
		if unknown != "" {
			parts = append(parts, p.String()+": "+unknown)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %d other routers advertise it at normal metric", p, n))
	}
	return strings.Join(parts, "; ")
}

// checkStatus is one check's result as status shows it.
func checkStatus(r CheckResult, consecutive int) status.Check {
	c := status.Check{Check: r.Check, OK: r.Err == nil, LatencySeconds: r.Latency.Seconds(), Consecutive: consecutive}
	if r.Err != nil {
		c.Reason, c.Error = checker.Reason(r.Err), r.Err.Error()
	}
	return c
}

// CheckStatuses turns one round's results into what status shows, as
// `probe` and `check` print them.
func CheckStatuses(results []CheckResult) []status.Check {
	out := []status.Check{}
	for _, r := range results {
		out = append(out, checkStatus(r, 1))
	}
	return out
}

func abs(n int) int { return max(n, -n) }

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
