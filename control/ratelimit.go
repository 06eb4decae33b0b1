package control

import (
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// rateLimitedLog logs a warning at most once per period and counts the
// ones it left out, so that a flood of refused requests cannot flood the
// log: the first line of a burst is logged with its fields, the next
// logged line says how many were suppressed in between.
type rateLimitedLog struct {
	log    logrus.FieldLogger
	period time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newRateLimitedLog(log logrus.FieldLogger, period time.Duration) *rateLimitedLog {
	return &rateLimitedLog{log: log, period: period}
}

func (r *rateLimitedLog) warn(fields logrus.Fields, msg string) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last) < r.period {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	entry := r.log.WithFields(fields)
	if suppressed > 0 {
		entry = entry.WithField("suppressed", suppressed)
	}
	entry.Warn(msg)
}
