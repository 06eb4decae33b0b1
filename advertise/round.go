package advertise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// CheckResult is one check's outcome in one round.
type CheckResult struct {
	Check   string // config.Check.String()
	OnFail  string // config.OnFailWithdraw, OnFailDegrade or OnFailReport; "" counts as withdraw
	Err     error
	Latency time.Duration
	// CertExpiry is when the first certificate of a tls check's verified
	// chain expires, as of its last handshake; zero for other checks.
	CertExpiry time.Time
}

// certExpirer is a checker that knows a certificate's expiry (tls).
type certExpirer interface{ CertExpiry() time.Time }

// onFail is what the check's failure does: "" is the default, withdraw.
func (r CheckResult) onFail() string { return cmp.Or(r.OnFail, config.OnFailWithdraw) }

// Round is what one round did, for observers (metrics, benchmarks).
type Round struct {
	Service   string
	Scheduled time.Time // when it was due
	Started   time.Time
	Ended     time.Time
	Results   []CheckResult
	From, To  status.State // the hysteresis's state before and after
	// Withdrawn: failing checks took the service from normal
	// advertisement in this round (from advertised to down), which adds to
	// its damping penalty.
	Withdrawn bool
	// Unit is set when a watched unit's stop made the verdict rather than
	// a round of checks (units.go): no check ran, and the times are the
	// event's.
	Unit *status.Unit
}

type namedChecker struct {
	cfg     config.Check
	name    string // cfg.String(), made once rather than every round
	checker checker.Checker
	expirer certExpirer // the checker, when it knows a certificate's expiry (tls); else nil
}

func (l *serviceLoop) runChecks(ctx context.Context) []CheckResult {
	return runChecks(ctx, l.clock, l.checks)
}

// runChecks runs every check concurrently, each under its own deadline;
// the last runs on the calling goroutine (a service with one check starts
// no goroutine per round). Checks with the same timeout share one context
// (made at the round's start, so each deadline is the same as its own
// would be): a context with a deadline costs a runtime timer, a measurable
// part of a check's CPU (docs/performance.md).
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
		results[i] = CheckResult{Check: checks[i].name, OnFail: checks[i].cfg.OnFail, Err: err, Latency: clock.Now().Sub(start)}
		if e := checks[i].expirer; e != nil {
			results[i].CertExpiry = e.CertExpiry()
		}
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

// roundVerdict judges a round by its withdraw checks (classVerdict).
func roundVerdict(results []CheckResult) (failed []CheckResult, decided bool) {
	return classVerdict(results, config.OnFailWithdraw)
}

// classVerdict judges a round by its checks of one on_fail class: failed
// are the checks that ran and failed, and the round fails when there is
// one, passes when every check passed (a class without checks passes). A
// check that could not start in time (*checker.Starved) proves nothing
// either way, so a round with one and no failure has no verdict (decided
// false): withdrawing on it would take healthy services off the network
// for the daemon's own load (docs/performance.md, "Exec checks"), and
// rising on it would advertise on a part of the checks.
func classVerdict(results []CheckResult, onFail string) (failed []CheckResult, decided bool) {
	starved := false
	for _, r := range results {
		switch {
		case r.onFail() != onFail:
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
		expirer, _ := ch.(certExpirer)
		out = append(out, namedChecker{cfg: c, name: c.String(), checker: ch, expirer: expirer})
	}
	return out, nil
}

// checkStatus is one check's result as status shows it.
func checkStatus(r CheckResult, consecutive int) status.Check {
	c := status.Check{Check: r.Check, OnFail: r.onFail(), OK: r.Err == nil, LatencySeconds: r.Latency.Seconds(), Consecutive: consecutive,
		CertExpiry: r.CertExpiry}
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
