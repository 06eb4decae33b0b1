package advertise

import "time"

// Clock is the time source of the loops. time.Now carries a monotonic
// reading and timers run on the monotonic clock, so a wall-clock step (NTP)
// neither delays nor bunches rounds; tests inject a fake.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
