package advertise

import (
	"context"
	"sync"
)

// barrier numbers a worker's rounds of work so that callers can wait for
// theirs: a caller takes the next generation (take) after recording what
// it wants, the worker finishes generations in order (finish), and wait
// returns once a generation is finished. The address manager uses one for
// wishes, the verifier one for reads. Its lock is a leaf: take and finish
// may be called with the owner's lock held.
type barrier struct {
	mu       sync.Mutex
	taken    uint64
	finished uint64
	progress chan struct{} // closed and replaced at each finish
}

func newBarrier() *barrier { return &barrier{progress: make(chan struct{})} }

// take returns the next generation.
func (b *barrier) take() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.taken++
	return b.taken
}

// last is the last generation taken.
func (b *barrier) last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.taken
}

// finish marks every generation up to gen as done and wakes the waiters.
func (b *barrier) finish(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finished = max(b.finished, gen)
	close(b.progress)
	b.progress = make(chan struct{})
}

// done reports whether generation gen is finished.
func (b *barrier) done(gen uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.finished >= gen
}

// next is closed at the next finish.
func (b *barrier) next() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.progress
}

// wait returns once generation gen is finished, ctx ends or stopped is
// closed (the worker ended).
func (b *barrier) wait(ctx context.Context, gen uint64, stopped <-chan struct{}) {
	b.waitFor(ctx, stopped, func() bool { return b.done(gen) })
}

// waitFor returns once cond holds, checked now and after each finish, or
// ctx ends or stopped is closed.
func (b *barrier) waitFor(ctx context.Context, stopped <-chan struct{}, cond func() bool) {
	for {
		next := b.next() // before cond: a finish in between still wakes us
		if cond() {
			return
		}
		select {
		case <-next:
		case <-ctx.Done():
			return
		case <-stopped:
			return
		}
	}
}

// lastErrors remembers, per subject (an interface, a daemon, a file), the
// last error seen, so that a failure is logged when it begins or changes
// and its end once, not at every retry. Its owner's lock guards it.
type lastErrors map[string]string

// note records err (nil: it works) for subject and reports whether that
// differs from what was last recorded; a subject never seen counts as
// working.
func (l lastErrors) note(subject string, err error) (changed bool) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	changed = l[subject] != msg
	l[subject] = msg
	return changed
}
