// Package command runs external programs (ip, vtysh) with an argument
// vector, never through a shell, and turns their failures into errors that
// carry the program's standard error.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Runner runs argv and returns its standard output. Code that shells out
// takes a Runner so tests can answer with captured output.
type Runner func(ctx context.Context, argv ...string) ([]byte, error)

// Error is a program that could not start, failed or ran out of time.
type Error struct {
	Argv   []string
	Err    error  // *exec.ExitError, exec.ErrNotFound, context.DeadlineExceeded, …
	Stderr string // trimmed
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Argv, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// ChildEnv is the daemon's environment for the programs it starts, less
// systemd's notify and watchdog variables: a child must not be able to
// tell systemd that the daemon is ready or alive.
func ChildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Run is the Runner that really executes programs. The context bounds the
// whole call; a program still running at its end is killed.
func Run(ctx context.Context, argv ...string) ([]byte, error) {
	return run(ctx, argv, nil)
}

func run(ctx context.Context, argv []string, attr *syscall.SysProcAttr) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = attr
	cmd.Env = ChildEnv()
	// A hung grandchild holding our pipes must not hold us past the deadline.
	cmd.WaitDelay = 100 * time.Millisecond
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success() {
		// The program succeeded; only its output pipe stayed open past
		// WaitDelay, held by another process: one it left behind, or -- on
		// a busy daemon -- one of the checks forked at the same moment
		// (reproduced: `ip -j addr show` beside 250 exec checks a second
		// that time out hit this 2 times in 549 calls). Its exit status
		// stands; callers parse output strictly, so a cut-off answer is
		// still an error.
		err = nil
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, exec.ErrNotFound) {
		err = fmt.Errorf("no answer: %w", cerr)
	}
	return stdout.Bytes(), &Error{Argv: argv, Err: err, Stderr: strings.TrimSpace(stderr.String())}
}
