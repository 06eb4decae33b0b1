package checker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/internal/helperproc"
)

// TestHelperProcess is not a test: exec checks re-run the test binary as the
// checked program, selected by CHECKER_HELPER.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("CHECKER_HELPER")
	if mode == "" {
		return
	}
	switch mode {
	case "pass":
		fmt.Println("DNS OK")
		os.Exit(0)
	case "fail":
		fmt.Println("DNS CRITICAL - no answer")
		fmt.Fprintln(os.Stderr, "query timed out")
		os.Exit(2)
	case "stdin-env":
		// Standard input is empty (/dev/null) and systemd's variables are
		// not passed on.
		b, err := io.ReadAll(os.Stdin)
		if err != nil || len(b) > 0 || os.Getenv("NOTIFY_SOCKET") != "" {
			fmt.Printf("stdin %q (%v), NOTIFY_SOCKET %q", b, err, os.Getenv("NOTIFY_SOCKET"))
			os.Exit(3)
		}
		os.Exit(0)
	case "flood":
		chunk := strings.Repeat("y", 1<<20)
		for i := 0; i < 100; i++ { // 100 MiB
			os.Stdout.WriteString(chunk)
		}
		os.Exit(1)
	case "hang-with-grandchild":
		// Start a grandchild that ignores SIGTERM and sleeps, record its
		// PID, then hang ourselves.
		gc := helperproc.Command()
		gc.Env = append(os.Environ(), "CHECKER_HELPER=stubborn")
		if err := gc.Start(); err != nil {
			os.Exit(3)
		}
		os.WriteFile(os.Getenv("CHECKER_PIDFILE"), []byte(strconv.Itoa(gc.Process.Pid)), 0o644)
		time.Sleep(time.Hour)
	case "pass-leaving-holder", "fail-leaving-holder":
		// A process in a new session (outside the group) keeps stdout open.
		holder := helperproc.Command()
		holder.Env = append(os.Environ(), "CHECKER_HELPER=hold")
		holder.Stdout = os.Stdout
		holder.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if holder.Start() != nil {
			os.Exit(3)
		}
		if mode == "fail-leaving-holder" {
			os.Exit(2)
		}
		os.Exit(0)
	case "hold":
		time.Sleep(2 * time.Second)
	case "quiet-fail":
		time.Sleep(3 * execWaitDelay)
		fmt.Println("late")
		os.Exit(3)
	case "kill-self":
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(time.Second)
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Hour)
	}
	os.Exit(0)
}

func helperCheck(t *testing.T, mode string, extraEnv ...string) config.Check {
	t.Helper()
	for _, kv := range append([]string{"CHECKER_HELPER=" + mode}, extraEnv...) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return config.Check{Type: "exec", Command: helperproc.Argv()}
}

// A daemon's Builder opens /dev/null and makes the children's environment
// once; every run of every exec check gets them.
func TestExecCheckFromBuilderSharesStdinAndEnv(t *testing.T) {
	c := helperCheck(t, "stdin-env", "NOTIFY_SOCKET=/run/systemd/notify")
	b := NewBuilder(2)
	ch, err := b.New(c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := ch.Check(ctx); err != nil {
			t.Errorf("run %d: %v", i, err)
		}
		cancel()
	}
}

