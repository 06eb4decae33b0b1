package advertise

import (
	"context"
	"errors"
	"testing"
)

func TestSummary(t *testing.T) {
	timeout := CheckStatus{CheckResult: CheckResult{Check: "dns 127.0.0.1:53 health.example./A udp", Err: context.DeadlineExceeded}}
	refused := CheckStatus{CheckResult: CheckResult{Check: "tcp 127.0.0.1:53", Err: errors.New("refused")}}
	ok := CheckStatus{CheckResult: CheckResult{Check: "tcp 127.0.0.1:80"}}
	tests := []struct {
		name     string
		services []ServiceStatus
		want     string
	}{
		{"none", nil, "no services configured; managing no address"},
		{"one up", []ServiceStatus{{Name: "dns", State: Up, Checks: []CheckStatus{ok}}}, "1 service: 1 up"},
		{"mixed", []ServiceStatus{
			{Name: "web", State: Up, Checks: []CheckStatus{ok}},
			{Name: "ntp", State: Up, Checks: []CheckStatus{ok}},
			{Name: "dns", State: Down, Checks: []CheckStatus{timeout, ok}},
		}, "3 services: 2 up, 1 down (dns: timeout)"},
		{"falling and rising", []ServiceStatus{
			{Name: "dns", State: Falling, Checks: []CheckStatus{timeout, refused}},
			{Name: "web", State: Rising, Passes: 2, Checks: []CheckStatus{ok}},
		}, "2 services: 1 falling, 1 rising (dns: timeout, error; web: rising, 2 passes)"},
		{"drained", []ServiceStatus{
			{Name: "dns", State: Up, Drain: &Drain{Reason: "kernel upgrade"}, Checks: []CheckStatus{ok}},
			{Name: "web", State: Up, Checks: []CheckStatus{ok}},
		}, "2 services: 1 up, 1 drained (dns: drained)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summary(tt.services); got != tt.want {
				t.Errorf("Summary = %q, want %q", got, tt.want)
			}
		})
	}
}
