package advertise

import "time"

// Clock is the time source of the loops. Schedules, timeouts, backoff and
// progress use Now and After: time.Now carries a monotonic reading and
// timers run on the monotonic clock, so a wall-clock step (NTP, date -s)
// neither delays nor bunches rounds. Wall is only for what people read:
// when a state began, when the last round ran, when the config loaded.
// Tests inject a fake whose wall clock steps on its own.
type Clock interface {
	Now() time.Time
	Wall() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) Wall() time.Time                        { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
