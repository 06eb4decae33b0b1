package status

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/internal/golden"
)

var t0 = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)

// sample is the document in testdata/status.json; package main renders the
// same file as a table.
func sample() Document {
	return Document{
		Version: "0.1.0",
		Config: Config{Path: "/etc/anycast-watchdog/config.yaml", LoadedAt: t0.Add(-10 * time.Minute),
			LastReload: &Reload{At: t0.Add(-2 * time.Minute), OK: false, Error: "config.yaml:4: services[0].rise: 0 must be at least 1"}},
		FRR: []FRR{{Daemon: "ospfd", OK: true, Errors: map[string]uint64{}, Reads: map[string]uint64{"self": 41, "area": 2}},
			{Daemon: "ospf6d", OK: false, Error: "ospf6d is not running", Errors: map[string]uint64{"not-running": 3}, Reads: map[string]uint64{"self": 44}},
			{Daemon: "bgpd", OK: true, Errors: map[string]uint64{"timeout": 1}, Reads: map[string]uint64{"prefixes": 45}}},
		LastResort: &LastResortHealth{Interface: "anycast-lr", OK: true},
		Doctor:     &Doctor{Errors: 1, Warnings: 2, At: time.Date(2026, 11, 20, 10, 0, 3, 0, time.UTC)},
		UnitWatch:  &UnitWatch{Up: true, Units: 1},
		Services: []Service{
			{Name: "dns", State: Up, Since: t0.Add(-5 * time.Minute), Reason: "3 consecutive passing rounds (rise 3)",
				Passes: 300, Rise: 3, Fall: 2,
				Prefixes: []Prefix{
					{Prefix: "192.0.2.53/32", Wanted: true, Present: true, Advertised: AdvertisedYes, Interface: "lo",
						Advertisers: []Advertiser{{RouterID: "203.0.113.1", Metric: 0, Self: true, Class: ClassNormal},
							{RouterID: "203.0.113.2", Metric: 0, Class: ClassNormal}, {RouterID: "203.0.113.3", Metric: 65535, Class: ClassLastResort}},
						BGP: &BGP{Originated: true, PeersAdvertised: 2, PeersEstablished: 2}},
					{Prefix: "2001:db8::53/128", Wanted: true, Present: true, Advertised: AdvertisedUnknown, AdvertisedReason: "ospf6d is not running",
						Interface: "lo", FleetError: "ospf6d is not running"}},
				Checks: []Check{
					{Check: "dns 127.0.0.1:53 health.example./A udp", OnFail: "withdraw", OK: true, LatencySeconds: 0.00123, Consecutive: 300},
					{Check: "tcp 127.0.0.1:53", OnFail: "withdraw", OK: true, LatencySeconds: 0.0002, Consecutive: 300},
					{Check: "exec /usr/local/bin/disk-free", OnFail: "report", OK: false, Reason: "exit", Error: "exit status 1: / is 93% full", LatencySeconds: 0.002, Consecutive: 7}},
				Damping: &Damping{Mode: "suppress", Suppress: 2000, Reuse: 1000},
				Units:   []Unit{{Name: "unbound.service", LoadState: "loaded", ActiveState: "active", SubState: "running", Watched: true}}},
			{Name: "ntp", State: Damped, Since: t0.Add(-50 * time.Second), Reason: "3 consecutive passing rounds (rise 3); damped: penalty 2840 after 3 withdrawals (suppress 2000); held at last resort until its penalty decays below reuse 1000",
				Passes: 40, Rise: 3, Fall: 2,
				Prefixes: []Prefix{{Prefix: "192.0.2.123/32", Wanted: true, Present: true, Advertised: AdvertisedYes, Interface: "anycast-lr",
					Advertisers: []Advertiser{{RouterID: "203.0.113.1", Metric: 65535, Self: true, Class: ClassLastResort},
						{RouterID: "203.0.113.2", Metric: 0, Class: ClassNormal}}}},
				Checks: []Check{{Check: "exec /usr/lib/nagios/plugins/check_ntp_time -H 127.0.0.1", OK: true, LatencySeconds: 0.003, Consecutive: 40}},
				Damping: &Damping{Mode: "suppress", Penalty: 2840, Damped: true, ReleaseAt: t0.Add(4*time.Minute + 10*time.Second), Withdrawals: 3,
					Suppress: 2000, Reuse: 1000}},
			{Name: "web", State: Drained, Since: t0.Add(-time.Minute), Reason: "drained: kernel upgrade",
				Drain: &Drain{Reason: "kernel upgrade", By: "uid 0 (root) pid 4242", Since: t0.Add(-time.Minute), Until: t0.Add(55 * time.Minute)},
				Fails: 0, Rise: 3, Fall: 2,
				Prefixes: []Prefix{{Prefix: "203.0.113.80/32", Wanted: false, Present: false, Advertised: AdvertisedNo,
					Advertisers: []Advertiser{{RouterID: "203.0.113.2", Metric: 0, Class: ClassNormal}}}},
				Checks: []Check{{Check: "http http://127.0.0.1:8080/healthz", OK: false, Reason: "status",
					Error: "status 503, want 200", LatencySeconds: 0.004, Consecutive: 12}}},
		},
	}
}

