package checker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
	argv  []string
	judge *judgments         // nil: the program's path is walked at each run
	as    *config.Credential // nil: as the daemon's own user
	pool  *execPool          // nil: no bound on checks in flight
	env   []string           // nil: command.ChildEnv() at each run
	stdin *os.File           // nil: os/exec opens /dev/null at each run
}

// execPool bounds the exec checks in flight in one daemon.
type execPool struct{ slots chan struct{} }

// Starved is a check that could not start before its deadline because as
// many exec checks as allowed were already running: the daemon's load, not
// the service, kept it from running.
type Starved struct {
	Running int
	Waited  time.Duration
}

func (s *Starved) Error() string {
	return fmt.Sprintf("did not start: %d exec checks were already running (waited %s)", s.Running, s.Waited.Round(time.Millisecond))
}

// acquire takes a slot, or returns *Starved when ctx ends first.
func (p *execPool) acquire(ctx context.Context) error {
	start := time.Now()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return &Starved{Running: cap(p.slots), Waited: time.Since(start)}
	}
}

func (p *execPool) release() { <-p.slots }

func newExec(b *Builder, c config.Check) (Checker, error) {
	return execChecker{argv: c.Command, judge: b.judge, as: c.Credential, pool: b.exec, env: b.env, stdin: b.devNull}, nil
}

// Check runs the program and passes on exit status 0. The program is
// judged again first, as the loader judged it (within judgeEvery of the
// last judgment, in a Builder): a file or directory that another user
// came to own or may now write fails the check (reason untrusted) without
// running anything.
func (e execChecker) Check(ctx context.Context) error {
	if err := e.judge.untrusted(e.argv[0]); err != nil {
		return fmt.Errorf("not run: %w", err)
	}
	if e.pool != nil {
		if err := e.pool.acquire(ctx); err != nil {
			return err
		}
		defer e.pool.release()
	}
	cmd := exec.CommandContext(ctx, e.argv[0], e.argv[1:]...)
	cmd.Env = e.env
	if cmd.Env == nil {
		cmd.Env = command.ChildEnv()
	}
	if e.stdin != nil {
		cmd.Stdin = e.stdin
	}
	// Its own process group, so a timeout kills the script's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if e.as != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: e.as.UID, Gid: e.as.GID, Groups: e.as.Groups}
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = execWaitDelay
	var stdout, stderr cappedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	// The child runs at the daemon's own CPU priority: niced, it misses its
	// deadline on a busy host and a healthy service is withdrawn exactly
	// when its host is loaded (docs/performance.md, "Exec checks"); the
	// bound on checks in flight alone keeps a storm of exec checks from
	// starving the in-process ones.
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
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

// ReadFrom reads r to its end through Write. os/exec copies each output
// pipe into its writer with io.Copy, which, for a writer without
// ReadFrom, allocates 32 KiB per pipe per run: at 500 exec services that
// was 83 % of the daemon's allocations and the most of its garbage
// collection (docs/performance.md, "Exec checks"). A check that prints
// little reads through 512 bytes; one that fills them, through 32 KiB.
func (c *cappedBuffer) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, 512)
	var total int64
	for {
		n, err := r.Read(buf)
		c.Write(buf[:n])
		total += int64(n)
		switch {
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, err
		case n == len(buf) && len(buf) < 32<<10:
			buf = make([]byte, 32<<10)
		}
	}
}

func (c *cappedBuffer) String() string {
	s := strings.TrimSpace(c.buf.String())
	if c.dropped > 0 {
		s += fmt.Sprintf(" …(%d more bytes dropped)", c.dropped)
	}
	return s
}
