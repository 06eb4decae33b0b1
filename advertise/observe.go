package advertise

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// observe feeds a round's withdraw checks into the hysteresis (judge; a
// stopped unit fails the round whatever they say) and its degrade checks
// into theirs (observeDegrade), then follows the verdict through (settle:
// damping, the address manager, the log line); it logs a report check
// that starts or stops failing. gen is the generation to wait for (0: no
// change). first is true for the loop's first round.
func (l *serviceLoop) observe(results []CheckResult) (from, to status.State, first, withdrawn bool, gen uint64) {
	failed, decided := roundVerdict(results)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rounds++
	first = l.rounds == 1
	l.lastRound = l.clock.Now()
	l.lastChecks = make([]status.Check, len(results))
	for i, r := range results {
		was := l.streaks[i]
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
		if r.onFail() == config.OnFailReport && (r.Err != nil) != (was < 0) && (was != 0 || r.Err != nil) {
			l.logReport(r)
		}
	}
	if l.drain != nil {
		// Drained: checks run and are shown, but decide nothing.
		return l.hyst.State(), l.hyst.State(), first, false, 0
	}
	stopped := l.stoppedUnit()
	if !decided && stopped == nil {
		// The daemon's own load kept a check from running: the round says
		// nothing of the service, whose state holds. Logged when such rounds
		// begin and end, not every round, so a storm cannot flood the log.
		if l.undecided++; l.undecided == 1 {
			l.log.WithField("state", l.hyst.State().String()).Warn("round without a verdict: exec checks starved (the daemon's load, not the service's); the state holds")
		}
		return l.hyst.State(), l.hyst.State(), first, false, l.judgeAgain()
	}
	if l.undecided > 0 {
		l.log.WithField("rounds", l.undecided).Info("rounds have a verdict again after starved ones")
		l.undecided = 0
	}
	prev := l.wish()
	from, to, reason := l.judge(failed, stopped)
	for _, r := range failed {
		l.log.WithFields(logrus.Fields{"check": r.Check, "failure": checker.Reason(r.Err), "latency": r.Latency.Round(time.Microsecond).String()}).
			WithError(r.Err).Debug("check failed")
	}
	degradedNow := l.observeDegrade(results)
	withdrawn, gen = l.settle(prev, from, to, reason, degradedNow, failed, stopped)
	return from, to, first, withdrawn, gen
}

// judge feeds one verdict into the hysteresis: a stopped unit's (down at
// once, as fall failing rounds) when one is, else the round's withdraw
// checks' (failed: those failing). It records a change's reason as the
// service's and returns the states and that reason ("" without a change:
// the reason is written only for a change, not for every round). Call
// with mu held.
func (l *serviceLoop) judge(failed []CheckResult, stopped *status.Unit) (from, to status.State, reason string) {
	if stopped != nil {
		from, to = l.hyst.FailAll()
		reason = stopped.String()
	} else {
		from, to = l.hyst.Observe(len(failed) == 0)
		if from != to {
			passes, fails := l.hyst.Streak()
			reason = transitionReason(to, passes, fails, l.cfg)
		}
	}
	if from != to {
		l.since, l.reason = l.clock.Wall(), reason
		if len(failed) > 0 {
			l.reason += ": " + failureText(failed)
		}
	}
	return from, to, reason
}

// settle follows a verdict through (prev: the wish before it): it adds a
// withdrawal, or a move into degraded, to the damping penalty, records a
// change of advertisement with the address manager and logs a change of
// state with its cause; gen is the generation to wait for (0: no change).
// Call with mu held.
func (l *serviceLoop) settle(prev wish, from, to status.State, reason string, degradedNow bool, failed []CheckResult, stopped *status.Unit) (withdrawn bool, gen uint64) {
	withdrawn = advertised(from) && to == status.Down
	switch {
	case withdrawn:
		l.withdrawn(1)
	case degradedNow && advertised(to):
		// A move into degraded leaves normal advertisement too: half a
		// withdrawal.
		l.withdrawn(0.5)
	case l.judgeDamping() && from == to:
		l.since, l.reason = l.clock.Wall(), releasedReason
	}
	if prev != l.wish() {
		why := l.reason
		if from != to {
			why = "service " + to.String() + ": " + reason
		}
		gen = l.addrs.set(l.cfg.Prefixes, l.wish(), why)
	}
	if from == to {
		return withdrawn, gen
	}
	entry := l.log.WithFields(logrus.Fields{"from": from.String(), "to": to.String(), "reason": reason})
	if stopped != nil {
		entry = entry.WithFields(unitFields(*stopped))
	}
	if len(failed) > 0 {
		entry = entry.WithFields(logrus.Fields{"check": failed[0].Check, "error": failed[0].Err.Error()})
		if len(failed) > 1 {
			entry = entry.WithField("also_failing", failureText(failed[1:]))
		}
	}
	switch {
	case to == status.Down:
		entry.Warn("service down")
	case to == status.Up && l.held():
		entry.Info("service up, but damped: held at last resort until released")
	default:
		entry.Info("service " + to.String())
	}
	return withdrawn, gen
}

