// Package checker runs health probes. Every probe has one signature: it gets
// a context whose deadline is its only timeout and returns nil when the
// service is healthy or an error that says why not, so that the caller can
// log the reason once. New builds a probe through the constructor of its
// type (constructors), one per type that package config accepts.
package checker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
	"github.com/anycast-watchdog/anycast-watchdog/trust"
)

// Checker is one configured probe.
type Checker interface {
	Check(ctx context.Context) error
}

// constructor builds one type's probe from its validated configuration,
// with what the daemon's probes share (b).
type constructor func(b *Builder, c config.Check) (Checker, error)

// constructors has one entry per config.CheckTypes(), each in its type's
// file.
func constructors() map[string]constructor {
	return map[string]constructor{
		config.CheckDNS:  newDNS,
		config.CheckTCP:  newTCP,
		config.CheckHTTP: newHTTP,
		config.CheckExec: newExec,
		config.CheckTLS:  newTLS,
	}
}

// New builds the probe a check configuration describes, with no bound on
// exec checks in flight (for probe and tests; the daemon uses a Builder).
// The configuration must already be validated by config.Load.
func New(c config.Check) (Checker, error) { return (&Builder{}).New(c) }

// Builder builds the probes of one daemon: its exec checks share a bound
// on how many run at once, the children's environment (made once), one
// /dev/null as their standard input (opened once, not per run) and the
// verdicts on their programs (judgments).
type Builder struct {
	exec    *execPool
	env     []string
	devNull *os.File   // nil: os/exec opens /dev/null for each run
	judge   *judgments // nil: each run walks its program's path
}

// MaxExecInFlight is the daemon's bound: enough for a few slow scripts per
// core, few enough that a storm of them cannot take the machine.
func MaxExecInFlight() int { return max(8, 4*runtime.NumCPU()) }

// NewBuilder returns a Builder whose exec checks run at most maxExec at
// once; one that cannot start before its deadline fails as *Starved.
func NewBuilder(maxExec int) *Builder {
	b := &Builder{exec: &execPool{slots: make(chan struct{}, maxExec)}, env: command.ChildEnv(), judge: newJudgments()}
	if f, err := os.Open(os.DevNull); err == nil {
		b.devNull = f // kept for the daemon's life, like the Builder
	}
	return b
}

// New builds the probe a check configuration describes.
func (b *Builder) New(c config.Check) (Checker, error) {
	build, ok := constructors()[c.Type]
	if !ok {
		return nil, fmt.Errorf("unknown check type %q", c.Type)
	}
	return build(b, c)
}

// Mismatch is a probe that got an answer, but the wrong one.
type Mismatch struct {
	Reason string // short and stable: "rcode", "answer", "status", "body", "exit"
	Detail string
}

func (m *Mismatch) Error() string { return m.Detail }

func mismatch(reason, format string, args ...any) error {
	return &Mismatch{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Reason sorts a probe error into a short, stable word for logs and metric
// labels: timeout, refused, unreachable, rcode, answer, status, body, exit,
// starved (an exec check that could not start in time), untrusted (an exec
// check's program that another user could change) or error.
func Reason(err error) string {
	var m *Mismatch
	var ne net.Error
	var starved *Starved
	switch {
	case err == nil:
		return ""
	case errors.As(err, &starved):
		return "starved"
	case trust.IsUntrusted(err):
		return "untrusted"
	case errors.As(err, &m):
		return m.Reason
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "unreachable"
	}
	return "error"
}
