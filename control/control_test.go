package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
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
