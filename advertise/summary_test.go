package advertise

import (
	"context"
	"errors"
	"testing"
)

func TestSummary(t *testing.T) {
	timeout := CheckResult{Check: "dns 127.0.0.1:53 health.example./A udp", Err: context.DeadlineExceeded}
	refused := CheckResult{Check: "tcp 127.0.0.1:53", Err: errors.New("refused")}
	ok := CheckResult{Check: "tcp 127.0.0.1:80"}
	tests := []struct {
		name     string
		services []ServiceStatus
		want     string
	}{
		{"none", nil, "no services configured; managing no address"},
		{"one up", []ServiceStatus{{Name: "dns", State: Up, Checks: []CheckResult{ok}}}, "1 service: 1 up"},
		{"mixed", []ServiceStatus{
			{Name: "web", State: Up, Checks: []CheckResult{ok}},
			{Name: "ntp", State: Up, Checks: []CheckResult{ok}},
			{Name: "dns", State: Down, Checks: []CheckResult{timeout, ok}},
		}, "3 services: 2 up, 1 down (dns: timeout)"},
		{"falling and rising", []ServiceStatus{
			{Name: "dns", State: Falling, Checks: []CheckResult{timeout, refused}},
			{Name: "web", State: Rising, Passes: 2, Checks: []CheckResult{ok}},
		}, "2 services: 1 falling, 1 rising (dns: timeout, error; web: rising, 2 passes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summary(tt.services); got != tt.want {
				t.Errorf("Summary = %q, want %q", got, tt.want)
			}
		})
	}
}
