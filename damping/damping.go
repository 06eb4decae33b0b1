// Package damping is a service's memory of its flaps: RFC 2439's decaying
// penalty, applied to the withdrawals that failing checks cause rather than
// to routes. Each such withdrawal adds a fixed penalty; the penalty halves
// every half-life; at or above the suppress threshold the service is damped
// (held back from normal advertisement even while its checks pass) until
// the penalty decays below the reuse threshold. The penalty is capped so
// that a service that stops flapping is released at most max-suppress after
// its last withdrawal.
//
// Everything here is a pure function of the parameters, the state and the
// time given: the daemon keeps a State per service, persists it, and asks
// it what to do.
package damping

import (
	"math"
	"time"
)

// The modes: suppress holds a damped service; observe computes and reports
// but never holds (RFC 7196's test mode); off keeps no penalty at all.
const (
	ModeSuppress = "suppress"
	ModeObserve  = "observe"
	ModeOff      = "off"
)

// Params are a service's damping parameters, validated by package config
// (penalty > 0, half_life > 0, reuse < suppress, max_suppress ≥ half_life).
type Params struct {
	Mode        string
	Penalty     float64 // added at each withdrawal
	HalfLife    time.Duration
	Suppress    float64 // damped at or above it
	Reuse       float64 // released below it
	MaxSuppress time.Duration
}

// Keeps says whether the mode keeps a penalty at all: suppress or observe.
// Any other mode (off, or none given) keeps nothing.
func (p Params) Keeps() bool { return p.Mode == ModeSuppress || p.Mode == ModeObserve }

// Ceiling is the highest penalty: from it the penalty decays to Reuse in
// exactly MaxSuppress.
func (p Params) Ceiling() float64 {
	return p.Reuse * math.Exp2(float64(p.MaxSuppress)/float64(p.HalfLife))
}

// State is one service's damping, as of At.
// Its JSON form is what the daemon keeps in state_dir.
type State struct {
	Penalty     float64   `json:"penalty"`     // as of At
	At          time.Time `json:"at"`          // when Penalty was last computed (zero: never)
	Damped      bool      `json:"damped"`      // the penalty crossed Suppress and has not decayed below Reuse
	Withdrawals int       `json:"withdrawals"` // counted since the penalty was last zero or cleared
}

// decayed is the penalty at now.
func (s State) decayed(p Params, now time.Time) float64 {
	if s.Penalty == 0 || s.At.IsZero() || !now.After(s.At) {
		return s.Penalty
	}
	return s.Penalty * math.Exp2(-float64(now.Sub(s.At))/float64(p.HalfLife))
}

// AsOf returns the state as of now: the penalty decayed, and released once
// it is below Reuse. A penalty that decays below a thousandth of a
// withdrawal's is forgotten, with its count.
func (s State) AsOf(p Params, now time.Time) State {
	s.Penalty, s.At = s.decayed(p, now), now
	if s.Damped && s.Penalty < p.Reuse {
		s.Damped = false
	}
	if s.Penalty < p.Penalty/1000 {
		s.Penalty, s.Withdrawals = 0, 0
	}
	return s
}

// Withdrawn adds a withdrawal at now, weighted (1 for a withdrawal; the
// daemon may count a lesser event as a fraction of one), capped at the
// Ceiling, and damps the service when the penalty reaches Suppress.
func (s State) Withdrawn(p Params, now time.Time, weight float64) State {
	s = s.AsOf(p, now)
	s.Penalty = min(s.Penalty+weight*p.Penalty, p.Ceiling())
	s.Withdrawals++
	if s.Penalty >= p.Suppress {
		s.Damped = true
	}
	return s
}

// Holds says whether the state keeps the service from normal
// advertisement: damped, in suppress mode.
func (s State) Holds(p Params) bool { return p.Mode == ModeSuppress && s.Damped }

// ReleaseAt is when a damped service is released if nothing more happens:
// when its penalty decays below Reuse. Zero when it is not damped.
func (s State) ReleaseAt(p Params) time.Time {
	if !s.Damped || s.Penalty < p.Reuse {
		return time.Time{}
	}
	return s.At.Add(time.Duration(float64(p.HalfLife) * math.Log2(s.Penalty/p.Reuse)))
}
