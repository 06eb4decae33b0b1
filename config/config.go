// Package config turns the YAML configuration file into a typed, validated
// Config. Loading either returns a complete, valid configuration or every
// problem in the file at once, each naming the file, line, key path and
// value; nothing is ever half-loaded. Defaults live in defaults.go; each
// type of check's keys, defaults and validation in one table, checks.go.
package config

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/damping"
)

// Values of Config.OnExit.
const (
	OnExitKeep     = "keep"
	OnExitWithdraw = "withdraw"
)

// Values of Check.OnFail: what a failing check does.
const (
	OnFailWithdraw = "withdraw" // take the service out (the default)
	OnFailDegrade  = "degrade"  // hold it at last resort while it passes its withdraw checks
	OnFailReport   = "report"   // say so in status, metrics and the log; never move an address
)

// Values of Check.Type.
const (
	CheckDNS  = "dns"
	CheckTCP  = "tcp"
	CheckHTTP = "http"
	CheckExec = "exec"
	CheckTLS  = "tls"
)

// Config is the whole configuration file.
type Config struct {
	Interface string `yaml:"interface"`
	// LastResortInterface holds a withdrawn prefix while no other router
	// advertises it at normal metric ("" turns failing open off).
	LastResortInterface string `yaml:"last_resort_interface"`
	OnExit              string `yaml:"on_exit"`
	IP                  string `yaml:"ip"` // the ip program, an absolute path
	LogLevel            string `yaml:"log_level"`
	LogFormat           string `yaml:"log_format"`
	FRR                 FRR    `yaml:"frr"`
	ControlSocket       string `yaml:"control_socket"`
	StateDir            string `yaml:"state_dir"`
	MetricsListen       string `yaml:"metrics_listen"`
	// Damping is every service's flap damping unless it sets its own.
	Damping  Damping   `yaml:"damping"`
	Services []Service `yaml:"services"`

	// Path is the file the configuration was read from.
	Path string `yaml:"-"`
	// Warnings are things that work but that the operator should know
	// (FILE:LINE: key: text): check-config prints them, the daemon logs
	// them at start and on reload.
	Warnings []string `yaml:"-"`
}

// FRR says how to reach the local FRR through vtysh.
type FRR struct {
	Vtysh     string        `yaml:"vtysh"` // an absolute path
	Pathspace string        `yaml:"pathspace"`
	Timeout   time.Duration `yaml:"timeout"`
	Verify    bool          `yaml:"verify"`
	// FleetInterval is how often the link-state database is read for the
	// fleet view when nothing changes here.
	FleetInterval time.Duration `yaml:"fleet_interval"`
	// LastResortMetric: an advertisement at this metric or above counts
	// as last resort, below as normal.
	LastResortMetric int `yaml:"last_resort_metric"`
}

// Service is one set of anycast prefixes guarded by one set of checks.
type Service struct {
	Name         string         `yaml:"name"`
	Prefixes     []netip.Prefix `yaml:"prefixes"`
	Interval     time.Duration  `yaml:"interval"`
	FastInterval time.Duration  `yaml:"fast_interval"`
	Timeout      time.Duration  `yaml:"timeout"`
	Rise         int            `yaml:"rise"`
	Fall         int            `yaml:"fall"`
	// FailOpen holds a failing service's prefixes at last resort while no
	// other router advertises them at normal metric.
	FailOpen bool `yaml:"fail_open"`
	// DrainGrace is how long a drained prefix stays at last resort before
	// it is removed, so that packets on their way still arrive.
	DrainGrace time.Duration `yaml:"drain_grace"`
	// Damping is the top-level block, each key the service sets
	// overriding it.
	Damping Damping `yaml:"damping"`
	Checks  []Check `yaml:"checks"`
	// Units are systemd units the service runs as: one leaving active
	// takes the service down at once (package unitwatch), without waiting
	// for a round.
	Units []string `yaml:"units"`
}

