// Package control is the daemon's operator surface on a unix socket: one
// JSON request per connection, one JSON response. The status document is
// stable: fields are only ever added (README.md documents it).
package control

import "time"

// Commands a client may send.
const (
	CmdStatus  = "status"
	CmdDrain   = "drain"
	CmdUndrain = "undrain"
	CmdCheck   = "check"
	CmdReload  = "reload"
)

// Request is what a client sends.
type Request struct {
	Command  string   `json:"command"`
	Services []string `json:"services,omitempty"` // drain/undrain/check; empty with All
	All      bool     `json:"all,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	For      string   `json:"for,omitempty"` // drain: a Go duration; empty: until undrained
}

// Response is what the daemon answers.
type Response struct {
	OK       bool          `json:"ok"`
	Error    string        `json:"error,omitempty"`
	Message  string        `json:"message,omitempty"`
	Status   *Status       `json:"status,omitempty"`
	Checks   []CheckStatus `json:"checks,omitempty"` // check: the round it ran
	Services []string      `json:"services,omitempty"`
}

// Status is the running daemon's state.
type Status struct {
	Version  string          `json:"version"`
	Config   ConfigStatus    `json:"config"`
	FRR      []FRRStatus     `json:"frr"`
	Services []ServiceStatus `json:"services"`
}

// ConfigStatus says which configuration runs and how the last reload went.
type ConfigStatus struct {
	Path       string        `json:"path"`
	LoadedAt   time.Time     `json:"loaded_at"`
	LastReload *ReloadStatus `json:"last_reload,omitempty"`
}

// ReloadStatus is the outcome of the last reload attempt.
type ReloadStatus struct {
	At    time.Time `json:"at"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

// FRRStatus is the read-back's view of one routing daemon.
type FRRStatus struct {
	Daemon string            `json:"daemon"` // ospfd | ospf6d
	OK     bool              `json:"ok"`
	Error  string            `json:"error,omitempty"`
	Errors map[string]uint64 `json:"errors"` // failed read-backs by kind
}

// ServiceStatus is one service.
type ServiceStatus struct {
	Name     string         `json:"name"`
	State    string         `json:"state"` // up | down | rising | falling | drained
	Since    time.Time      `json:"since"`
	Reason   string         `json:"reason"`
	Drain    *DrainStatus   `json:"drain,omitempty"`
	Passes   int            `json:"passes"` // consecutive passing rounds
	Fails    int            `json:"fails"`  // consecutive failing rounds
	Rise     int            `json:"rise"`
	Fall     int            `json:"fall"`
	Prefixes []PrefixStatus `json:"prefixes"`
	Checks   []CheckStatus  `json:"checks"`
}

// DrainStatus is an operator's drain.
type DrainStatus struct {
	Reason string     `json:"reason"`
	By     string     `json:"by"`
	Since  time.Time  `json:"since"`
	Until  *time.Time `json:"until,omitempty"`
}

// PrefixStatus is one anycast prefix.
type PrefixStatus struct {
	Prefix           string `json:"prefix"`
	Wanted           bool   `json:"wanted"`     // should be on the interface
	Present          bool   `json:"present"`    // is on the interface
	Advertised       string `json:"advertised"` // yes | no | unknown (FRR read-back)
	AdvertisedReason string `json:"advertised_reason,omitempty"`
	Mismatches       int    `json:"mismatches"`
	Error            string `json:"error,omitempty"` // last failure to change it
}

// CheckStatus is one check's last result.
type CheckStatus struct {
	Check          string  `json:"check"`
	OK             bool    `json:"ok"`
	Reason         string  `json:"reason,omitempty"` // timeout, refused, rcode, …
	Error          string  `json:"error,omitempty"`
	LatencySeconds float64 `json:"latency_seconds"`
	Consecutive    int     `json:"consecutive"` // rounds in a row with this result
}
