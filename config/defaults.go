package config

import (
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/damping"
)

// Every default lives here, and anycast-watchdog.yaml(5) documents each
// (TestManPageCoversConfig holds it to every key). A key that is absent from the YAML takes the value below; a key
// that is present is validated as written, so `rise: 0` is an error rather
// than a silent 3.

// DefaultPath is where run, check-config, probe and the client commands look
// for the configuration unless --config says otherwise.
const DefaultPath = "/etc/anycast-watchdog/config.yaml"

const (
	defaultInterface  = "lo"
	defaultLastResort = "anycast-lr"
	defaultOnExit     = OnExitKeep
	defaultLogLevel   = "info"
	defaultLogFormat  = "text"
	// Absolute, never looked up in PATH: Debian 12's places.
	defaultIP            = "/usr/sbin/ip"
	defaultVtysh         = "/usr/bin/vtysh"
	defaultFRRTimeout    = 2 * time.Second
	defaultFRRVerify     = true
	defaultFleetInterval = 5 * time.Second
	// The recipe's cost for the last-resort interface, OSPF's highest.
	defaultLastResortMetric = 65535
	defaultControlSocket    = "/run/anycast-watchdog/control.sock"
	defaultStateDir         = "/var/lib/anycast-watchdog"
	defaultMetricsListen    = "127.0.0.1:9795"

	defaultInterval     = 1 * time.Second
	defaultFastInterval = 200 * time.Millisecond // capped at interval when interval is shorter
	defaultTimeout      = 500 * time.Millisecond // capped at interval when interval is shorter
	defaultRise         = 3
	defaultFall         = 2
	defaultFailOpen     = true
	defaultDrainGrace   = 2 * time.Second

	defaultDampingMode        = damping.ModeSuppress
	defaultDampingPenalty     = 1000
	defaultDampingHalfLife    = 5 * time.Minute
	defaultDampingSuppress    = 2000
	defaultDampingReuse       = 1000
	defaultDampingMaxSuppress = 30 * time.Minute

	defaultDNSQType     = "A"
	defaultDNSTransport = "udp"
	defaultDNSRcode     = "NOERROR"
	defaultDNSPort      = 53  // where a dns check's server names no port
	defaultDoTPort      = 853 // the same, over tls (RFC 7858)
	defaultHTTPStatus   = 200
)

// applyDefaults fills every key the file did not set. present reports whether
// a key path was written in the file.
func applyDefaults(c *Config, present func(path string) bool) {
	setDefault(&c.Interface, present("interface"), defaultInterface)
	setDefault(&c.LastResortInterface, present("last_resort_interface"), defaultLastResort)
	setDefault(&c.OnExit, present("on_exit"), defaultOnExit)
	setDefault(&c.IP, present("ip"), defaultIP)
	setDefault(&c.LogLevel, present("log_level"), defaultLogLevel)
	setDefault(&c.LogFormat, present("log_format"), defaultLogFormat)
	setDefault(&c.FRR.Vtysh, present("frr.vtysh"), defaultVtysh)
	setDefault(&c.FRR.Timeout, present("frr.timeout"), defaultFRRTimeout)
	setDefault(&c.FRR.Verify, present("frr.verify"), defaultFRRVerify)
	setDefault(&c.FRR.FleetInterval, present("frr.fleet_interval"), defaultFleetInterval)
	setDefault(&c.FRR.LastResortMetric, present("frr.last_resort_metric"), defaultLastResortMetric)
	setDefault(&c.ControlSocket, present("control_socket"), defaultControlSocket)
	setDefault(&c.StateDir, present("state_dir"), defaultStateDir)
	setDefault(&c.MetricsListen, present("metrics_listen"), defaultMetricsListen)
	defaultDamping(&c.Damping, "damping", present, Damping{Mode: defaultDampingMode, Penalty: defaultDampingPenalty,
		HalfLife: defaultDampingHalfLife, Suppress: defaultDampingSuppress, Reuse: defaultDampingReuse, MaxSuppress: defaultDampingMaxSuppress})

	for i := range c.Services {
		s := &c.Services[i]
		p := servicePath(i)
		setDefault(&s.Interval, present(p+".interval"), defaultInterval)
		setDefault(&s.FastInterval, present(p+".fast_interval"), min(defaultFastInterval, s.Interval))
		setDefault(&s.Timeout, present(p+".timeout"), min(defaultTimeout, s.Interval))
		setDefault(&s.Rise, present(p+".rise"), defaultRise)
		setDefault(&s.Fall, present(p+".fall"), defaultFall)
		setDefault(&s.FailOpen, present(p+".fail_open"), defaultFailOpen)
		setDefault(&s.DrainGrace, present(p+".drain_grace"), defaultDrainGrace)
		defaultDamping(&s.Damping, p+".damping", present, c.Damping)
		for j := range s.Checks {
			ch := &s.Checks[j]
			cp := checkPath(i, j)
			setDefault(&ch.Timeout, present(cp+".timeout"), s.Timeout)
			setDefault(&ch.OnFail, present(cp+".on_fail"), OnFailWithdraw)
			if t, ok := lookupCheckType(ch.Type); ok && t.defaults != nil {
				t.defaults(ch, func(key string) bool { return present(cp + "." + key) })
			}
		}
	}
}

func setDefault[T any](v *T, present bool, def T) {
	if !present {
		*v = def
	}
}

// defaultDamping fills each key of the damping block at path that the file
// did not set from base: the defaults for the top-level block, the
// top-level block for a service's.
func defaultDamping(d *Damping, path string, present func(string) bool, base Damping) {
	setDefault(&d.Mode, present(path+".mode"), base.Mode)
	setDefault(&d.Penalty, present(path+".penalty"), base.Penalty)
	setDefault(&d.HalfLife, present(path+".half_life"), base.HalfLife)
	setDefault(&d.Suppress, present(path+".suppress"), base.Suppress)
	setDefault(&d.Reuse, present(path+".reuse"), base.Reuse)
	setDefault(&d.MaxSuppress, present(path+".max_suppress"), base.MaxSuppress)
}