// AllUnits is every unit some service watches, each once, in the order
// the services name them.
func (c *Config) AllUnits() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range c.Services {
		for _, u := range s.Units {
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	return out
}

// Damping is flap damping (package damping): a decaying penalty added at
// each withdrawal that failing checks cause, which holds the service at
// last resort while it is at or above Suppress.
type Damping struct {
	Mode        string        `yaml:"mode"` // damping.ModeSuppress, ModeObserve or ModeOff
	Penalty     int           `yaml:"penalty"`
	HalfLife    time.Duration `yaml:"half_life"`
	Suppress    int           `yaml:"suppress"`
	Reuse       int           `yaml:"reuse"`
	MaxSuppress time.Duration `yaml:"max_suppress"`
}

// Params are the block as package damping takes them.
func (d Damping) Params() damping.Params {
	return damping.Params{Mode: d.Mode, Penalty: float64(d.Penalty), HalfLife: d.HalfLife,
		Suppress: float64(d.Suppress), Reuse: float64(d.Reuse), MaxSuppress: d.MaxSuppress}
}

// Check is one probe. Which keys apply depends on Type: checkTypes
// (checks.go) says which type each key belongs to, and the loader rejects
// it in the others.
type Check struct {
	Type    string        `yaml:"type"`
	Timeout time.Duration `yaml:"timeout"`
	OnFail  string        `yaml:"on_fail"` // OnFailWithdraw, OnFailDegrade or OnFailReport

	Server         string `yaml:"server"`
	Query          string `yaml:"query"`
	QType          string `yaml:"qtype"`
	Transport      string `yaml:"transport"`
	Rcode          string `yaml:"rcode"`
	AnswerContains string `yaml:"answer_contains"`

	Address string `yaml:"address"`

	// ServerName is a tls check's SNI and the name its certificate must
	// carry; CAFile its trust anchors (PEM; empty: the system's roots);
	// MinValidity how long every certificate of the verified chain must
	// still be valid.
	ServerName  string        `yaml:"server_name"`
	CAFile      string        `yaml:"ca_file"`
	MinValidity time.Duration `yaml:"min_validity"`

	URL          string `yaml:"url"`
	Status       int    `yaml:"status"`
	BodyContains string `yaml:"body_contains"`

	Command []string `yaml:"command"`
	// User runs the command as that user (a name or a numeric uid) instead
	// of the daemon's own; Credential is what it resolved to at load time,
	// nil when the check runs as the daemon.
	User       string      `yaml:"user"`
	Credential *Credential `yaml:"-"`
}

// Credential is a user an exec check runs as.
type Credential struct {
	UID, GID uint32
	Groups   []uint32 // supplementary
}

// String names the check the way logs and `probe` show it.
func (c Check) String() string {
	if t, ok := lookupCheckType(c.Type); ok {
		return t.describe(c)
	}
	return c.Type
}

// Service returns the service with that name, if any.
func (c *Config) Service(name string) (Service, bool) {
	for _, s := range c.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// ReloadableTo refuses a reload to next that changes what only a restart
// can change: the sockets the daemon listens on are opened once, and the
// interface's addresses belong to the running loops. A silently ignored
// change would leave the operator believing it took effect.
func (c *Config) ReloadableTo(next *Config) error {
	for _, k := range []struct{ key, old, new string }{
		{"interface", c.Interface, next.Interface},
		{"last_resort_interface", c.LastResortInterface, next.LastResortInterface},
		{"ip", c.IP, next.IP},
		// Drains live there: a new directory would forget them.
		{"state_dir", c.StateDir, next.StateDir},
		{"control_socket", c.ControlSocket, next.ControlSocket},
		{"metrics_listen", c.MetricsListen, next.MetricsListen},
	} {
		if k.old != k.new {
			return fmt.Errorf("%s: %s cannot change on reload (%q → %q): restart the daemon", next.Path, k.key, k.old, k.new)
		}
	}
	return nil
}

// Load reads, decodes, fills defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// LoadUnjudged is Load, except that the programs the configuration names
// are not judged (who may change them): doctor reports those as findings,
// beside the rest of its audit, and the client commands need only the
// control socket's path, where Load would refuse the file.
func LoadUnjudged(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return parse(path, data, auditSystem{})
}

// Parse is Load for bytes already read; name is used in messages.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, data, hostSystem{})
}

func parse(name string, data []byte, sys system) (*Config, error) {
	var c Config
	r := newReport(name)
	if err := decode(r, data, &c); err != nil {
		return nil, err // not YAML at all: nothing more can be said
	}
	applyDefaults(&c, r.present)
	validate(r, &c, sys)
	if err := r.err(); err != nil {
		return nil, err
	}
	c.Path, c.Warnings = name, r.warnings
	return &c, nil
}

func servicePath(i int) string  { return fmt.Sprintf("services[%d]", i) }
func checkPath(i, j int) string { return fmt.Sprintf("services[%d].checks[%d]", i, j) }
