// Package status is the one model of what the daemon reports about itself:
// the document that `anycast-watchdog status --json` prints, that the status
// table and the Prometheus metrics are rendered from, and the names of a
// service's states. advertise fills it from its live state, package main
// adds the configuration's part, control carries it over the socket. The
// JSON form is an interface: fields are only ever added (docs/operations.md
// documents it; testdata/status.json is its golden file).
package status

import (
	"fmt"
	"strings"
	"time"
)

// State is where a service stands, as operators see it.
type State string

// The states of a service. Up, Falling, Rising and Down are the
// hysteresis's; Degraded is Up or Falling while its degrade checks have
// fallen; Damped is Up or Falling while flap damping holds the service back
// from normal metric (it wins over Degraded); LastResort is Down while a
// prefix is held at last resort; Draining and Drained override them while
// an operator has drained the service.
const (
	Up         State = "up"          // advertised
	Falling    State = "falling"     // advertised, failing, not yet fall failures in a row
	Rising     State = "rising"      // not advertised at normal metric, passing, not yet rise passes in a row
	Degraded   State = "degraded"    // passing, but its degrade checks have fallen: held at last resort, other nodes preferred
	Damped     State = "damped"      // passing, but flapping: held at last resort (absent without one) until its penalty decays
	LastResort State = "last_resort" // down, but a prefix is held at last-resort metric: no other router advertises it at normal metric
	Down       State = "down"        // withdrawn
	Draining   State = "draining"    // drained; prefixes at last resort until drain_grace has passed
	Drained    State = "drained"     // withdrawn by an operator whatever the checks say
)

// States lists every state, in the order a summary names them.
func States() []State {
	return []State{Up, Falling, Rising, Degraded, Damped, LastResort, Down, Draining, Drained}
}

func (s State) String() string { return string(s) }

// Drained reports whether the state is an operator's drain: Draining or
// Drained, whatever the checks say.
func (s State) Drained() bool { return s == Draining || s == Drained }

// Advertised is what the FRR read-back says of one prefix.
type Advertised string

// The read-back's answers.
const (
	AdvertisedYes     Advertised = "yes"
	AdvertisedNo      Advertised = "no"
	AdvertisedUnknown Advertised = "unknown"
)

// AdvertisedValues lists every answer of the read-back.
func AdvertisedValues() []Advertised {
	return []Advertised{AdvertisedYes, AdvertisedNo, AdvertisedUnknown}
}

// Document is the running daemon's state.
type Document struct {
	Version    string            `json:"version"`
	Config     Config            `json:"config"`
	FRR        []FRR             `json:"frr"`
	LastResort *LastResortHealth `json:"last_resort,omitempty"` // absent: failing open is off (last_resort_interface: "")
	Services   []Service         `json:"services"`
	// UnitWatch is the watch of the services' systemd units; absent when
	// no service watches one.
	UnitWatch *UnitWatch `json:"unit_watch,omitempty"`
	// Doctor counts the findings of the last audit of this host's FRR
	// (`anycast-watchdog doctor`), made at start and after each reload;
	// absent until the first is done.
	Doctor *Doctor `json:"doctor,omitempty"`
}

// Doctor counts an audit's findings by severity.
type Doctor struct {
	Errors   int       `json:"errors"`
	Warnings int       `json:"warnings"`
	Infos    int       `json:"infos"`
	At       time.Time `json:"at,omitzero"` // when the daemon made the audit
}

// Summary is the counts in words: "1 error, 2 warnings", or "no findings".
func (d Doctor) Summary() string {
	var parts []string
	for _, c := range []struct {
		n            int
		word, plural string
	}{{d.Errors, "error", "errors"}, {d.Warnings, "warning", "warnings"}, {d.Infos, "info", "infos"}} {
		switch {
		case c.n == 1:
			parts = append(parts, "1 "+c.word)
		case c.n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.plural))
		}
	}
	if len(parts) == 0 {
		return "no findings"
	}
	return strings.Join(parts, ", ")
}

// LastResortHealth is the last-resort interface's health.
type LastResortHealth struct {
	Interface string `json:"interface"`
	OK        bool   `json:"ok"`              // found or created, and up
	Error     string `json:"error,omitempty"` // why not: withdrawals then remove addresses at once
}

// Config says which configuration runs and how the last reload went.
type Config struct {
	Path       string    `json:"path"`
	LoadedAt   time.Time `json:"loaded_at"`
	LastReload *Reload   `json:"last_reload,omitempty"`
}

