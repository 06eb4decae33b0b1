package checker

import (
	"sync"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/trust"
)

// judgeEvery is how long a program's verdict (trust.Program) is reused by
// the exec checks of one Builder: every check of the same program within
// it shares one walk of its path, where 500 services of /bin/true walked
// it 500 times a second (5 % of the daemon's own CPU; docs/performance.md,
// "Exec checks"). A program that another user came to be able to change
// is refused from at most this long after the change.
const judgeEvery = time.Second

// judgments caches the verdicts on the programs exec checks run. mu is
// taken alone and never held across a walk.
type judgments struct {
	self trust.Identity
	now  func() time.Time
	walk func(path string, self trust.Identity) error // trust.Program

	mu sync.Mutex
	by map[string]judgment // by path: as many as the configurations named
}

type judgment struct {
	at  time.Time
	err error // nil, or an untrusted verdict
}

func newJudgments() *judgments {
	return &judgments{self: trust.Self(), now: time.Now, walk: trust.Program, by: map[string]judgment{}}
}

// untrusted returns the untrusted verdict on path (nil when trusted, or
// when the walk could not read a component: running it then fails as it
// would), walking its path again when the last walk is judgeEvery old.
// A nil *judgments walks every time.
func (j *judgments) untrusted(path string) error {
	if j == nil {
		return onlyUntrusted(trust.Program(path, trust.Self()))
	}
	now := j.now()
	j.mu.Lock()
	v, ok := j.by[path]
	j.mu.Unlock()
	if ok && now.Sub(v.at) < judgeEvery {
		return v.err
	}
	err := onlyUntrusted(j.walk(path, j.self))
	j.mu.Lock()
	j.by[path] = judgment{at: now, err: err}
	j.mu.Unlock()
	return err
}

func onlyUntrusted(err error) error {
	if trust.IsUntrusted(err) {
		return err
	}
	return nil
}
