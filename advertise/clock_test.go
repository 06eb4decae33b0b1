package advertise

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// An NTP step of the wall clock, back an hour and then forward two, neither
// stalls the rounds (a scheduler on wall time would wait an hour) nor
// bunches them (it would run the missed hour at once); status shows the
// stepped wall time.
func TestWallClockStepNeitherStallsNorBunchesRounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true})
		s := service("dns", "192.0.2.53/32")
		w.start(cfgOf(s))
		for _, step := range []time.Duration{0, -time.Hour, 2 * time.Hour} {
			w.clock.stepWall(step)
			var rounds []Round
			for i := 0; i < 10; i++ {
				rounds = append(rounds, w.nextRound())
			}
			for i := 2; i < len(rounds); i++ { // the first gap may carry the per-service offset or a fast round
				if gap := rounds[i].Scheduled.Sub(rounds[i-1].Scheduled); gap != s.Interval {
					t.Errorf("after a %s step round %d came %s after the previous, want the interval %s", step, i, gap, s.Interval)
				}
			}
			// One failing round: the state's start is stamped with the
			// stepped wall time. One passing round puts it back.
			w.checks["dns"].healthy.Store(false)
			failed := w.nextRound()
			if st, want := w.service("dns"), w.clock.wallAt(failed.Ended); st.State != status.Falling || !st.Since.Equal(want) {
				t.Errorf("after a %s step: %s since %s, want falling since the stepped wall time %s", step, st.State, st.Since, want)
			}
			w.checks["dns"].healthy.Store(true)
			w.nextRound()
		}
	})
}
