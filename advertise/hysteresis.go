package advertise

import (
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// advertised reports whether prefixes are on the interface in this
// hysteresis state.
func advertised(s status.State) bool { return s == status.Up || s == status.Falling }

// pending reports whether a change is under way, so rounds come at the fast
// interval.
func pending(s status.State) bool { return s == status.Rising || s == status.Falling }

// Hysteresis turns a series of round results into a state: rise passes in a
// row to advertise, fall failures in a row to withdraw.
type Hysteresis struct {
	rise, fall int
	state      status.State // Up, Falling, Rising or Down
	passes     int          // consecutive passing rounds
	fails      int          // consecutive failing rounds
}

// NewHysteresis starts Up when the prefixes are already advertised, so that
// a restart never blips a healthy service, and Down otherwise, so that a
// service must prove itself before it is advertised.
func NewHysteresis(rise, fall int, advertised bool) Hysteresis {
	h := Hysteresis{rise: rise, fall: fall, state: status.Down}
	if advertised {
		h.state = status.Up
	}
	return h
}

// WithThresholds is h, its state and streaks kept, under new rise and
// fall; a streak already past a new threshold takes effect at the next
// round.
func (h Hysteresis) WithThresholds(rise, fall int) Hysteresis {
	h.rise, h.fall = rise, fall
	return h
}

// State is the current state.
func (h *Hysteresis) State() status.State { return h.state }

// Streak returns the consecutive passing and failing rounds; one is zero.
func (h *Hysteresis) Streak() (passes, fails int) { return h.passes, h.fails }

// Observe records one round and returns the state before and after it.
func (h *Hysteresis) Observe(pass bool) (from, to status.State) {
	from = h.state
	if pass {
		h.passes, h.fails = h.passes+1, 0
		switch {
		case h.state == status.Falling:
			h.state = status.Up
		case advertised(h.state):
		case h.passes >= h.rise:
			h.state = status.Up
		default:
			h.state = status.Rising
		}
	} else {
		h.passes, h.fails = 0, h.fails+1
		switch {
		case h.state == status.Rising:
			h.state = status.Down
		case !advertised(h.state):
		case h.fails >= h.fall:
			h.state = status.Down
		default:
			h.state = status.Falling
		}
	}
	return from, h.state
}

// FailAll records a failure that counts as fall failing rounds in a row
// (a watched unit stopped: nothing serves) and returns the state before
// and after it: down, whatever the streak was.
func (h *Hysteresis) FailAll() (from, to status.State) {
	from = h.state
	h.passes, h.fails = 0, max(h.fails+1, h.fall)
	h.state = status.Down
	return from, h.state
}

// Period is how long after a round's scheduled start the next one is due.
func (h *Hysteresis) Period(interval, fast time.Duration) time.Duration {
	if pending(h.state) {
		return fast
	}
	return interval
}
