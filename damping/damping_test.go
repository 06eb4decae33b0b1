package damping

import (
	"math"
	"testing"
	"time"
)

// defaults are the issue's: penalty 1000, half-life 5m, suppress 2000,
// reuse 1000, max-suppress 30m.
var defaults = Params{Mode: ModeSuppress, Penalty: 1000, HalfLife: 5 * time.Minute, Suppress: 2000, Reuse: 1000, MaxSuppress: 30 * time.Minute}

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func near(a, b, tolerance float64) bool { return math.Abs(a-b) <= tolerance }

func TestPenaltyDecays(t *testing.T) {
	s := State{}.Withdrawn(defaults, t0, 1)
	for _, tt := range []struct {
		after time.Duration
		want  float64
	}{
		{0, 1000}, {time.Minute, 870.55}, {5 * time.Minute, 500}, {10 * time.Minute, 250}, {45 * time.Minute, 1.95},
		{50 * time.Minute, 0}, // 0.98: below a thousandth of a withdrawal, forgotten
	} {
		if got := s.AsOf(defaults, t0.Add(tt.after)).Penalty; !near(got, tt.want, 0.01) {
			t.Errorf("after %s: penalty %.2f, want %.2f", tt.after, got, tt.want)
		}
	}
	if s.AsOf(defaults, t0.Add(50*time.Minute)).Withdrawals != 0 {
		t.Error("a forgotten penalty keeps its withdrawals")
	}
}

// withdrawals applies one withdrawal at each offset from t0.
func withdrawals(p Params, offsets ...time.Duration) State {
	var s State
	for _, d := range offsets {
		s = s.Withdrawn(p, t0.Add(d), 1)
	}
	return s
}

func TestSequences(t *testing.T) {
	minute := time.Minute
	for _, tt := range []struct {
		name    string
		offsets []time.Duration
		damped  bool
		release time.Duration // after t0, when damped; ±1 s
	}{
		{"one withdrawal never damps", []time.Duration{0}, false, 0},
		{"two a second apart never damp", []time.Duration{0, time.Second}, false, 0},
		{"two a minute apart never damp", []time.Duration{0, minute}, false, 0},
		{"three a minute apart damp for about seven minutes", []time.Duration{0, minute, 2 * minute}, true, 2*minute + 6*minute + 58*time.Second},
		{"three 3m20s apart damp, just", []time.Duration{0, 200 * time.Second, 400 * time.Second}, true, 400*time.Second + 5*time.Minute + 6*time.Second},
		{"three 3m40s apart do not", []time.Duration{0, 220 * time.Second, 440 * time.Second}, false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := withdrawals(defaults, tt.offsets...)
			if s.Damped != tt.damped {
				t.Fatalf("damped %v with penalty %.0f, want %v", s.Damped, s.Penalty, tt.damped)
			}
			if !tt.damped {
				if !s.ReleaseAt(defaults).IsZero() {
					t.Errorf("not damped, yet a release time %s", s.ReleaseAt(defaults))
				}
				return
			}
			release := s.ReleaseAt(defaults)
			if got := release.Sub(t0); got < tt.release-time.Second || got > tt.release+time.Second {
				t.Errorf("released %s after the first, want %s", got, tt.release)
			}
			if !s.AsOf(defaults, release.Add(-time.Second)).Damped || s.AsOf(defaults, release.Add(time.Second)).Damped {
				t.Errorf("damped a second before %s: %v, a second after: %v", release, s.AsOf(defaults, release.Add(-time.Second)).Damped,
					s.AsOf(defaults, release.Add(time.Second)).Damped)
			}
		})
	}
}

// A crash loop stays damped while it lasts and is released at most
// max-suppress after it stops: every 30 s its penalty levels off at about
// 14,900 (released 19.5 minutes after); every 5 s it reaches the ceiling,
// from which the release takes max-suppress exactly.
func TestCrashLoopIsReleasedWithinMaxSuppress(t *testing.T) {
	for _, tt := range []struct {
		every   time.Duration
		penalty float64
		release time.Duration
	}{
		{30 * time.Second, 14933, 19*time.Minute + 30*time.Second},
		{5 * time.Second, 64000, 30 * time.Minute},
	} {
		t.Run(tt.every.String(), func(t *testing.T) {
			var s State
			var last time.Time
			n := int(2 * time.Hour / tt.every)
			for i := 0; i < n; i++ {
				last = t0.Add(time.Duration(i) * tt.every)
				s = s.Withdrawn(defaults, last, 1)
				if i >= 2 && !s.AsOf(defaults, last.Add(tt.every-time.Second)).Damped {
					t.Fatalf("released during the loop, at withdrawal %d (penalty %.0f)", i, s.Penalty)
				}
			}
			if !near(s.Penalty, tt.penalty, 1) || s.Penalty > defaults.Ceiling() {
				t.Errorf("penalty %.0f, want %.0f (ceiling %.0f)", s.Penalty, tt.penalty, defaults.Ceiling())
			}
			got := s.ReleaseAt(defaults).Sub(last)
			if got > defaults.MaxSuppress || got < tt.release-time.Second || got > tt.release+time.Second {
				t.Errorf("released %s after the last withdrawal, want %s (at most max_suppress %s)", got, tt.release, defaults.MaxSuppress)
			}
			if s.Withdrawals != n {
				t.Errorf("withdrawals %d, want %d", s.Withdrawals, n)
			}
		})
	}
}

// observe computes the same state but never holds; off is the caller's:
// it keeps no state at all.
func TestHolds(t *testing.T) {
	damped := withdrawals(defaults, 0, time.Minute, 2*time.Minute)
	observe := defaults
	observe.Mode = ModeObserve
	for _, tt := range []struct {
		p     Params
		s     State
		holds bool
	}{
		{defaults, damped, true},
		{observe, withdrawals(observe, 0, time.Minute, 2*time.Minute), false},
		{defaults, withdrawals(defaults, 0), false},
	} {
		if got := tt.s.Holds(tt.p); got != tt.holds {
			t.Errorf("mode %s, damped %v: holds %v, want %v", tt.p.Mode, tt.s.Damped, got, tt.holds)
		}
	}
	if o := withdrawals(observe, 0, time.Minute, 2*time.Minute); !o.Damped || o.ReleaseAt(observe).IsZero() {
		t.Errorf("observe does not say it would damp: %+v", o)
	}
}

// A lesser event counts as a fraction of a withdrawal.
func TestWeightedWithdrawal(t *testing.T) {
	s := State{}.Withdrawn(defaults, t0, 0.5)
	if s.Penalty != 500 || s.Damped || s.Withdrawals != 1 {
		t.Errorf("half a withdrawal: %+v", s)
	}
}
