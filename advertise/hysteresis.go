// Package advertise decides, service by service, whether its anycast
// prefixes should be on the interface: it runs the checks on a schedule,
// feeds the results through rise/fall hysteresis, turns the state into the
// desired presence of each prefix, applies it with ip and keeps the
// interface reconciled with it.
package advertise

import "time"

// State is where a service stands in its hysteresis.
type State int

const (
	Down    State = iota // withdrawn
	Rising               // withdrawn, passing, not yet rise passes in a row
	Up                   // advertised
	Falling              // advertised, failing, not yet fall failures in a row
)

func (s State) String() string {
	switch s {
	case Down:
		return "down"
	case Rising:
		return "rising"
	case Up:
		return "up"
	case Falling:
		return "falling"
	}
	return "unknown"
}

// Advertised reports whether prefixes are on the interface in this state.
func (s State) Advertised() bool { return s == Up || s == Falling }

// Pending reports whether a change is under way, so rounds come at the fast
// interval.
func (s State) Pending() bool { return s == Rising || s == Falling }

// Hysteresis turns a series of round results into a state: rise passes in a
// row to advertise, fall failures in a row to withdraw.
type Hysteresis struct {
	rise, fall int
	state      State
	passes     int // consecutive passing rounds
	fails      int // consecutive failing rounds
}

// NewHysteresis starts Up when the prefixes are already advertised, so that
// a restart never blips a healthy service, and Down otherwise, so that a
// service must prove itself before it is advertised.
func NewHysteresis(rise, fall int, advertised bool) Hysteresis {
	h := Hysteresis{rise: rise, fall: fall, state: Down}
	if advertised {
		h.state = Up
	}
	return h
}

// State is the current state.
func (h *Hysteresis) State() State { return h.state }

// Streak returns the consecutive passing and failing rounds; one is zero.
func (h *Hysteresis) Streak() (passes, fails int) { return h.passes, h.fails }

// Observe records one round and returns the state before and after it.
func (h *Hysteresis) Observe(pass bool) (from, to State) {
	from = h.state
	if pass {
		h.passes, h.fails = h.passes+1, 0
		switch {
		case h.state == Falling:
			h.state = Up
		case h.state.Advertised():
		case h.passes >= h.rise:
			h.state = Up
		default:
			h.state = Rising
		}
	} else {
		h.passes, h.fails = 0, h.fails+1
		switch {
		case h.state == Rising:
			h.state = Down
		case !h.state.Advertised():
		case h.fails >= h.fall:
			h.state = Down
		default:
			h.state = Falling
		}
	}
	return from, h.state
}

// Period is how long after a round's scheduled start the next one is due.
func (h *Hysteresis) Period(interval, fast time.Duration) time.Duration {
	if h.state.Pending() {
		return fast
	}
	return interval
}

// nextRound returns when the round after one scheduled at scheduled and
// ended at ended starts: a period after its scheduled start, keeping the
// grid, but never before it ended, so rounds never overlap and an overrun
// causes no burst of catch-up rounds.
func nextRound(scheduled, ended time.Time, period time.Duration) time.Time {
	next := scheduled.Add(period)
	if next.Before(ended) {
		return ended
	}
	return next
}
