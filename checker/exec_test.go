package checker

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
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
	case "flood":
		chunk := strings.Repeat("y", 1<<20)
		for i := 0; i < 100; i++ { // 100 MiB
			os.Stdout.WriteString(chunk)
		}
		os.Exit(1)
	case "hang-with-grandchild":
		// Start a grandchild that ignores SIGTERM and sleeps, record its
		// PID, then hang ourselves.
		gc := exec.Command(os.Args[0], "-test.run=TestHelperProcess")
		gc.Env = append(os.Environ(), "CHECKER_HELPER=stubborn")
		if err := gc.Start(); err != nil {
			os.Exit(3)
		}
		os.WriteFile(os.Getenv("CHECKER_PIDFILE"), []byte(strconv.Itoa(gc.Process.Pid)), 0o644)
		time.Sleep(time.Hour)
	case "pass-leaving-holder", "fail-leaving-holder":
		// A process in a new session (outside the group) keeps stdout open.
		holder := exec.Command(os.Args[0], "-test.run=TestHelperProcess")
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
	return config.Check{Type: "exec", Command: []string{os.Args[0], "-test.run=TestHelperProcess"}}
}

func TestExecCheck(t *testing.T) {
	tests := []struct {
		name, mode, wantReason string
		wantIn                 []string
	}{
		{name: "exit 0 passes", mode: "pass"},
		{name: "exit 2 fails with output", mode: "fail", wantReason: "exit",
			wantIn: []string{"exit status 2", `stdout: "DNS CRITICAL - no answer"`, `stderr: "query timed out"`}},
		// The exit status is the verdict even when something outside the
		// process group holds the output open past the wait delay.
		{name: "exit 0 passes while its output is held open", mode: "pass-leaving-holder"},
		{name: "exit 2 fails while its output is held open", mode: "fail-leaving-holder", wantReason: "exit",
			wantIn: []string{"exit status 2"}},
		{name: "100 MiB of output is capped", mode: "flood", wantReason: "exit",
			wantIn: []string{"exit status 1", "more bytes dropped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := assertCheck(t, helperCheck(t, tt.mode), 5*time.Second, tt.wantReason, "")
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