func TestExecCheck(t *testing.T) {
	tests := []struct {
		name, mode, wantReason string
		wantIn                 []string
		heldOpen               bool // for 2 s by a process outside the group
	}{
		{name: "exit 0 passes", mode: "pass"},
		{name: "exit 2 fails with its output", mode: "fail", wantReason: "exit",
			wantIn: []string{"exit status 2", `output: "DNS CRITICAL - no answer\nquery timed out"`}},
		// The exit status is the verdict even when something outside the
		// process group holds the output open (2 s) past the wait delay.
		{name: "exit 0 passes while its output is held open", mode: "pass-leaving-holder", heldOpen: true},
		{name: "exit 2 fails while its output is held open", mode: "fail-leaving-holder", wantReason: "exit",
			wantIn: []string{"exit status 2"}, heldOpen: true},
		{name: "100 MiB of output is capped", mode: "flood", wantReason: "exit",
			wantIn: []string{"exit status 1", "more bytes dropped"}},
		{name: "a signal is the cause", mode: "kill-self", wantReason: "exit",
			wantIn: []string{"signal: terminated"}},
		// Quiet past the wait delay, then its verdict.
		{name: "a quiet program's exit status", mode: "quiet-fail", wantReason: "exit",
			wantIn: []string{"exit status 3", `output: "late"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := helperCheck(t, tt.mode) // before the Builder, which takes the environment
			ch, err := NewBuilder(4).New(c)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			err = ch.Check(ctx)
			// Within the wait delay of the exit, not when the holder lets go.
			if took := time.Since(start); tt.heldOpen && took > 1500*time.Millisecond || took > 5*time.Second {
				t.Errorf("Check took %s", took)
			}
			if got := Reason(err); got != tt.wantReason {
				t.Fatalf("Check() = %v (reason %q), want reason %q", err, got, tt.wantReason)
			}
			for _, s := range tt.wantIn {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("error %v does not contain %q", err, s)
				}
			}
			if err != nil && len(err.Error()) > 3*maxExecOutput {
				t.Errorf("error is %d bytes long; output was not capped", len(err.Error()))
			}
		})
	}
}

func TestExecTimeoutKillsWholeProcessGroup(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "grandchild.pid")
	c := helperCheck(t, "hang-with-grandchild", "CHECKER_PIDFILE="+pidfile)
	assertCheck(t, c, 500*time.Millisecond, "timeout", "killed its process group")

	raw, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("the helper never started its grandchild: %v", err)
	}
	pid, _ := strconv.Atoi(string(raw))
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d survived the check's timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs; a zombie waiting for its reaper is dead.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// A daemon's exec checks run at most its bound at once; one that cannot
// start before its deadline fails as starved, not as a timeout of the
// service.
func TestExecChecksAreBoundedAndStarvedIsItsOwnReason(t *testing.T) {
	b := NewBuilder(1)
	slow, err := b.New(config.Check{Type: config.CheckExec, Command: []string{"/bin/sleep", "1"}})
	if err != nil {
		t.Fatal(err)
	}
	quick, _ := b.New(config.Check{Type: config.CheckExec, Command: []string{"/bin/true"}})
	running := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		running <- slow.Check(ctx)
	}()
	// Once the slow one holds the only slot:
	for deadline := time.Now().Add(5 * time.Second); len(b.exec.slots) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow check never took its slot")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	began := time.Now()
	err = quick.Check(ctx)
	took := time.Since(began)
	var starved *Starved
	// It waited for what was left of its 50 ms once its program was judged
	// (under qemu-user that judgment alone takes milliseconds).
	if !errors.As(err, &starved) || Reason(err) != "starved" || starved.Running != 1 || starved.Waited <= 0 || starved.Waited > took ||
		!strings.HasPrefix(err.Error(), "did not start: 1 exec checks were already running (waited ") {
		t.Errorf("second check: %v (reason %q)", err, Reason(err))
	}
	if err := <-running; err != nil {
		t.Errorf("first check: %v", err)
	}
	// Once the slot is free the next one runs.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := quick.Check(ctx2); err != nil {
		t.Errorf("after the slot freed: %v", err)
	}
}

// Exec checks run at the daemon's own CPU priority: niced, they timed out
// on a host busy at nice 0, withdrawing a healthy service (docs/performance.md,
// "Exec checks").
func TestExecChecksRunAtTheDaemonsPriority(t *testing.T) {
	c, _ := New(config.Check{Type: config.CheckExec, Command: []string{"/bin/sh", "-c",
		`sleep 0.05; n=$(cut -d' ' -f19 /proc/self/stat); test "$n" = 0 || { echo "nice $n"; exit 1; }`}})
	if niced := nicedThreads(); len(niced) > 0 {
		t.Skipf("the test runs niced: %v", niced)
	}
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Check(ctx)
		cancel()
		if err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
}

// nicedThreads lists this process's threads whose nice value is not 0.
func nicedThreads() []string {
	var out []string
	tasks, _ := filepath.Glob("/proc/self/task/*/stat")
	for _, task := range tasks {
		raw, err := os.ReadFile(task)
		if err != nil {
			continue // the thread ended meanwhile
		}
		// Fields after the command name, which is in parentheses.
		fields := strings.Fields(string(raw)[strings.LastIndexByte(string(raw), ')')+2:])
		if fields[16] != "0" {
			out = append(out, task+": nice "+fields[16])
		}
	}
	return out
}

// A program that another user came to be able to change after the load is
// not run: the check fails as untrusted, and passes again once fixed.
func TestExecProgramJudgedAgainAtEachRun(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	prog := filepath.Join(dir, "check.sh")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := New(config.Check{Type: config.CheckExec, Command: []string{prog}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Check(ctx); err != nil {
		t.Fatalf("trusted program: %v", err)
	}
	os.Remove(marker)
	if err := os.Chmod(prog, 0o757); err != nil {
		t.Fatal(err)
	}
	err = c.Check(ctx)
	if Reason(err) != "untrusted" || !strings.HasPrefix(err.Error(), "not run: "+prog+" is writable by everyone") {
		t.Errorf("after chmod o+w: %v (reason %q)", err, Reason(err))
	}
	if _, statErr := os.Stat(marker); statErr == nil {
		t.Error("the untrusted program ran")
	}
	os.Chmod(prog, 0o755)
	if err := c.Check(ctx); err != nil {
		t.Errorf("fixed again: %v", err)
	}
}

// An exec check reads its program's output through cappedBuffer's
// ReadFrom: the output is kept up to maxExecOutput and counted beyond,
// whatever the size of the reads, and a quiet program's run allocates 512
// bytes, not io.Copy's 32 KiB.
func TestCappedBufferReadFrom(t *testing.T) {
	for _, tt := range []struct {
		name    string
		size    int
		dropped int
	}{
		{"nothing", 0, 0},
		{"a line", 40, 0},
		{"exactly the cap", maxExecOutput, 0},
		{"a flood", 100 << 10, 100<<10 - maxExecOutput},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := strings.Repeat("x", tt.size)
			var c cappedBuffer
			n, err := io.Copy(&c, iotest.HalfReader(strings.NewReader(out)))
			if err != nil || n != int64(tt.size) || c.buf.Len() != min(tt.size, maxExecOutput) || c.dropped != tt.dropped {
				t.Errorf("copied %d (%v): kept %d, dropped %d; want %d, kept %d, dropped %d",
					n, err, c.buf.Len(), c.dropped, tt.size, min(tt.size, maxExecOutput), tt.dropped)
			}
		})
	}
	t.Run("a reader's error", func(t *testing.T) {
		var c cappedBuffer
		if _, err := io.Copy(&c, iotest.ErrReader(io.ErrUnexpectedEOF)); err != io.ErrUnexpectedEOF {
			t.Errorf("error %v, want %v", err, io.ErrUnexpectedEOF)
		}
	})
	t.Run("a quiet program's allocations", func(t *testing.T) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 100 {
			var c cappedBuffer
			io.Copy(&c, struct{ io.Reader }{strings.NewReader("")}) // a pipe: no WriteTo of its own
		}
		runtime.ReadMemStats(&after)
		if perCopy := (after.TotalAlloc - before.TotalAlloc) / 100; perCopy > 2<<10 {
			t.Errorf("%d bytes allocated to copy nothing, want at most 2 KiB (not io.Copy's 32 KiB buffer)", perCopy)
		}
	})
}
