package checker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
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
// running anything. Its outcomes:
//   - nil: it exited 0 before the deadline (even if something it left
//     behind outside its process group still holds its output);
//   - reason exit: it exited non-zero or was killed by a signal, with what
//     it printed;
//   - reason timeout: the deadline came first and its process group was
//     killed;
//   - reason starved: a Builder's bound on checks in flight kept it from
//     starting before the deadline;
//   - reason untrusted: not run, see above;
//   - reason error: it could not be started (fork/exec failed).
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
	var output cappedBuffer
	status, err := e.run(ctx, &output)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("killed its process group: %w%s", ctx.Err(), output.suffix())
	case err != nil:
		return err
	case status.Exited() && status.ExitStatus() == 0:
		return nil
	}
	return mismatch("exit", "%s%s", exitDescription(status), output.suffix())
}

// run starts the program in its own process group (so that a timeout
// kills whatever it started too), with /dev/null as its standard input and
// one pipe as both its standard output and error, reads that pipe into
// output to its end and reaps the program. The deadline kills the group. A
// program that has exited while its output is still open (a process it
// left outside its group holds it) is reaped within execWaitDelay of its
// exit: the exit status is the verdict (the pipe may also be held for a
// moment by a program another part of the daemon forked meanwhile, until
// that one execs).
//
// It is os/exec's Start and Wait cut to what a check needs, for their
// cost at hundreds of checks a second (docs/performance.md, "Exec
// checks"): one goroutine besides the caller's instead of three (two
// output copiers and a context watcher), one pipe instead of two, and the
// environment made once rather than copied and deduplicated at each run.
// That goroutine waits for the exit in a blocking wait4 while the caller
// reads the output in the runtime's poller; measured against the
// alternatives at 500 checks a second, both the exit awaited through a
// pidfd in the poller and the caller alone (reading with a deadline, then
// waiting) made more context switches and cost more CPU.
func (e execChecker) run(ctx context.Context, output *cappedBuffer) (syscall.WaitStatus, error) {
	stdin := e.stdin
	if stdin == nil {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return 0, fmt.Errorf("open %s for its standard input: %w", os.DevNull, err)
		}
		defer f.Close()
		stdin = f
	}
	env := e.env
	if env == nil {
		env = command.ChildEnv()
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("a pipe for its output: %w", err)
	}
	defer r.Close()
	sys := &syscall.SysProcAttr{Setpgid: true}
	if e.as != nil {
		sys.Credential = &syscall.Credential{Uid: e.as.UID, Gid: e.as.GID, Groups: e.as.Groups}
	}
	// The child runs at the daemon's own CPU priority: niced, it misses its
	// deadline on a busy host and a healthy service is withdrawn exactly
	// when its host is loaded (docs/performance.md, "Exec checks"); the
	// bound on checks in flight alone keeps a storm of exec checks from
	// starving the in-process ones.
	pid, err := syscall.ForkExec(e.argv[0], e.argv, &syscall.ProcAttr{Env: env, Files: []uintptr{stdin.Fd(), w.Fd(), w.Fd()}, Sys: sys})
	w.Close()
	if err != nil {
		return 0, &os.PathError{Op: "fork/exec", Path: e.argv[0], Err: err}
	}
	kill := context.AfterFunc(ctx, func() { syscall.Kill(-pid, syscall.SIGKILL) })
	defer kill()
	type exit struct {
		status syscall.WaitStatus
		err    error
	}
	exited := make(chan exit, 1)
	go func() {
		var status syscall.WaitStatus
		_, err := syscall.Wait4(pid, &status, 0, nil)
		for err == syscall.EINTR {
			_, err = syscall.Wait4(pid, &status, 0, nil)
		}
		r.SetReadDeadline(time.Now().Add(execWaitDelay))
		exited <- exit{status, err}
	}()
	output.ReadFrom(r) // to its end, or execWaitDelay after the exit
	x := <-exited
	if x.err != nil {
		return 0, fmt.Errorf("wait for process %d: %w", pid, x.err)
	}
	return x.status, nil
}

// exitDescription says how a program ended, as os/exec's ExitError does.
func exitDescription(status syscall.WaitStatus) string {
	var s string
	switch {
	case status.Exited():
		s = "exit status " + strconv.Itoa(status.ExitStatus())
	case status.Signaled():
		s = "signal: " + status.Signal().String()
	default:
		s = fmt.Sprintf("wait status %#x", uint32(status))
	}
	if status.CoreDump() {
		s += " (core dumped)"
	}
	return s
}

// suffix renders what the program printed for a log line.
func (c *cappedBuffer) suffix() string {
	if text := c.String(); text != "" {
		return fmt.Sprintf("; output: %q", text)
	}
	return ""
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

// ReadFrom reads r to its end through Write. A check that prints little
// reads through 512 bytes; one that fills them, through 32 KiB: reading
// every run through 32 KiB (io.Copy's buffer, as os/exec did) was 83 % of
// the daemon's allocations at 500 exec services and the most of its
// garbage collection (docs/performance.md, "Exec checks").
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
