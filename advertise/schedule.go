package advertise

import (
	"context"
	"io"
	"slices"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

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
		wake, reply := l.sleep(ctx, scheduled)
		switch wake {
		case wokeStopped:
			return
		case wokeRelease:
			l.release(ctx)
			continue
		case wokeAsked:
			scheduled = l.clock.Now()
		}
		if reply != nil {
			waiting = append(waiting, reply)
		}
		started := l.clock.Now()
		results := l.runChecks(ctx)
		if ctx.Err() != nil {
			return // cancelled checks say nothing about the service
		}
		from, to, first, withdrawn, gen := l.observe(results)
		if gen != 0 {
			l.addrs.wait(ctx, gen) // not under mu: a hung ip blocks no reader
		}
		if first {
			close(l.firstRound)
		}
		ended := l.clock.Now()
		round := Round{Service: l.cfg.Name, Scheduled: scheduled, Started: started, Ended: ended,
			Results: results, From: from, To: to, Withdrawn: withdrawn}
		if l.onRound != nil {
			l.onRound(round)
		}
		for _, reply := range waiting {
			reply <- round
		}
		waiting = nil
		l.mu.Lock()
		// The degrade checks rise and fall at the same pace as the others.
		period := min(l.hyst.Period(l.cfg.Interval, l.cfg.FastInterval), l.degrade.Period(l.cfg.Interval, l.cfg.FastInterval))
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

// Why sleep returned.
const (
	wokeDue     = iota // the round is due
	wokeAsked          // a round was asked for now (checkNow, a watched unit running again)
	wokeRelease        // a damped service's release time came first
	wokeStopped        // ctx ended
)

// sleep waits until the round scheduled is due, a round is asked for, or
// the service's damping is due to release it, whichever comes first. A
// round already due takes a request waiting for it along (wokeDue with a
// reply).
func (l *serviceLoop) sleep(ctx context.Context, scheduled time.Time) (wake int, reply chan Round) {
	wait := scheduled.Sub(l.clock.Now())
	if wait <= 0 {
		select {
		case reply := <-l.now:
			return wokeDue, reply
		default:
			return wokeDue, nil
		}
	}
	l.mu.Lock()
	release, damped := l.releaseIn()
	l.mu.Unlock()
	wake = wokeDue
	if damped && release < wait {
		wait, wake = release, wokeRelease
	}
	timer := l.clock.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return wokeStopped, nil
	case <-timer.C():
		return wake, nil
	case reply := <-l.now:
		return wokeAsked, reply
	case <-l.kick:
		return wokeAsked, nil
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

// roundGrid is the grid, from the supervisor's start, that rounds start on
// when their service allows: rounds of different services that fall in the
// same slot start together, from one wake-up of the Go runtime's timers
// instead of one each. 25 ms measured cheapest: coarser slots make larger
// bursts whose threads wake each other (docs/performance.md).
const roundGrid = 25 * time.Millisecond

// gridMinSlots is the shortest fast interval, in slots, that the grid
// applies to: a period that is not a multiple of the slot is shortened by
// up to one slot, 12.5 % at most.
const gridMinSlots = 8

// gridEpoch is the origin of the grid that svc's rounds start on: epoch,
// the supervisor's start, or none (the zero time) for a service that keeps
// exact times. Those are one whose fast interval is under gridMinSlots
// slots, which the grid would distort, and one with an exec check: forks
// bunched into shared slots cost their children more CPU than forks spread
// over the interval, and the wake-ups the grid saves are small beside a
// fork (docs/performance.md, "Exec checks").
func gridEpoch(epoch time.Time, svc config.Service) time.Time {
	if svc.FastInterval < gridMinSlots*roundGrid || hasExecCheck(svc) {
		return time.Time{}
	}
	return epoch
}

// onGrid moves t back to the start of its roundGrid slot from epoch. Back,
// never forward: a round may come up to a slot early, never late, so every
// worst-case time holds. Without an epoch (gridEpoch) t stays.
func onGrid(t, epoch time.Time) time.Time {
	if epoch.IsZero() || t.Before(epoch) {
		return t
	}
	return t.Add(-(t.Sub(epoch) % roundGrid))
}

// hasExecCheck says whether svc forks: its rounds are placed to keep forks
// apart (gridEpoch, offsets).
func hasExecCheck(svc config.Service) bool {
	return slices.ContainsFunc(svc.Checks, func(c config.Check) bool { return c.Type == config.CheckExec })
}

// nextRound returns when the round after one scheduled at scheduled and
// ended at ended starts: a period after its scheduled start, keeping the
// grid, but never before it ended, so rounds never overlap and an overrun
// causes no burst of catch-up rounds.
func nextRound(scheduled, ended time.Time, period time.Duration) time.Time {
	return notBefore(scheduled.Add(period), ended)
}

// notBefore is next, or ended if next is earlier.
func notBefore(next, ended time.Time) time.Time {
	if next.Before(ended) {
		return ended
	}
	return next
}

// onPhase returns the first time after scheduled that lies a whole number
// of intervals from phase: a service at rest keeps its own place in the
// interval. It is never more than an interval after scheduled, so the
// worst-case times hold, and after rounds at the fast interval it brings the
// service back to its place: services that failed together (a start's burst
// of first rounds that starved one another) do not stay bunched, starving
// one another's checks every interval.
func onPhase(scheduled, phase time.Time, interval time.Duration) time.Time {
	d := scheduled.Sub(phase)
	k := d / interval
	if d < 0 && d%interval != 0 {
		k-- // floor, not truncation
	}
	return phase.Add((k + 1) * interval)
}
