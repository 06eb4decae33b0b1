package checker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
)

const (
	// maxExecOutput is how much of each of stdout and stderr is kept for
	// the log; the rest is read and dropped so the child never blocks.
	maxExecOutput = 4 << 10
	// execWaitDelay bounds how long a finished or killed check may hold the
	// round up through a descendant that escaped the process group and
	// still holds its output pipes.
	execWaitDelay = 200 * time.Millisecond
)

// execChecker runs a program (never through a shell); exit status 0 passes.
type execChecker struct {
	argv []string
	as   *config.Credential // nil: as the daemon's own user
}

func newExec(c config.Check) (Checker, error) {
	return execChecker{argv: c.Command, as: c.Credential}, nil
}

func (e execChecker) Check(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, e.argv[0], e.argv[1:]...)
	cmd.Env = command.ChildEnv()
	// Its own process group, so a timeout kills the script's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if e.as != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: e.as.UID, Gid: e.as.GID, Groups: e.as.Groups}
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = execWaitDelay
	var stdout, stderr cappedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("killed its process group: %w%s", ctx.Err(), outputSuffix(&stdout, &stderr))
	case err == nil:
		return nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return mismatch("exit", "%s%s", exit, outputSuffix(&stdout, &stderr))
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// It exited 0, but something kept its output open past
		// execWaitDelay: a process it left behind, or one forked elsewhere
		// in the daemon that had not reached exec yet. The exit status is
		// the verdict; failing here would withdraw a healthy service.
		return nil
	}
	return err
}

// outputSuffix renders what the program printed for a log line.
func outputSuffix(stdout, stderr *cappedBuffer) string {
	var b strings.Builder
	for _, s := range []struct {
		name string
		buf  *cappedBuffer
	}{{"stdout", stdout}, {"stderr", stderr}} {
		if text := s.buf.String(); text != "" {
			fmt.Fprintf(&b, "; %s: %q", s.name, text)
		}
	}
	return b.String()
}

// cappedBuffer keeps the first maxExecOutput bytes written to it and counts
// the rest.
type cappedBuffer struct {
	buf     bytes.Buffer
	dropped int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	keep := min(len(p), maxExecOutput-c.buf.Len())
	c.buf.Write(p[:keep])
	c.dropped += len(p) - keep
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	s := strings.TrimSpace(c.buf.String())
	if c.dropped > 0 {
		s += fmt.Sprintf(" …(%d more bytes dropped)", c.dropped)
	}
	return s
}
