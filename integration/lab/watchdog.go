package lab

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// WatchdogConfig is an anycast-watchdog configuration for a lab node: one
// service "dns" guarding the anycast /32 and /128 with a DNS check of
// 127.0.0.1 (health.example. → 198.51.100.99).
type WatchdogConfig struct {
	OnExit       string // keep or withdraw
	LogLevel     string // default info
	Pathspace    string // the node's FRR pathspace
	Verify       bool   // FRR read-back
	Dir          string // socket and state go here
	Name         string // names the control socket
	Interval     time.Duration
	FastInterval time.Duration
	Timeout      time.Duration // the dns check's; default min(FastInterval, 250ms)
	Rise, Fall   int
	Vtysh        string // default /usr/bin/vtysh
	// FRRTimeout is frr.timeout; default 500ms (tests of a hung vtysh
	// finish sooner), where the daemon's own default is 2s.
	FRRTimeout time.Duration
	IP         string // the ip program; default /usr/sbin/ip
	Metrics    string // metrics_listen; default off
	// FleetInterval is frr.fleet_interval and DrainGrace the service's
	// drain_grace; zero leaves the daemon's defaults (5s, 2s).
	FleetInterval time.Duration
	DrainGrace    time.Duration
	// Damping is the top-level damping block as YAML flow, e.g. "{mode:
	// off}" or "{half_life: 20s, max_suppress: 60s}"; empty leaves the
	// daemon's defaults.
	Damping string
	// MoreChecks are more checks of the dns service, YAML flow mappings
	// (e.g. "{type: exec, command: [...], on_fail: degrade}").
	MoreChecks []string
	// Services is YAML for more services, appended to the list as written
	// (each item indented by two spaces, like the dns service).
	Services string
}

// Write writes the configuration to path.
func (c WatchdogConfig) Write(path string) error {
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Vtysh == "" {
		c.Vtysh = "/usr/bin/vtysh"
	}
	if c.IP == "" {
		c.IP = "/usr/sbin/ip"
	}
	if c.Timeout == 0 {
		c.Timeout = min(c.FastInterval, 250*time.Millisecond)
	}
	if c.FRRTimeout == 0 {
		c.FRRTimeout = 500 * time.Millisecond
	}
	if c.FleetInterval == 0 {
		c.FleetInterval = 5 * time.Second
	}
	if c.DrainGrace == 0 {
		c.DrainGrace = 2 * time.Second
	}
	damping := ""
	if c.Damping != "" {
		damping = "damping: " + c.Damping + "\n"
	}
	return os.WriteFile(path, []byte(damping+fmt.Sprintf(`interface: lo
ip: %s
on_exit: %s
log_level: %s
frr:
  vtysh: "%s"
  pathspace: "%s"
  timeout: %s
  verify: %v
  fleet_interval: %s
control_socket: %s/%s.sock
state_dir: %s/%s-state
metrics_listen: "%s"
services:
  - name: dns
    prefixes: [%s, %s]
    interval: %s
    fast_interval: %s
    timeout: %s
    rise: %d
    fall: %d
    drain_grace: %s
    checks:
      - type: dns
        server: 127.0.0.1:53
        query: health.example.
        answer_contains: 198.51.100.99
%s%s`, c.IP, c.OnExit, c.LogLevel, c.Vtysh, c.Pathspace, c.FRRTimeout, c.Verify, c.FleetInterval, c.Dir, c.Name, c.Dir, c.Name, c.Metrics, AnycastV4, AnycastV6,
		c.Interval, c.FastInterval, c.Timeout, c.Rise, c.Fall, c.DrainGrace, moreChecks(c.MoreChecks), c.Services)), 0o644)
}

func moreChecks(checks []string) string {
	var b strings.Builder
	for _, c := range checks {
		b.WriteString("      - " + c + "\n")
	}
	return b.String()
}

// NewTemp returns a lab in a new temporary directory; its cleanup closes
// the lab and removes the directory.
func NewTemp(prefix string) (*Lab, func(), error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, nil, err
	}
	l, err := New(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return l, func() { l.Close(); os.RemoveAll(dir) }, nil
}