// Reload is the outcome of a reload attempt.
type Reload struct {
	At    time.Time `json:"at"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

// FRR is the read-back's view of one routing daemon.
type FRR struct {
	Daemon string            `json:"daemon"` // ospfd | ospf6d | bgpd
	OK     bool              `json:"ok"`
	Error  string            `json:"error,omitempty"`
	Errors map[string]uint64 `json:"errors"` // failed read-backs by kind
	// Reads counts the reads asked of the daemon, by what was read: its
	// own LSAs (self), the whole area's database (area), bgpd's paths of
	// the managed prefixes (prefixes).
	Reads map[string]uint64 `json:"reads"`
}

// Service is one service.
type Service struct {
	Name     string    `json:"name"`
	State    State     `json:"state"`
	Since    time.Time `json:"since"` // when State (or the drain) was entered
	Reason   string    `json:"reason"`
	Drain    *Drain    `json:"drain,omitempty"`
	Passes   int       `json:"passes"` // consecutive passing rounds
	Fails    int       `json:"fails"`  // consecutive failing rounds
	Rise     int       `json:"rise"`
	Fall     int       `json:"fall"`
	Prefixes []Prefix  `json:"prefixes"`
	Checks   []Check   `json:"checks"` // of the last round
	// Damping is the service's flap damping; absent when its mode is off.
	Damping *Damping `json:"damping,omitempty"`
	// Units are the systemd units the service watches (units:), in the
	// configuration's order; absent when it watches none.
	Units []Unit `json:"units,omitempty"`
}

// Unit is a systemd unit a service watches, as the daemon last heard of it
// on the system bus.
type Unit struct {
	Name        string `json:"name"`
	LoadState   string `json:"load_state,omitempty"`   // loaded, not-found, masked, …
	ActiveState string `json:"active_state,omitempty"` // active, reloading, inactive, failed, activating, deactivating
	SubState    string `json:"sub_state,omitempty"`    // running, dead, auto-restart, …
	// Result is how a service unit's main process last ended, in words:
	// "signal KILL", "exit status 1", "oom-kill"; empty when it succeeded,
	// for other units, or when not known.
	Result string `json:"result,omitempty"`
	// Watched: the daemon follows the unit on the bus, so the state is
	// current and a stop takes the service down at once. Not watched (the
	// bus lost, not yet read), the state is the last known and the checks
	// alone decide.
	Watched bool   `json:"watched"`
	Error   string `json:"error,omitempty"` // why it is not watched
}

// Active reports whether the unit runs: active, or reloading.
func (u Unit) Active() bool { return u.ActiveState == "active" || u.ActiveState == "reloading" }

// Stopped reports whether a watched unit that systemd knows is not
// running: its service serves nothing.
func (u Unit) Stopped() bool { return u.Watched && u.LoadState == "loaded" && !u.Active() }

// String is the unit and its state in words: "unit unbound.service failed
// (signal SEGV)", "unit unbound.service active (running)".
func (u Unit) String() string { return "unit " + u.Name + " " + u.State() }

// State is the unit's state in words: "failed (signal SEGV)", "active
// (running)", "not-found", "(state not known)".
func (u Unit) State() string {
	switch {
	case u.LoadState != "" && u.LoadState != "loaded":
		return u.LoadState
	case u.ActiveState == "":
		return "(state not known)"
	case u.Result != "" && !u.Active():
		return u.ActiveState + " (" + u.Result + ")"
	}
	return u.ActiveState + " (" + u.SubState + ")"
}

// UnitWatch is whether the daemon follows the watched units on the system
// bus.
type UnitWatch struct {
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"` // why not, while not
	Units int    `json:"units"`           // how many units it watches
}

// Damping is a service's flap-damping penalty (package damping) as of
// the status request.
type Damping struct {
	Mode    string  `json:"mode"` // suppress or observe
	Penalty float64 `json:"penalty"`
	// Damped: the penalty reached suppress and has not decayed below
	// reuse; in observe mode the service would be damped, and is not held.
	Damped      bool      `json:"damped"`
	ReleaseAt   time.Time `json:"release_at,omitzero"` // when a damped service is released if it withdraws no more
	Withdrawals int       `json:"withdrawals"`         // counted since the penalty was last zero
	Suppress    float64   `json:"suppress"`
	Reuse       float64   `json:"reuse"`
}

// Drain takes a service out of rotation whatever its checks say, until it
// is undrained or, when Until is set, until then. The same record is kept
// in state_dir/drains.json, so drains survive restarts.
type Drain struct {
	Reason string    `json:"reason"`
	By     string    `json:"by"` // who asked, from the control socket's peer credentials
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until,omitzero"` // zero: until undrained
}

// Expired reports whether a timed drain has run out at now.
func (d Drain) Expired(now time.Time) bool { return !d.Until.IsZero() && !now.Before(d.Until) }

