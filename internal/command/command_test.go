package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/internal/helperproc"
)

func TestHelperProcess(t *testing.T) {
	switch os.Getenv("COMMAND_HELPER") {
	case "":
		return
	case "ok":
		fmt.Print(`[{"ifname":"lo"}]`)
	case "fail":
		fmt.Fprintln(os.Stderr, "ospfd is not running")
		os.Exit(1)
	case "hang":
		time.Sleep(time.Hour)
	case "ok-leaving-holder":
		// A process in a new session keeps stdout open after we exit 0.
		holder := helperproc.Command()
		holder.Env = append(os.Environ(), "COMMAND_HELPER=hold")
		holder.Stdout = os.Stdout
		holder.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if holder.Start() != nil {
			os.Exit(3)
		}
		os.WriteFile(os.Getenv("COMMAND_PIDFILE"), []byte(strconv.Itoa(holder.Process.Pid)), 0o644)
		fmt.Print(`[{"ifname":"lo"}]`)
	case "hold":
		time.Sleep(time.Minute)
	case "env":
		fmt.Print(os.Getenv("NOTIFY_SOCKET") + "|" + os.Getenv("WATCHDOG_USEC") + "|" + os.Getenv("KEEP_ME"))
	}
	os.Exit(0)
}

func helper(t *testing.T, mode string) []string {
	t.Setenv("COMMAND_HELPER", mode)
	return helperproc.Argv()
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	t.Run("stdout on success", func(t *testing.T) {
		out, err := Run(ctx, helper(t, "ok")...)
		if err != nil || string(out) != `[{"ifname":"lo"}]` {
			t.Errorf("Run = %q, %v", out, err)
		}
	})
	t.Run("exit code and stderr", func(t *testing.T) {
		_, err := Run(ctx, helper(t, "fail")...)
		var ce *Error
		var exit *exec.ExitError
		if !errors.As(err, &ce) || ce.Stderr != "ospfd is not running" || !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("Run error = %#v", err)
		}
	})
	t.Run("children do not get systemd's notify socket", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
		t.Setenv("WATCHDOG_USEC", "10000000")
		t.Setenv("KEEP_ME", "yes")
		out, err := Run(ctx, helper(t, "env")...)
		if err != nil || string(out) != "||yes" {
			t.Errorf("child saw %q, %v", out, err)
		}
	})
	t.Run("success while another process holds the output", func(t *testing.T) {
		pidfile := filepath.Join(t.TempDir(), "holder.pid")
		t.Setenv("COMMAND_PIDFILE", pidfile)
		start := time.Now()
		out, err := Run(ctx, helper(t, "ok-leaving-holder")...)
		took := time.Since(start)
		if raw, rerr := os.ReadFile(pidfile); rerr == nil {
			if pid, _ := strconv.Atoi(string(raw)); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL) // the holder this test started
			}
		}
		if err != nil || string(out) != `[{"ifname":"lo"}]` {
			t.Errorf("Run = %q, %v; want the output and no error", out, err)
		}
		// The holder keeps the pipe for a minute; far less means Run did
		// not wait for it (slack for a race-instrumented helper's start).
		if took > 20*time.Second {
			t.Errorf("Run waited %s for the holder", took)
		}
	})
	t.Run("missing program", func(t *testing.T) {
		_, err := Run(ctx, "/nonexistent/vtysh", "-c", "show version")
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Run error = %v, want not-exist", err)
		}
	})
	t.Run("hang is killed at the deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Run(ctx, helper(t, "hang")...)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run error = %v, want deadline exceeded", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Run returned after %s", took)
		}
	})
}

// A reader that wakes only after the grace has run out (a daemon starved
// of CPU) still returns what the program wrote, while another process
// holds the pipe open.
func TestPipeKeepsOutputItsReaderWasLateFor(t *testing.T) {
	p, err := newPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder, err := syscall.Dup(int(p.w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(holder)
	if _, err := p.w.WriteString(`[{"ifname":"lo"}]`); err != nil {
		t.Fatal(err)
	}
	p.r.SetReadDeadline(time.Now()) // the reader's first read comes too late
	p.startReading()
	if out := string(p.finish(time.Now().Add(10 * time.Millisecond))); out != `[{"ifname":"lo"}]` {
		t.Errorf("finish = %q, want what was written", out)
	}
}
