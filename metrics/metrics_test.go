package metrics

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/anycast-watchdog/anycast-watchdog/advertise"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

type fakeSource struct{ st status.Document }

func (f fakeSource) Report(context.Context) status.Document { return f.st }
func (f fakeSource) Reloads() (uint64, uint64)              { return 4, 1 }

func TestRegistryContents(t *testing.T) {
	until := time.Unix(1795003600, 0)
	src := fakeSource{status.Document{
		LastResort: &status.LastResortHealth{Interface: "anycast-lr", OK: false, Error: "Unknown device type"},
		Config: status.Config{LoadedAt: time.Unix(1795000000, 0),
			LastReload: &status.Reload{At: time.Unix(1795000100, 0), OK: false, Error: "bad"}},
		FRR: []status.FRR{{Daemon: "ospfd", OK: true, Errors: map[string]uint64{}, Reads: map[string]uint64{"self": 12, "area": 3}},
			{Daemon: "ospf6d", OK: false, Error: "ospf6d is not running", Errors: map[string]uint64{"not-running": 3, "timeout": 1}}},
		Services: []status.Service{
			{Name: "dns", State: status.Up, Prefixes: []status.Prefix{
				{Prefix: "192.0.2.53/32", Present: true, Advertised: status.AdvertisedYes, Advertisers: []status.Advertiser{
					{RouterID: "203.0.113.1", Self: true, Class: status.ClassNormal}, {RouterID: "203.0.113.2", Metric: 65535, Class: status.ClassLastResort},
					{RouterID: "203.0.113.3", Metric: 65535, Class: status.ClassLastResort}},
					BGP: &status.BGP{Originated: true, PeersAdvertised: 1, PeersEstablished: 2}},
				{Prefix: "2001:db8::53/128", Present: true, Advertised: status.AdvertisedUnknown, Mismatches: 2, FleetError: "ospf6d is not running"}}},
			{Name: "ntp", State: status.Damped, Checks: []status.Check{{Check: "tcp 127.0.0.1:123", OnFail: "withdraw", OK: true},
				{Check: "tls 127.0.0.1:853 dns.example", OnFail: "report", OK: false, CertExpiry: time.Unix(1795000000, 0)}}, Damping: &status.Damping{Mode: "suppress", Penalty: 2950, Damped: true, Withdrawals: 3, Suppress: 2000, Reuse: 1000}},
			{Name: "unbound", State: status.Down, Units: []status.Unit{
				{Name: "unbound.service", LoadState: "loaded", ActiveState: "failed", SubState: "failed", Result: "signal KILL", Watched: true},
				{Name: "unbound-helper.service", LoadState: "loaded", ActiveState: "active", SubState: "running", Watched: true},
				{Name: "nosuch.service", LoadState: "not-found", ActiveState: "inactive", SubState: "dead", Watched: true},
				{Name: "lost.service", LoadState: "loaded", ActiveState: "active", SubState: "running", Error: "unit watch: lost"}}},
			{Name: "web", State: status.Drained, Drain: &status.Drain{Reason: "x", Until: until},
				Prefixes: []status.Prefix{{Prefix: "203.0.113.80/32", Advertised: status.AdvertisedNo}}},
		},
		UnitWatch: &status.UnitWatch{Up: true, Units: 4}}}
	m := New("0.1.0")
	m.Attach(src)
	m.ObserveRound(advertise.Round{Service: "dns", Scheduled: time.Unix(0, 0), Started: time.Unix(0, 2e6), From: status.Up, To: status.Falling,
		Results: []advertise.CheckResult{{Check: "tcp 127.0.0.1:53", Err: errors.New("x"), Latency: 3 * time.Millisecond}}})
	m.ObserveRound(advertise.Round{Service: "ntp", From: status.Falling, To: status.Down, Withdrawn: true})
	m.ObserveRound(advertise.Round{Service: "unbound", From: status.Up, To: status.Down, Withdrawn: true, Unit: &status.Unit{Name: "unbound.service"}})

	expected := `
# HELP anycast_watchdog_service_state 1 for the state the service is in (up, falling, rising, degraded, damped, last_resort, down, draining, drained), 0 for the others.
# TYPE anycast_watchdog_service_state gauge
anycast_watchdog_service_state{service="dns",state="damped"} 0
anycast_watchdog_service_state{service="dns",state="degraded"} 0
anycast_watchdog_service_state{service="dns",state="down"} 0
anycast_watchdog_service_state{service="dns",state="drained"} 0
anycast_watchdog_service_state{service="dns",state="draining"} 0
anycast_watchdog_service_state{service="dns",state="falling"} 0
anycast_watchdog_service_state{service="dns",state="last_resort"} 0
anycast_watchdog_service_state{service="dns",state="rising"} 0
anycast_watchdog_service_state{service="dns",state="up"} 1
anycast_watchdog_service_state{service="ntp",state="damped"} 1
anycast_watchdog_service_state{service="ntp",state="degraded"} 0
anycast_watchdog_service_state{service="ntp",state="down"} 0
anycast_watchdog_service_state{service="ntp",state="drained"} 0
anycast_watchdog_service_state{service="ntp",state="draining"} 0
anycast_watchdog_service_state{service="ntp",state="falling"} 0
anycast_watchdog_service_state{service="ntp",state="last_resort"} 0
anycast_watchdog_service_state{service="ntp",state="rising"} 0
anycast_watchdog_service_state{service="ntp",state="up"} 0
anycast_watchdog_service_state{service="unbound",state="damped"} 0
anycast_watchdog_service_state{service="unbound",state="degraded"} 0
anycast_watchdog_service_state{service="unbound",state="down"} 1
anycast_watchdog_service_state{service="unbound",state="drained"} 0
anycast_watchdog_service_state{service="unbound",state="draining"} 0
anycast_watchdog_service_state{service="unbound",state="falling"} 0
anycast_watchdog_service_state{service="unbound",state="last_resort"} 0
anycast_watchdog_service_state{service="unbound",state="rising"} 0
anycast_watchdog_service_state{service="unbound",state="up"} 0
anycast_watchdog_service_state{service="web",state="damped"} 0
anycast_watchdog_service_state{service="web",state="degraded"} 0
anycast_watchdog_service_state{service="web",state="down"} 0
anycast_watchdog_service_state{service="web",state="drained"} 1
anycast_watchdog_service_state{service="web",state="draining"} 0
anycast_watchdog_service_state{service="web",state="falling"} 0
anycast_watchdog_service_state{service="web",state="last_resort"} 0
anycast_watchdog_service_state{service="web",state="rising"} 0
anycast_watchdog_service_state{service="web",state="up"} 0
# HELP anycast_watchdog_prefix_advertisers Routers advertising the prefix in the link-state database (and over iBGP) as last read here, this node included, by class (normal, last_resort); absent while unknown.
# TYPE anycast_watchdog_prefix_advertisers gauge
anycast_watchdog_prefix_advertisers{class="last_resort",prefix="192.0.2.53/32",service="dns"} 2
anycast_watchdog_prefix_advertisers{class="last_resort",prefix="203.0.113.80/32",service="web"} 0
anycast_watchdog_prefix_advertisers{class="normal",prefix="192.0.2.53/32",service="dns"} 1
anycast_watchdog_prefix_advertisers{class="normal",prefix="203.0.113.80/32",service="web"} 0
# HELP anycast_watchdog_last_resort_up 1 when the last-resort interface is usable; 0 when failing open is off because it could be neither found nor created; absent when last_resort_interface is "".
# TYPE anycast_watchdog_last_resort_up gauge
anycast_watchdog_last_resort_up{interface="anycast-lr"} 0
# HELP anycast_watchdog_prefix_advertised 1 for what the FRR read-back says of the prefix (yes, no, unknown), 0 for the others.
# TYPE anycast_watchdog_prefix_advertised gauge
anycast_watchdog_prefix_advertised{advertised="no",prefix="192.0.2.53/32",service="dns"} 0
anycast_watchdog_prefix_advertised{advertised="no",prefix="2001:db8::53/128",service="dns"} 0
anycast_watchdog_prefix_advertised{advertised="no",prefix="203.0.113.80/32",service="web"} 1
anycast_watchdog_prefix_advertised{advertised="unknown",prefix="192.0.2.53/32",service="dns"} 0
anycast_watchdog_prefix_advertised{advertised="unknown",prefix="2001:db8::53/128",service="dns"} 1
anycast_watchdog_prefix_advertised{advertised="unknown",prefix="203.0.113.80/32",service="web"} 0
anycast_watchdog_prefix_advertised{advertised="yes",prefix="192.0.2.53/32",service="dns"} 1
anycast_watchdog_prefix_advertised{advertised="yes",prefix="2001:db8::53/128",service="dns"} 0
anycast_watchdog_prefix_advertised{advertised="yes",prefix="203.0.113.80/32",service="web"} 0
# HELP anycast_watchdog_frr_readback_mismatches_total Episodes where FRR's advertisement disagreed with the interface.
# TYPE anycast_watchdog_frr_readback_mismatches_total counter
anycast_watchdog_frr_readback_mismatches_total{prefix="192.0.2.53/32",service="dns"} 0
anycast_watchdog_frr_readback_mismatches_total{prefix="2001:db8::53/128",service="dns"} 2
anycast_watchdog_frr_readback_mismatches_total{prefix="203.0.113.80/32",service="web"} 0
# HELP anycast_watchdog_service_drain_expiry_timestamp_seconds When a timed drain ends (Unix time); absent for untimed drains.
# TYPE anycast_watchdog_service_drain_expiry_timestamp_seconds gauge
anycast_watchdog_service_drain_expiry_timestamp_seconds{service="web"} 1.7950036e+09
# HELP anycast_watchdog_frr_vtysh_errors_total Failed FRR read-backs, by daemon and kind (not-running, vtysh-missing, permission-denied, timeout, bad-output, failed).
# TYPE anycast_watchdog_frr_vtysh_errors_total counter
anycast_watchdog_frr_vtysh_errors_total{daemon="ospf6d",kind="not-running"} 3
anycast_watchdog_frr_vtysh_errors_total{daemon="ospf6d",kind="timeout"} 1
# HELP anycast_watchdog_frr_reads_total Reads asked of an FRR daemon, by what was read: self (its own LSAs, to confirm this node's advertisements), area (the whole area's link-state database: the fleet view, read only while a decision, a drain, status or a scrape needs it), prefixes (bgpd's paths of the managed prefixes).
# TYPE anycast_watchdog_frr_reads_total counter
anycast_watchdog_frr_reads_total{daemon="ospfd",what="area"} 3
anycast_watchdog_frr_reads_total{daemon="ospfd",what="self"} 12
# HELP anycast_watchdog_config_reloads_total Configuration reloads (SIGHUP or ` + "`reload`" + `), by result.
# TYPE anycast_watchdog_config_reloads_total counter
anycast_watchdog_config_reloads_total{result="failure"} 1
anycast_watchdog_config_reloads_total{result="success"} 4
# HELP anycast_watchdog_config_last_reload_successful 1 when the last reload worked (or none was tried).
# TYPE anycast_watchdog_config_last_reload_successful gauge
anycast_watchdog_config_last_reload_successful 0
# HELP anycast_watchdog_config_last_load_timestamp_seconds When the running configuration was loaded (Unix time).
# TYPE anycast_watchdog_config_last_load_timestamp_seconds gauge
anycast_watchdog_config_last_load_timestamp_seconds 1.795e+09
# HELP anycast_watchdog_check_up 1 when the check passed in the service's last round, 0 when it failed; on_fail says what its failure does (withdraw, degrade, report).
# TYPE anycast_watchdog_check_up gauge
anycast_watchdog_check_up{check="tls 127.0.0.1:853 dns.example",on_fail="report",service="ntp"} 0
anycast_watchdog_check_up{check="tcp 127.0.0.1:123",on_fail="withdraw",service="ntp"} 1
# HELP anycast_watchdog_tls_cert_expiry_timestamp_seconds When the first certificate of a tls check's verified chain expires (Unix time), as of its last handshake that verified.
# TYPE anycast_watchdog_tls_cert_expiry_timestamp_seconds gauge
anycast_watchdog_tls_cert_expiry_timestamp_seconds{check="tls 127.0.0.1:853 dns.example",service="ntp"} 1.795e+09
# HELP anycast_watchdog_damping_penalty The service's flap-damping penalty now; damped at or above suppress until it decays below reuse. Absent when its damping mode is off.
# TYPE anycast_watchdog_damping_penalty gauge
anycast_watchdog_damping_penalty{service="ntp"} 2950
# HELP anycast_watchdog_service_damped 1 while the service's penalty damps it (in observe mode: would damp it, without holding it); absent when its damping mode is off.
# TYPE anycast_watchdog_service_damped gauge
anycast_watchdog_service_damped{mode="suppress",service="ntp"} 1
# HELP anycast_watchdog_withdrawals_total Withdrawals that failing checks caused (the service left normal advertisement), each adding to its damping penalty; drains, reloads and restarts are not counted.
# TYPE anycast_watchdog_withdrawals_total counter
anycast_watchdog_withdrawals_total{service="ntp"} 1
anycast_watchdog_withdrawals_total{service="unbound"} 1
# HELP anycast_watchdog_transitions_total State changes of a service, by the state entered.
# TYPE anycast_watchdog_transitions_total counter
anycast_watchdog_transitions_total{service="dns",to="falling"} 1
anycast_watchdog_transitions_total{service="ntp",to="down"} 1
anycast_watchdog_transitions_total{service="unbound",to="down"} 1
# HELP anycast_watchdog_unit_active 1 while the watched systemd unit is active (or reloading), 0 while it is not; absent while it is not watched (the bus lost, or unknown to systemd).
# TYPE anycast_watchdog_unit_active gauge
anycast_watchdog_unit_active{service="unbound",unit="unbound-helper.service"} 1
anycast_watchdog_unit_active{service="unbound",unit="unbound.service"} 0
# HELP anycast_watchdog_unit_watch_up 1 while the daemon follows the watched units on the system bus, 0 while it cannot (the checks alone decide); absent when no service watches a unit.
# TYPE anycast_watchdog_unit_watch_up gauge
anycast_watchdog_unit_watch_up 1
# HELP anycast_watchdog_check_failures_total Failed checks, by reason (timeout, refused, rcode, answer, status, body, exit, handshake, name, chain, expiry, unreachable, starved, untrusted, error).
# TYPE anycast_watchdog_check_failures_total counter
anycast_watchdog_check_failures_total{check="tcp 127.0.0.1:53",reason="error",service="dns"} 1
# HELP anycast_watchdog_prefix_bgp_originated 1 when bgpd has a valid path for the prefix sourced here; absent where bgpd does not run with router bgp.
# TYPE anycast_watchdog_prefix_bgp_originated gauge
anycast_watchdog_prefix_bgp_originated{prefix="192.0.2.53/32",service="dns"} 1
# HELP anycast_watchdog_prefix_bgp_peers BGP sessions of the prefix's family: established, and of those the ones it is advertised to.
# TYPE anycast_watchdog_prefix_bgp_peers gauge
anycast_watchdog_prefix_bgp_peers{peers="advertised",prefix="192.0.2.53/32",service="dns"} 1
anycast_watchdog_prefix_bgp_peers{peers="established",prefix="192.0.2.53/32",service="dns"} 2
# HELP anycast_watchdog_build_info Always 1; the labels say which build runs.
# TYPE anycast_watchdog_build_info gauge
anycast_watchdog_build_info{goversion="` + runtime.Version() + `",version="0.1.0"} 1
`
	names := []string{"anycast_watchdog_service_state", "anycast_watchdog_prefix_advertisers", "anycast_watchdog_last_resort_up", "anycast_watchdog_prefix_advertised", "anycast_watchdog_frr_readback_mismatches_total",
		"anycast_watchdog_service_drain_expiry_timestamp_seconds", "anycast_watchdog_frr_vtysh_errors_total", "anycast_watchdog_frr_reads_total", "anycast_watchdog_config_reloads_total",
		"anycast_watchdog_config_last_reload_successful", "anycast_watchdog_config_last_load_timestamp_seconds", "anycast_watchdog_transitions_total", "anycast_watchdog_check_failures_total",
		"anycast_watchdog_damping_penalty", "anycast_watchdog_service_damped", "anycast_watchdog_check_up", "anycast_watchdog_tls_cert_expiry_timestamp_seconds", "anycast_watchdog_withdrawals_total",
		"anycast_watchdog_prefix_bgp_originated", "anycast_watchdog_prefix_bgp_peers", "anycast_watchdog_build_info",
		"anycast_watchdog_unit_active", "anycast_watchdog_unit_watch_up"}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(expected), names...); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.checkDuration); n != 1 {
		t.Errorf("check duration series: %d", n)
	}
	if lint, err := testutil.GatherAndLint(m.Registry); err != nil || len(lint) > 0 {
		t.Errorf("metric lint: %v %v", lint, err)
	}
}
