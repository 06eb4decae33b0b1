package advertise

import "time"

// Clock is the time source of the loops. Schedules, timeouts, backoff and
// progress use Now and NewTimer: time.Now carries a monotonic reading and
// timers run on the monotonic clock, so a wall-clock step (NTP, date -s)
// neither delays nor bunches rounds. Wall is only for what people read:
// when a state began, when the last round ran, when the config loaded.
// Unit tests run the loops in a testing/synctest bubble, whose time is
// fake, and step Wall apart to play an NTP step.
type Clock interface {
	Now() time.Time
	Wall() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer fires once on C after its duration; Stop releases it early. Every
// wait in this package stops its timer when it ends another way.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) Wall() time.Time                { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// wakeup is a level-triggered signal between goroutines: any number of
// notify calls before the receiver looks count as one, and notify never
// blocks.
type wakeup chan struct{}

func newWakeup() wakeup { return make(wakeup, 1) }

func (w wakeup) notify() {
	select {
	case w <- struct{}{}:
	default:
	}
}