// observeDegrade feeds the round's degrade checks into their own
// hysteresis, logs a change with its cause and records it as the
// service's reason while the service is advertised; it reports whether
// the service just became degraded. Call with mu held.
func (l *serviceLoop) observeDegrade(results []CheckResult) (became bool) {
	failed, decided := classVerdict(results, config.OnFailDegrade)
	if !decided {
		return false
	}
	from, to := l.degrade.Observe(len(failed) == 0)
	if advertised(from) == advertised(to) {
		return false
	}
	passes, fails := l.degrade.Streak()
	entry := l.log.WithFields(logrus.Fields{"degraded": !advertised(to)})
	if advertised(to) {
		why := fmt.Sprintf("degrade checks pass again: %d consecutive passing rounds (rise %d)", passes, l.cfg.Rise)
		entry.WithField("reason", why).Info("service no longer degraded")
		if advertised(l.hyst.State()) {
			l.since, l.reason = l.clock.Wall(), why
		}
		return false
	}
	why := fmt.Sprintf("degraded: %d consecutive failing rounds of its degrade checks (fall %d): %s", fails, l.cfg.Fall, failureText(failed))
	entry.WithField("reason", why).Warn("service degraded: at last resort, every node at normal metric preferred")
	if advertised(l.hyst.State()) {
		l.since, l.reason = l.clock.Wall(), why
	}
	return true
}

// logReport logs a report check that starts or stops failing: it moves
// nothing, so the log, status and metrics are all it does.
func (l *serviceLoop) logReport(r CheckResult) {
	entry := l.log.WithFields(logrus.Fields{"check": r.Check, "on_fail": config.OnFailReport})
	if r.Err != nil {
		entry.WithFields(logrus.Fields{"failure": checker.Reason(r.Err), "error": r.Err.Error()}).Warn("report check failing (it moves no address)")
		return
	}
	entry.Info("report check passes again")
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

// snapshot is the service's status, derived from the live state (the
// hysteresis, the drain, the configuration); the read-back's part of its
// prefixes is left to the verifier.
func (l *serviceLoop) snapshot() status.Service {
	l.mu.Lock()
	s := status.Service{Name: l.cfg.Name, State: l.hyst.State(), Since: l.since, Reason: l.reason,
		Rise: l.cfg.Rise, Fall: l.cfg.Fall, Checks: append([]status.Check{}, l.lastChecks...)}
	s.Passes, s.Fails = l.hyst.Streak()
	s.Damping = l.dampingStatus()
	s.Units = l.unitStatus()
	held := l.held() && l.drain == nil && advertised(s.State)
	degraded := !held && l.degraded() && l.drain == nil && advertised(s.State)
	if l.drain != nil {
		s.State = status.Drained
		d := *l.drain
		s.Drain = &d
	}
	l.mu.Unlock()
	var where []Location
	s.Prefixes, where = l.addrs.status(l.cfg.Prefixes)
	var atLastResort []netip.Prefix
	for i, loc := range where {
		if loc == OnLastResort {
			atLastResort = append(atLastResort, l.cfg.Prefixes[i])
		}
	}
	switch {
	case held:
		s.State = status.Damped
		s.Reason += "; " + dampedReason(s.Damping, l.addrs.lastResort != nil && l.cfg.FailOpen)
	case degraded:
		s.State = status.Degraded
		if l.addrs.lastResort == nil { // set before the loops start, never changed
			s.Reason += "; degrading is unavailable: no usable last-resort interface (last_resort_interface \"\" or it could not be created), so it stays at normal metric"
		}
	}
	switch {
	case len(atLastResort) == 0:
	case s.State == status.Drained:
		s.State = status.Draining
		s.Reason += "; at last resort until drain_grace (" + l.cfg.DrainGrace.String() + ") has passed: " + prefixList(atLastResort)
	case s.State == status.Down:
		s.State = status.LastResort
		s.Reason += "; held at last resort: " + l.heldReason(atLastResort)
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

func abs(n int) int { return max(n, -n) }

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
