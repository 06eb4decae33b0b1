// Package frr reads the local FRR through vtysh with an argument vector and
// a hard deadline: the link-state databases (which routers of the area
// advertise each prefix, this one included, and at what metric), bgpd's
// table (what this router originates, to how many peers, and which other
// nodes it hears over iBGP), whether each daemon runs, and for doctor each
// daemon's running-config, router ID, and the summary and external LSAs. It
// never changes FRR's configuration. Parsing is done by pure functions
// (parse.go, bgp.go, config.go, doctor.go).
package frr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
)

// Scope is how much of a link-state database a read asks for.
type Scope int

const (
	// Area is every router's LSAs: the fleet view. Its size grows with
	// the area (about 1.6 kB of JSON per router, rendered by ospfd and
	// parsed here).
	Area Scope = iota
	// Self is this router's own LSAs only: enough to confirm what this
	// node advertises, whatever the size of the area.
	Self
)

func (s Scope) String() string {
	if s == Self {
		return "self"
	}
	return "area"
}

// lsdbShows are the show commands whose JSON is the link-state database,
// per family and scope; the IPv6 ones need the instance's router ID first.
func lsdbShows(fam Family, scope Scope) []string {
	switch {
	case fam == IPv4 && scope == Self:
		return []string{"show ip ospf database router self-originate json"}
	case fam == IPv4:
		return []string{"show ip ospf database router json"}
	case scope == Self:
		return []string{"show ipv6 ospf6 json", "show ipv6 ospf6 database intra-prefix self-originated detail json"}
	}
	return []string{"show ipv6 ospf6 json", "show ipv6 ospf6 database intra-prefix detail json"}
}

// Client asks one FRR instance (one pathspace) through vtysh.
type Client struct {
	run       command.Runner
	vtysh     string
	pathspace string
	timeout   time.Duration
	// runDir holds the daemons' vty sockets; used to tell "not running"
	// from "permission denied".
	runDir string
}

// New returns a Client. pathspace "" is the default instance.
func New(run command.Runner, vtysh, pathspace string, timeout time.Duration) *Client {
	runDir := "/var/run/frr"
	if pathspace != "" {
		runDir = filepath.Join(runDir, pathspace)
	}
	return &Client{run: run, vtysh: vtysh, pathspace: pathspace, timeout: timeout, runDir: runDir}
}

// LSDB reads the family's OSPF link-state database (ospfd's or ospf6d's),
// in one vtysh call: with scope Area the fleet, every router advertising
// each prefix; with Self only what this router advertises.
func (c *Client) LSDB(ctx context.Context, fam Family, scope Scope) (Fleet, error) {
	parse := ParseRouterLSDB
	if fam == IPv6 {
		parse = ParseOSPF6LSDB
	}
	return showParsed(ctx, c, fam.IGPDaemon(), lsdbShows(fam, scope), parse)
}

// showParsed runs shows against daemon and parses the output; output that
// does not parse is a BadOutput Error.
func showParsed[T any](ctx context.Context, c *Client, daemon string, shows []string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	out, err := c.show(ctx, daemon, shows)
	if err != nil {
		return zero, err
	}
	v, err := parse(out)
	if err != nil {
		return zero, &Error{Kind: BadOutput, Daemon: daemon, Err: err}
	}
	return v, nil
}

func (c *Client) show(ctx context.Context, daemon string, shows []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	argv := []string{c.vtysh}
	if c.pathspace != "" {
		argv = append(argv, "-N", c.pathspace)
	}
	argv = append(argv, "-d", daemon)
	for _, s := range shows {
		argv = append(argv, "-c", s)
	}
	out, err := c.run(ctx, argv...)
	if err != nil {
		return nil, c.classify(daemon, err)
	}
	return out, nil
}

// Running reports whether daemon runs here: its vty socket exists (a
// socket we may not use counts; reading it then says why).
func (c *Client) Running(daemon string) bool {
	return !errors.Is(c.socketState(daemon), os.ErrNotExist)
}

// Kind sorts vtysh failures by what the operator must do about them.
type Kind string

const (
	NotRunning       Kind = "not-running"       // start the daemon
	VtyshMissing     Kind = "vtysh-missing"     // missing or not executable: install frr or fix frr.vtysh
	PermissionDenied Kind = "permission-denied" // add the user to group frrvty
	Timeout          Kind = "timeout"           // the daemon is hung or overloaded
	BadOutput        Kind = "bad-output"        // not the JSON we know
	NotConfigured    Kind = "not-configured"    // no daemon runs with an instance for the family
	Failed           Kind = "failed"            // anything else vtysh said
)

// Error is a read-back that failed, with what to do about it.
type Error struct {
	Kind   Kind
	Daemon string
	Err    error
}

func (e *Error) Error() string {
	switch e.Kind {
	case NotRunning:
		return fmt.Sprintf("%s is not running", e.Daemon)
	case VtyshMissing:
		return fmt.Sprintf("cannot run vtysh (install frr or fix frr.vtysh): %v", e.Err)
	case PermissionDenied:
		return fmt.Sprintf("permission denied talking to %s: the daemon's user must be in group frrvty", e.Daemon)
	case Timeout:
		return fmt.Sprintf("%s did not answer in time (hung or overloaded)", e.Daemon)
	}
	return fmt.Sprintf("%s: %v", e.Daemon, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// classify turns a vtysh failure into an Error. vtysh's words differ by
// version and by -d, so the daemon's vty socket is consulted too.
func (c *Client) classify(daemon string, err error) error {
	var ce *command.Error
	stderr := ""
	if errors.As(err, &ce) {
		stderr = ce.Stderr
	}
	var exit *exec.ExitError
	kind := Failed
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist) && !errors.As(err, &exit):
		kind = VtyshMissing
	case errors.Is(err, context.DeadlineExceeded):
		kind = Timeout
	case errors.Is(err, os.ErrPermission) && !errors.As(err, &exit):
		kind = VtyshMissing // vtysh itself not executable
	default:
		kind = classifyStderr(stderr, c.socketState(daemon))
	}
	return &Error{Kind: kind, Daemon: daemon, Err: err}
}

// socketState says whether daemon's vty socket exists and whether we may
// connect to it: nil, os.ErrNotExist or os.ErrPermission.
func (c *Client) socketState(daemon string) error {
	path := filepath.Join(c.runDir, daemon+".vty")
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return os.ErrPermission
		}
		return os.ErrNotExist
	}
	if err := syscall.Access(path, 2 /* W_OK */); err != nil {
		return os.ErrPermission
	}
	return nil
}

// classifyStderr decides from vtysh's stderr and the socket's state.
func classifyStderr(stderr string, socket error) Kind {
	switch {
	case strings.Contains(stderr, "is not running"):
		return NotRunning
	case strings.Contains(stderr, "try running me as a privileged user"), errors.Is(socket, os.ErrPermission):
		return PermissionDenied
	case strings.Contains(stderr, "failed to connect to any daemons"), errors.Is(socket, os.ErrNotExist):
		return NotRunning
	}
	return Failed
}
