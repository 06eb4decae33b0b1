package checker

import (
	"errors"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/trust"
)

// Exec checks of one Builder share a verdict on their program for
// judgeEvery: one walk of its path, not one per run; an untrusted verdict
// is shared as well, a path it could not read is not a verdict, and a
// verdict judgeEvery old is walked again.
func TestJudgmentsShareAVerdictForASecond(t *testing.T) {
	untrusted := &trust.UntrustedError{Program: "/opt/check", Path: "/opt", Why: "is writable by everyone"}
	for _, tt := range []struct {
		name      string
		walkErr   error
		wantErr   error
		afterWait time.Duration
		walks     int // after a first run and a second one afterWait later
	}{
		{"trusted, again at once", nil, nil, 0, 1},
		{"trusted, again just before a second", nil, nil, judgeEvery - time.Millisecond, 1},
		{"trusted, again a second later", nil, nil, judgeEvery, 2},
		{"untrusted, again at once", untrusted, untrusted, 0, 1},
		{"untrusted, again a second later", untrusted, untrusted, judgeEvery, 2},
		{"unreadable: not a verdict, running it fails as it would", errors.New("lstat /opt/check: no such file"), nil, 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1795000000, 0)
			walks := 0
			j := &judgments{now: func() time.Time { return now }, by: map[string]judgment{},
				walk: func(string, trust.Identity) error { walks++; return tt.walkErr }}
			for i, wait := range []time.Duration{0, tt.afterWait} {
				now = now.Add(wait)
				if err := j.untrusted("/opt/check"); err != tt.wantErr {
					t.Fatalf("run %d: %v, want %v", i+1, err, tt.wantErr)
				}
			}
			if walks != tt.walks {
				t.Errorf("%d walks of the path, want %d", walks, tt.walks)
			}
		})
	}
}
