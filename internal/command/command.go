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
	// Our own pipes rather than exec's copying goroutines: exec's WaitDelay
	// closes the pipes when it expires and drops whatever the program wrote
	// that its goroutine had not yet read. On a daemon starved of CPU that
	// lost all of `ip -j addr show`'s output after ip had exited 0 (a reload
	// failed on "unexpected end of JSON input").
	stdout, err := newPipe()
	if err != nil {
		return nil, &Error{Argv: argv, Err: err}
	}
	stderr, err := newPipe()
	if err != nil {
		stdout.abandon()
		return nil, &Error{Argv: argv, Err: err}
	}
	cmd.Stdout, cmd.Stderr = stdout.w, stderr.w
	err = cmd.Start()
	stdout.startReading()
	stderr.startReading()
	if err == nil {
		err = cmd.Wait()
	}
	eofBy := time.Now().Add(eofGrace) // one grace for both pipes
	out := stdout.finish(eofBy)
	errText := strings.TrimSpace(string(stderr.finish(eofBy)))
	if err == nil {
		// Even if another process still holds the pipe (one the program
		// left behind, or a check forked elsewhere in the daemon that had
		// not reached exec yet), the exit status stands; callers parse
		// output strictly, so a cut-off answer is still an error.
		return out, nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, exec.ErrNotFound) {
		err = fmt.Errorf("no answer: %w", cerr)
	}
	return out, &Error{Argv: argv, Err: err, Stderr: errText}
}

// eofGrace is how long Run waits, after the program has exited, for the
// end of its output: a hung grandchild holding our pipes must not hold us.
// What the program itself wrote is in the pipe by then and is kept.
const eofGrace = 100 * time.Millisecond

// pipe is one of a child's output streams and what has been read of it.
type pipe struct {
	r, w  *os.File
	buf   bytes.Buffer
	done  chan struct{}
	atEOF bool // set before done closes
}

func newPipe() (*pipe, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	return &pipe{r: r, w: w, done: make(chan struct{})}, nil
}

func (p *pipe) abandon() { p.r.Close(); p.w.Close() }

// startReading closes our copy of the write end (the child has its own)
// and reads until end of file.
func (p *pipe) startReading() {
	p.w.Close()
	go func() {
		defer close(p.done)
		_, err := p.buf.ReadFrom(p.r)
		p.atEOF = err == nil
	}()
}

// finish waits until by for end of file and closes the pipe. If the
// reading stopped short of it, what is still in the pipe is taken without
// waiting: a reader that had not been scheduled before the grace ran out
// must not lose what the program wrote.
func (p *pipe) finish(by time.Time) []byte {
	defer p.r.Close()
	timer := time.NewTimer(time.Until(by))
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.r.SetReadDeadline(time.Now()) // ends the blocked read
		<-p.done
	}
	if p.atEOF {
		return p.buf.Bytes()
	}
	p.r.SetReadDeadline(time.Time{})
	if raw, err := p.r.SyscallConn(); err == nil {
		chunk := make([]byte, 32<<10)
		raw.Read(func(fd uintptr) bool {
			for {
				n, err := syscall.Read(int(fd), chunk)
				if n <= 0 || err != nil {
					return true // empty (EAGAIN) or closed: never wait here
				}
				p.buf.Write(chunk[:n])
			}
		})
	}
	return p.buf.Bytes()
}
