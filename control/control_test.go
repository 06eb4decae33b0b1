package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// echoHandler answers with what it received and who sent it.
type echoHandler struct{}

func (echoHandler) Handle(_ context.Context, req Request, peer Peer) Response {
	if req.Command == "fail" {
		return Response{Error: "no such service: nope"}
	}
	return Response{OK: true, Message: req.Command + " " + strings.Join(req.Services, ",") + " " + req.Reason,
		Services: []string{peer.String()}}
}

// serve listens at path and serves h until the test ends.
func serve(t *testing.T, path string, h Handler) string {
	t.Helper()
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log, _ := logrusNull()
	go Serve(ctx, l, h, AccessForProcess(), log)
	return path
}

func TestSocketProtocol(t *testing.T) {
	path := serve(t, filepath.Join(t.TempDir(), "run", "control.sock"), echoHandler{})

	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o666 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, %v; want a 0666 socket (Access guards writes)", fi.Mode(), err)
	}
	resp, err := Do(path, Request{Command: "drain", Services: []string{"dns"}, Reason: "maintenance"})
	if err != nil || resp.Message != "drain dns maintenance" {
		t.Fatalf("Do = %+v, %v", resp, err)
	}
	if want := "uid " + strconv.Itoa(os.Getuid()); !strings.HasPrefix(resp.Services[0], want) || !strings.Contains(resp.Services[0], "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("peer %q, want %s… pid %d", resp.Services[0], want, os.Getpid())
	}
	if _, err := Do(path, Request{Command: "fail"}); err == nil || err.Error() != "no such service: nope" {
		t.Errorf("error answer: %v", err)
	}
	// A second daemon must not steal the socket of a running one.
	if _, err := Listen(path); !errors.Is(err, ErrRunning) {
		t.Errorf("second Listen: %v", err)
	}
}

// peerHandler answers with the peer's groups.
type peerHandler struct{}

func (peerHandler) Handle(_ context.Context, _ Request, peer Peer) Response {
	return Response{OK: true, Message: fmt.Sprint(peer.Groups)}
}

// The peer's supplementary groups come from the kernel (SO_PEERGROUPS),
// exactly as the client process has them.
func TestPeerGroups(t *testing.T) {
	path := serve(t, filepath.Join(t.TempDir(), "control.sock"), peerHandler{})
	resp, err := Do(path, Request{Command: CmdStatus})
	if err != nil {
		t.Fatal(err)
	}
	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(groups); resp.Message != want {
		t.Errorf("peer groups %s, want this process's %s", resp.Message, want)
	}
}

func TestAccess(t *testing.T) {
	a := Access{UID: 998, GID: 997, Group: "anycast-watchdog"}
	for _, tc := range []struct {
		name string
		peer Peer
		cmd  string
		want bool
	}{
		{"anyone reads status", Peer{UID: 1001, GID: 1001}, CmdStatus, true},
		{"root drains", Peer{UID: 0, GID: 0}, CmdDrain, true},
		{"the daemon's own user reloads", Peer{UID: 998, GID: 998}, CmdReload, true},
		{"primary group member checks", Peer{UID: 1000, GID: 997}, CmdCheck, true},
		{"supplementary group member undrains", Peer{UID: 1000, GID: 1000, Groups: []int{27, 997}}, CmdUndrain, true},
		{"stranger may not drain", Peer{UID: 1001, GID: 1001, Groups: []int{27}}, CmdDrain, false},
		{"stranger may not reload", Peer{UID: 1001, GID: 1001}, CmdReload, false},
		{"stranger may not run checks", Peer{UID: 1001, GID: 1001}, CmdCheck, false},
		{"unknown commands count as writes", Peer{UID: 1001, GID: 1001}, "shutdown", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.Allows(tc.peer, tc.cmd); got != tc.want {
				t.Errorf("Allows(%+v, %s) = %v, want %v", tc.peer, tc.cmd, got, tc.want)
			}
		})
	}
	got := a.refusal(Peer{UID: 4242424, GID: 4242424, PID: 7}, CmdDrain)
	want := "permission denied: drain needs root or membership of group anycast-watchdog (gid 997); you are uid 4242424. status needs no permission"
	if got != want {
		t.Errorf("refusal:\n got %s\nwant %s", got, want)
	}
}

func TestClientErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Do(filepath.Join(dir, "none.sock"), Request{Command: CmdStatus}); err == nil ||
		!strings.Contains(err.Error(), "anycast-watchdog is not running: no control socket at") {
		t.Errorf("missing socket: %v", err)
	}
	// A socket left by a daemon that died.
	stale := filepath.Join(dir, "stale.sock")
	l, err := Listen(stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	l.Close()
	if _, err := Do(stale, Request{Command: CmdStatus}); err == nil || !strings.Contains(err.Error(), "refuses connections") {
		t.Errorf("stale socket: %v", err)
	}
	// The next daemon replaces it.
	l2, err := Listen(stale)
	if err != nil {
		t.Errorf("Listen over a stale socket: %v", err)
	} else {
		l2.Close()
	}
}

func logrusNull() (*logrus.Logger, error) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l, nil
}

// A request larger than MaxRequest is refused without being read whole.
func TestOversizedRequestIsRefused(t *testing.T) {
	path := serve(t, filepath.Join(t.TempDir(), "control.sock"), echoHandler{})
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		// A reason of 1 MB: the server stops reading at 64 KiB.
		conn.Write([]byte(`{"command":"drain","reason":"` + strings.Repeat("x", 1<<20) + `"}` + "\n"))
	}()
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	if resp.Error != "bad request: larger than 65536 bytes" {
		t.Errorf("answer %+v", resp)
	}
}

// At most MaxConnections are served at once: idle clients cannot hold more
// descriptors, the next is told "busy", and serving resumes when they go.
func TestConnectionsAreCapped(t *testing.T) {
	path := serve(t, filepath.Join(t.TempDir(), "control.sock"), echoHandler{})
	var idle []net.Conn
	for i := 0; i < MaxConnections; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// Once the server has accepted them all, the next is told it is busy;
	// until then it waits in the backlog and may get a slot.
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, err := Do(path, Request{Command: CmdStatus})
		if err != nil && strings.Contains(err.Error(), "busy: 32 requests are being served") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request beyond the cap: %v", err)
		}
	}
	for _, c := range idle {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := Do(path, Request{Command: CmdStatus}); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("not serving after the idle clients left: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// flakyListener fails its first accepts as a process out of descriptors
// does.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return f.Listener.Accept()
}

// An accept error is retried, never the end of the socket.
func TestAcceptErrorsAreSurvived(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakyListener{Listener: l}
	flaky.failures.Store(5)
	log, hook := logtest.NewNullLogger()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, flaky, echoHandler{}, AccessForProcess(), log)
	if _, err := Do(path, Request{Command: CmdStatus}); err != nil {
		t.Fatalf("after 5 failed accepts: %v", err)
	}
	if n := len(hook.AllEntries()); n != 1 || !strings.Contains(hook.AllEntries()[0].Message, "too many open files") {
		t.Errorf("%d log lines for 5 failed accepts, want 1 naming the error: %v", n, hook.AllEntries())
	}
}

// A flood of warnings logs a line per period at most; the next line says
// how many were left out.
// In a synctest bubble the period passes on the bubble's clock, exactly.
func TestRateLimitedLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, hook := logtest.NewNullLogger()
		r := newRateLimitedLog(log, 50*time.Millisecond)
		for i := 0; i < 1000; i++ {
			r.warn(logrus.Fields{"by": "uid 1000"}, "control socket: request refused")
		}
		time.Sleep(49 * time.Millisecond)
		r.warn(nil, "control socket: request refused")
		if n := len(hook.AllEntries()); n != 1 {
			t.Errorf("%d lines before the period ended, want 1", n)
		}
		time.Sleep(time.Millisecond)
		r.warn(nil, "control socket: request refused")
		entries := hook.AllEntries()
		if len(entries) != 2 || entries[0].Data["by"] != "uid 1000" || entries[1].Data["suppressed"] != 1000 {
			t.Errorf("%d lines for 1002 warnings: %v", len(entries), entries)
		}
	})
}
