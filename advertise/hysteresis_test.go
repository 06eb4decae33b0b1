package advertise

import (
	"strings"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// rounds is a compact script: P a passing round, F a failing one.
func TestHysteresis(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		advertised bool
		rounds     string
		want       string // state after each round
	}{
		{"starts down and must rise", 3, 2, false, "PPP", "rising rising up"},
		{"starts up when already advertised", 3, 2, true, "P", "up"},
		{"falls after fall failures", 3, 2, true, "FF", "falling down"},
		{"one failure does not withdraw", 3, 2, true, "FPF", "falling up falling"},
		{"a failure while rising starts over", 3, 2, false, "PPFPPP", "rising rising down rising rising up"},
		{"rise 1 advertises at once", 1, 1, false, "P", "up"},
		{"fall 1 withdraws at once", 1, 1, true, "F", "down"},
		{"failing while down stays down", 3, 2, false, "FFF", "down down down"},
		{"flapping never changes an up service with fall 2", 3, 2, true, "FPFPFP", "falling up falling up falling up"},
		{"flapping never raises a down service with rise 2", 2, 2, false, "PFPFPF", "rising down rising down rising down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHysteresis(tt.rise, tt.fall, tt.advertised)
			var got []string
			for _, r := range tt.rounds {
				_, to := h.Observe(r == 'P')
				got = append(got, to.String())
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("rounds %s: got %q, want %q", tt.rounds, g, tt.want)
			}
		})
	}
}

func TestHysteresisStreak(t *testing.T) {
	h := NewHysteresis(3, 3, true)
	h.Observe(true)
	h.Observe(true)
	if p, f := h.Streak(); p != 2 || f != 0 {
		t.Errorf("after PP: streak %d/%d", p, f)
	}
	h.Observe(false)
	if p, f := h.Streak(); p != 0 || f != 1 {
		t.Errorf("after PPF: streak %d/%d", p, f)
	}
}

// The schedule is pure: a fake clock is just the times passed in.
func TestSchedule(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	tests := []struct {
		name             string
		scheduled, ended time.Duration // after t0
		period           time.Duration
		want             time.Duration
	}{
		{"keeps the grid when the round is short", 0, 30 * ms, time.Second, time.Second},
		{"a late start does not shift the grid", 0, 40 * ms, time.Second, time.Second},
		{"an overrun starts the next at its end, no burst", 0, 2500 * ms, time.Second, 2500 * ms},
		{"fast interval while pending", 1000 * ms, 1010 * ms, 200 * ms, 1200 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nextRound(t0.Add(tt.scheduled), t0.Add(tt.ended), tt.period)
			if want := t0.Add(tt.want); !got.Equal(want) {
				t.Errorf("nextRound = +%s, want +%s", got.Sub(t0), tt.want)
			}
		})
	}
}

// Withdrawal timing the integration tests rely on: from the first failing
// round, a service with fall f is down after (f-1) fast intervals.
func TestFallTiming(t *testing.T) {
	t0 := time.Time{}
	interval, fast := time.Second, 200*time.Millisecond
	h := NewHysteresis(3, 3, true)
	at := t0
	for {
		_, to := h.Observe(false)
		if to == status.Down {
			break
		}
		at = nextRound(at, at.Add(time.Millisecond), h.Period(interval, fast))
	}
	if got := at.Sub(t0); got != 2*fast {
		t.Errorf("down %s after the first failing round, want %s", got, 2*fast)
	}
}

func TestOnPhase(t *testing.T) {
	phase := time.Date(2026, 12, 1, 0, 0, 10, 0, time.UTC)
	at := func(d time.Duration) time.Time { return phase.Add(d) }
	const interval = time.Second
	for _, tt := range []struct {
		name      string
		scheduled time.Time
		want      time.Time
	}{
		{"the start, before the phase: the phase itself", at(-300 * time.Millisecond), phase},
		{"an interval before the phase exactly: the phase", at(-interval), phase},
		{"more than an interval before: the phase point after it", at(-1300 * time.Millisecond), at(-interval)},
		{"on the phase: an interval on", phase, at(interval)},
		{"after fast rounds, mid-interval: back to the phase", at(2250 * time.Millisecond), at(3 * interval)},
		{"just before a phase point: that point", at(3*interval - time.Millisecond), at(3 * interval)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := onPhase(tt.scheduled, phase, interval)
			if !got.Equal(tt.want) {
				t.Errorf("onPhase = %s, want %s (from the phase)", got.Sub(phase), tt.want.Sub(phase))
			}
			if gap := got.Sub(tt.scheduled); gap <= 0 || gap > interval {
				t.Errorf("%s after the round scheduled, want within (0, interval]", gap)
			}
		})
	}
}
