// Package control is the daemon's control socket: the protocol (one JSON
// request per connection, one JSON response), the server, who may send
// what (Access), and the client. What a request does is the Handler's
// business (package main); the status document it carries is package
// status's.
package control

import "github.com/anycast-watchdog/anycast-watchdog/status"

// Commands a client may send.
const (
	CmdStatus  = "status"
	CmdDrain   = "drain"
	CmdUndrain = "undrain"
	CmdUndamp  = "undamp"
	CmdCheck   = "check"
	CmdReload  = "reload"
)

// Request is what a client sends.
type Request struct {
	Command  string   `json:"command"`
	Services []string `json:"services,omitempty"` // drain/undrain/undamp/check; empty with All
	All      bool     `json:"all,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	For      string   `json:"for,omitempty"`   // drain: a Go duration; empty: until undrained
	Force    bool     `json:"force,omitempty"` // drain: even when no other router advertises a prefix at normal metric
}

// Response is what the daemon answers.
type Response struct {
	OK       bool             `json:"ok"`
	Error    string           `json:"error,omitempty"`
	Message  string           `json:"message,omitempty"`
	Status   *status.Document `json:"status,omitempty"`
	Checks   []status.Check   `json:"checks,omitempty"` // check: the round it ran
	Services []string         `json:"services,omitempty"`
}
