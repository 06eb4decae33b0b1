package advertise

import (
	"sync"
	"testing"
	"time"
)

// steppedClock is the real monotonic clock with a wall clock that an NTP
// step can move by any amount.
type steppedClock struct {
	mu   sync.Mutex
	step time.Duration
}

func (c *steppedClock) Now() time.Time                         { return time.Now() }
func (c *steppedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func (c *steppedClock) Wall() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Round(0).Add(c.step) // Round(0): wall reading only
}

func (c *steppedClock) stepBy(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.step += d
}

// An NTP step of the wall clock, back an hour and then forward two, neither
// stalls the rounds (a scheduler on wall time would wait an hour) nor
// bunches them (it would run the missed hour at once); status shows the
// stepped wall time.
func TestWallClockStepNeitherStallsNorBunchesRounds(t *testing.T) {
	w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true})
	clock := &steppedClock{}
	w.sup.opts.Clock, w.sup.addrs.clock, w.sup.verify.clock = clock, clock, clock
	s := service("dns", "192.0.2.53/32")
	w.start(cfgOf(s))

	next := func() Round {
		t.Helper()
		select {
		case r := <-w.rounds:
			return r
		case <-time.After(time.Second):
			t.Fatal("no round for a second: the schedule stalled")
			return Round{}
		}
	}
	var rounds []Round
	for _, step := range []time.Duration{0, -time.Hour, 2 * time.Hour} {
		clock.stepBy(step)
		for i := 0; i < 10; i++ {
			rounds = append(rounds, next())
		}
		if last := w.sup.Status()[0].LastRound; (last.Sub(clock.Wall())).Abs() > time.Second {
			t.Errorf("after a %s step status shows the last round at %s, want the stepped wall time", step, last)
		}
	}
	for i := 2; i < len(rounds); i++ { // the first gap carries the per-service offset
		if gap := rounds[i].Scheduled.Sub(rounds[i-1].Scheduled); gap != s.Interval {
			t.Errorf("round %d came %s after the previous, want the interval %s", i, gap, s.Interval)
		}
	}
}
