package advertise

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/damping"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// The service loop's part of flap damping: a withdrawal that failing checks
// cause adds to the service's penalty (penaltyBook); while the penalty
// holds it (held), a passing service asks for last resort rather than
// normal metric (wish.Damped), and it is released when the penalty has
// decayed, at the time the loop's schedule wakes it for (releaseIn). The
// book is the one record: the loop reads it, under its own lock, each time
// it asks what to wish for.

// held says whether the service's penalty, as last judged, holds it back
// from normal metric. Call with mu held.
func (l *serviceLoop) held() bool {
	return l.penalties.peek(l.cfg.Name).Holds(l.cfg.Damping.Params())
}

// withdrawn counts a withdrawal that failing checks caused (weight 1; a
// move into degraded weighs 0.5), and logs the service damped when it is.
// Call with mu held.
func (l *serviceLoop) withdrawn(weight float64) {
	p := l.cfg.Damping.Params()
	before, after := l.penalties.withdrawn(l.cfg.Name, p, l.clock.Wall(), weight)
	if after.Damped && !before.Damped {
		l.logDamping(after, p).Warn(dampedMessage(p))
	}
}

func dampedMessage(p damping.Params) string {
	if p.Mode == damping.ModeObserve {
		return "service would be damped (damping mode observe: not held)"
	}
	return "service damped: flapping; held at last resort while its checks pass, until released"
}

// judgeDamping brings the service's damping up to now, logging a release,
// and reports whether that released a service it held. Call with mu held.
func (l *serviceLoop) judgeDamping() (released bool) {
	p := l.cfg.Damping.Params()
	before, after := l.penalties.asOf(l.cfg.Name, p, l.clock.Wall())
	if before.Damped && !after.Damped {
		msg := "service released from damping: its penalty decayed below reuse"
		if p.Mode == damping.ModeObserve {
			msg = "service would be released from damping (damping mode observe)"
		}
		l.logDamping(after, p).Info(msg)
	}
	return before.Holds(p) && !after.Holds(p)
}

// judgeAgain brings damping up to now outside a round's verdict (a round
// without one, the release time) and records a release with the address
// manager; it returns the generation to wait for (0: no change). Call with
// mu held.
func (l *serviceLoop) judgeAgain() uint64 {
	prev := l.wish()
	if !l.judgeDamping() || prev == l.wish() {
		return 0
	}
	l.since, l.reason = l.clock.Wall(), releasedReason
	return l.addrs.set(l.cfg.Prefixes, l.wish(), l.reason)
}

func (l *serviceLoop) logDamping(st damping.State, p damping.Params) *logrus.Entry {
	f := logrus.Fields{"penalty": int(st.Penalty), "withdrawals": st.Withdrawals,
		"suppress": int(p.Suppress), "reuse": int(p.Reuse), "damping_mode": p.Mode}
	if at := st.ReleaseAt(p); !at.IsZero() {
		f["release_at"] = at.Format(time.RFC3339)
	}
	return l.log.WithFields(f)
}

// releasedReason is the reason of a service released from damping. (The
// only other way whether it is held changes without a withdrawal, a reload
// that sets a damped service's mode to suppress, is judged when the new
// loop is adopted, and status's reason then says it is damped.)
const releasedReason = "released from damping: its penalty decayed below reuse"

// releaseIn is how long until the service's penalty is due to release it
// (damped, in either mode); ok is false when it is not damped. Call with mu
// held.
func (l *serviceLoop) releaseIn() (d time.Duration, ok bool) {
	p := l.cfg.Damping.Params()
	st := l.penalties.peek(l.cfg.Name)
	at := st.ReleaseAt(p)
	if at.IsZero() {
		return 0, false
	}
	// A millisecond late, so that the penalty is then below reuse rather
	// than equal to it but for rounding.
	return max(at.Sub(l.clock.Wall()), 0) + time.Millisecond, true
}

// release is the loop's wake-up at the release time: the service goes back
// to normal metric if it is up, at once rather than at its next round.
func (l *serviceLoop) release(ctx context.Context) {
	l.mu.Lock()
	gen := l.judgeAgain()
	l.mu.Unlock()
	if gen != 0 {
		l.addrs.wait(ctx, gen)
	}
}

// undamp clears the service's penalty (the caller saves the book) and
// records the release, under mu so that no round judges the cleared
// penalty in between and records the release itself, unwaited for; it
// returns the state the penalty had and the generation to wait for.
func (l *serviceLoop) undamp(by string) (had damping.State, gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	prev := l.wish()
	had = l.penalties.clear(l.cfg.Name)
	if prev != l.wish() {
		l.since, l.reason = l.clock.Wall(), "undamped by "+by
		gen = l.addrs.set(l.cfg.Prefixes, l.wish(), l.reason)
	}
	return had, gen
}

// dampingStatus is the service's damping as status shows it; nil when its
// mode is off. Call with mu held.
func (l *serviceLoop) dampingStatus() *status.Damping {
	p := l.cfg.Damping.Params()
	if !p.Keeps() {
		return nil
	}
	st := l.penalties.peek(l.cfg.Name).AsOf(p, l.clock.Wall())
	return &status.Damping{Mode: p.Mode, Penalty: float64(int(st.Penalty)), Damped: st.Damped, ReleaseAt: st.ReleaseAt(p),
		Withdrawals: st.Withdrawals, Suppress: p.Suppress, Reuse: p.Reuse}
}

// dampedReason says why a damped service is where it is; canHold: it has
// a last-resort interface and fails open (decide).
func dampedReason(d *status.Damping, canHold bool) string {
	where := "held at last resort"
	if !canHold {
		where = "withdrawn (no last-resort interface, or fail_open false, to hold it at)"
	}
	return fmt.Sprintf("damped: penalty %.0f after %d withdrawals (suppress %.0f); %s until its penalty decays below reuse %.0f",
		d.Penalty, d.Withdrawals, d.Suppress, where, d.Reuse)
}