// Prefix is one anycast prefix.
type Prefix struct {
	Prefix           string     `json:"prefix"`
	Wanted           bool       `json:"wanted"`     // should be on the interface
	Present          bool       `json:"present"`    // is on the interface
	Advertised       Advertised `json:"advertised"` // what the FRR read-back says
	AdvertisedReason string     `json:"advertised_reason,omitempty"`
	Mismatches       int        `json:"mismatches"`      // episodes where FRR disagreed with the interface
	Error            string     `json:"error,omitempty"` // last failure to change it
	// Interface is where the prefix is now: the anycast or the last-resort
	// interface; empty when on neither.
	Interface string `json:"interface,omitempty"`
	// Advertisers are the routers whose link-state advertisements carry
	// the prefix, this node included, as last read; FleetError says why
	// there is no view.
	Advertisers []Advertiser `json:"advertisers,omitempty"`
	FleetError  string       `json:"fleet_error,omitempty"`
	// BGP is bgpd's part of the read-back; absent where bgpd does not
	// run with `router bgp`.
	BGP *BGP `json:"bgp,omitempty"`
}

// BGP is what bgpd says of one prefix.
type BGP struct {
	Originated       bool `json:"originated"`        // a valid path sourced here
	PeersAdvertised  int  `json:"peers_advertised"`  // established peers it is sent to
	PeersEstablished int  `json:"peers_established"` // of the family's BGP sessions
}

// AdvertiserCounts counts the routers advertising the prefix by class;
// known is false when there is no fleet view (FleetError says why).
func (p Prefix) AdvertiserCounts() (normal, lastResort int, known bool) {
	if p.FleetError != "" {
		return 0, 0, false
	}
	for _, a := range p.Advertisers {
		if a.Class == ClassLastResort {
			lastResort++
		} else {
			normal++
		}
	}
	return normal, lastResort, true
}

// Advertiser is one router advertising a prefix.
type Advertiser struct {
	RouterID string `json:"router_id"`
	Metric   int    `json:"metric"`
	Self     bool   `json:"self"`
	Class    string `json:"class"` // normal, or last_resort from frr.last_resort_metric on
}

// The classes of advertisement.
const (
	ClassNormal     = "normal"
	ClassLastResort = "last_resort"
)

// Check is one check's last result.
type Check struct {
	Check string `json:"check"`
	// OnFail is what its failure does: withdraw, degrade or report.
	OnFail         string  `json:"on_fail,omitempty"`
	OK             bool    `json:"ok"`
	Reason         string  `json:"reason,omitempty"` // timeout, refused, rcode, … (checker.Reason)
	Error          string  `json:"error,omitempty"`
	LatencySeconds float64 `json:"latency_seconds"`
	Consecutive    int     `json:"consecutive"` // rounds in a row with this result
	// CertExpiry is when the first certificate of a tls check's verified
	// chain expires; absent for other checks and before a handshake verified.
	CertExpiry time.Time `json:"cert_expiry,omitzero"`
}

// Latency is LatencySeconds as a duration, rounded for people.
func (c Check) Latency() time.Duration {
	return time.Duration(c.LatencySeconds * float64(time.Second)).Round(10 * time.Microsecond)
}

// Summary is a one-line account of all services for systemd's STATUS=, e.g.
// "3 services: 2 up, 1 down (dns: timeout)".
func Summary(services []Service) string {
	if len(services) == 0 {
		return "no services configured; managing no address"
	}
	counts := map[State]int{}
	var why []string
	for _, s := range services {
		counts[s.State]++
		switch {
		case s.State == Up:
		case s.State.Drained(), s.State == Damped:
			why = append(why, s.Name+": "+s.State.String())
		default:
			why = append(why, s.Name+": "+shortReason(s))
		}
	}
	noun := "services"
	if len(services) == 1 {
		noun = "service"
	}
	var parts []string
	for _, st := range States() {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	out := fmt.Sprintf("%d %s: %s", len(services), noun, strings.Join(parts, ", "))
	if len(why) > 0 {
		out += " (" + strings.Join(why, "; ") + ")"
	}
	return out
}

// shortReason names what keeps a service from being up: the reasons of its
// failing checks, or that it is still rising.
func shortReason(s Service) string {
	var reasons []string
	for _, c := range s.Checks {
		if !c.OK && c.OnFail != "report" {
			reasons = append(reasons, c.Reason)
		}
	}
	if len(reasons) == 0 {
		if s.State == Rising {
			return fmt.Sprintf("rising, %d passes", s.Passes)
		}
		return "no verdict yet"
	}
	return strings.Join(reasons, ", ")
}
