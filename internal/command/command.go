// Package command runs external programs (ip, vtysh) with an argument
// vector, never through a shell, and turns their failures into errors that
// carry the program's standard error.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
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

// Run is the Runner that really executes programs. The context bounds the
// whole call; a program still running at its end is killed.
func Run(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// A hung grandchild holding our pipes must not hold us past the deadline.
	cmd.WaitDelay = 100 * time.Millisecond
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, exec.ErrNotFound) {
		err = fmt.Errorf("no answer: %w", cerr)
	}
	return stdout.Bytes(), &Error{Argv: argv, Err: err, Stderr: strings.TrimSpace(stderr.String())}
}