// The JSON form is an interface: this golden file changes only by adding.
func TestDocumentJSON(t *testing.T) {
	got, err := json.MarshalIndent(sample(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "status.json", append(got, '\n'))
	want, err := os.ReadFile("testdata/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var back Document
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.MarshalIndent(back, "", "  "); !bytes.Equal(append(again, '\n'), want) {
		t.Errorf("the document does not survive a round trip through JSON:\n%s", again)
	}
}

func TestSummary(t *testing.T) {
	timeout := Check{Check: "dns 127.0.0.1:53 health.example./A udp", Reason: "timeout", Error: "context deadline exceeded"}
	refused := Check{Check: "tcp 127.0.0.1:53", Reason: "refused", Error: "connection refused"}
	ok := Check{Check: "tcp 127.0.0.1:80", OK: true}
	tests := []struct {
		name     string
		services []Service
		want     string
	}{
		{"none", nil, "no services configured; managing no address"},
		{"one up", []Service{{Name: "dns", State: Up, Checks: []Check{ok}}}, "1 service: 1 up"},
		{"mixed", []Service{
			{Name: "web", State: Up, Checks: []Check{ok}},
			{Name: "ntp", State: Up, Checks: []Check{ok}},
			{Name: "dns", State: Down, Checks: []Check{timeout, ok}},
		}, "3 services: 2 up, 1 down (dns: timeout)"},
		{"falling and rising", []Service{
			{Name: "dns", State: Falling, Checks: []Check{timeout, refused}},
			{Name: "web", State: Rising, Passes: 2, Checks: []Check{ok}},
		}, "2 services: 1 falling, 1 rising (dns: timeout, refused; web: rising, 2 passes)"},
		{"down before any round", []Service{{Name: "dns", State: Down}}, "1 service: 1 down (dns: no verdict yet)"},
		{"drained", []Service{
			{Name: "dns", State: Drained, Drain: &Drain{Reason: "kernel upgrade"}, Checks: []Check{ok}},
			{Name: "web", State: Up, Checks: []Check{ok}},
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

// Every state a service can be in reads right in systemd's STATUS= line;
// a state added to States() without a row here fails.
func TestSummaryEveryState(t *testing.T) {
	timeout := Check{Check: "dns 127.0.0.1:53 health.example./A udp", Reason: "timeout", Error: "context deadline exceeded"}
	ok := Check{Check: "tcp 127.0.0.1:53", OK: true}
	drain := &Drain{Reason: "kernel upgrade"}
	want := map[State]struct {
		service Service
		summary string
	}{
		Up:         {Service{State: Up, Checks: []Check{ok}}, "1 service: 1 up"},
		Falling:    {Service{State: Falling, Checks: []Check{timeout}}, "1 service: 1 falling (dns: timeout)"},
		Rising:     {Service{State: Rising, Passes: 1, Checks: []Check{ok}}, "1 service: 1 rising (dns: rising, 1 passes)"},
		Degraded:   {Service{State: Degraded, Checks: []Check{ok, {Check: "tcp 127.0.0.1:853", OnFail: "degrade", Reason: "refused"}, {Check: "exec x", OnFail: "report", Reason: "exit"}}}, "1 service: 1 degraded (dns: refused)"},
		Damped:     {Service{State: Damped, Checks: []Check{ok}}, "1 service: 1 damped (dns: damped)"},
		LastResort: {Service{State: LastResort, Checks: []Check{timeout}}, "1 service: 1 last_resort (dns: timeout)"},
		Down:       {Service{State: Down, Checks: []Check{timeout}}, "1 service: 1 down (dns: timeout)"},
		Draining:   {Service{State: Draining, Drain: drain, Checks: []Check{ok}}, "1 service: 1 draining (dns: draining)"},
		Drained:    {Service{State: Drained, Drain: drain, Checks: []Check{timeout}}, "1 service: 1 drained (dns: drained)"},
	}
	for _, st := range States() {
		t.Run(st.String(), func(t *testing.T) {
			w, ok := want[st]
			if !ok {
				t.Fatalf("no expected summary for state %s", st)
			}
			w.service.Name = "dns"
			if got := Summary([]Service{w.service}); got != w.summary {
				t.Errorf("Summary = %q, want %q", got, w.summary)
			}
		})
	}
}

func TestStateDrained(t *testing.T) {
	for _, st := range States() {
		if got, want := st.Drained(), st == Draining || st == Drained; got != want {
			t.Errorf("%s.Drained() = %v, want %v", st, got, want)
		}
	}
}

func TestAdvertiserCounts(t *testing.T) {
	for _, tt := range []struct {
		name               string
		prefix             Prefix
		normal, lastResort int
		known              bool
	}{
		{"no fleet view", Prefix{FleetError: "ospfd is not running", Advertisers: []Advertiser{{Class: ClassNormal}}}, 0, 0, false},
		{"nobody", Prefix{}, 0, 0, true},
		{"both classes", Prefix{Advertisers: []Advertiser{{Class: ClassNormal}, {Class: ClassLastResort}, {Class: ClassNormal, Self: true}}}, 2, 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, lr, known := tt.prefix.AdvertiserCounts()
			if n != tt.normal || lr != tt.lastResort || known != tt.known {
				t.Errorf("AdvertiserCounts = %d, %d, %v; want %d, %d, %v", n, lr, known, tt.normal, tt.lastResort, tt.known)
			}
		})
	}
}

func TestDrainExpired(t *testing.T) {
	for _, tt := range []struct {
		name  string
		until time.Time
		now   time.Time
		want  bool
	}{
		{"untimed never expires", time.Time{}, t0.Add(1000 * time.Hour), false},
		{"before the end", t0, t0.Add(-time.Nanosecond), false},
		{"at the end", t0, t0, true},
		{"after the end", t0, t0.Add(time.Second), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Drain{Until: tt.until}).Expired(tt.now); got != tt.want {
				t.Errorf("Expired = %v, want %v", got, tt.want)
			}
		})
	}
}

// What a watched unit's state means for its service, and how it reads.
func TestUnitStates(t *testing.T) {
	for _, tt := range []struct {
		u       Unit
		stopped bool
		text    string
	}{
		{Unit{Name: "u.service", LoadState: "loaded", ActiveState: "active", SubState: "running", Watched: true}, false, "unit u.service active (running)"},
		{Unit{Name: "u.service", LoadState: "loaded", ActiveState: "reloading", SubState: "reload", Watched: true}, false, "unit u.service reloading (reload)"},
		{Unit{Name: "u.service", LoadState: "loaded", ActiveState: "failed", SubState: "failed", Result: "signal SEGV", Watched: true}, true, "unit u.service failed (signal SEGV)"},
		{Unit{Name: "u.service", LoadState: "loaded", ActiveState: "inactive", SubState: "dead", Watched: true}, true, "unit u.service inactive (dead)"},
		{Unit{Name: "u.service", LoadState: "loaded", ActiveState: "activating", SubState: "auto-restart", Result: "exit status 1", Watched: true}, true, "unit u.service activating (exit status 1)"},
		{Unit{Name: "u.service", LoadState: "loaded", ActiveState: "deactivating", SubState: "stop-sigterm", Watched: true}, true, "unit u.service deactivating (stop-sigterm)"},
		{Unit{Name: "u.service", LoadState: "not-found", ActiveState: "inactive", SubState: "dead", Watched: true}, false, "unit u.service not-found"},
		{Unit{Name: "u.service", LoadState: "masked", ActiveState: "inactive", SubState: "dead", Watched: true}, false, "unit u.service masked"},
		{Unit{Name: "u.service", LoadState: "loaded", ActiveState: "failed", SubState: "failed", Error: "unit watch: lost"}, false, "unit u.service failed (failed)"},
		{Unit{Name: "u.service", Error: "not read yet"}, false, "unit u.service (state not known)"},
	} {
		if got := tt.u.Stopped(); got != tt.stopped {
			t.Errorf("%+v: Stopped() = %v", tt.u, got)
		}
		if got := tt.u.String(); got != tt.text {
			t.Errorf("%+v: String() = %q, want %q", tt.u, got, tt.text)
		}
	}
}
