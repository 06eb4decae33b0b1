package notify

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
)

// listen is systemd's side: a unixgram socket in a temp dir, named by
// NOTIFY_SOCKET; it returns the datagrams received.
func listen(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	ch := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return ch
}

func quiet() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(2 * time.Second):
		t.Fatal("systemd received nothing")
		return ""
	}
}

func TestStates(t *testing.T) {
	got := listen(t)
	n := New(quiet())
	n.Ready()
	n.Status("1 service: 1 up")
	n.Reloading()
	n.Stopping()
	for _, want := range []string{"READY=1", "STATUS=1 service: 1 up", "RELOADING=1", "STOPPING=1"} {
		if s := next(t, got); !strings.Contains(s, want) {
			t.Errorf("got %q, want %q", s, want)
		}
	}
}

func TestReloadingCarriesMonotonicTime(t *testing.T) {
	got := listen(t)
	New(quiet()).Reloading()
	if s := next(t, got); !strings.HasPrefix(s, "MONOTONIC_USEC=") || !strings.HasSuffix(s, "\nRELOADING=1") {
		t.Errorf("got %q", s)
	}
}

func TestWithoutNotifySocketNothingHappens(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	n := New(quiet())
	n.Ready()
	done := make(chan struct{})
	go func() { n.Watchdog(context.Background(), func() error { return nil }); close(done) }()
	select {
	case <-done: // returns at once: no watchdog configured
	case <-time.After(time.Second):
		t.Fatal("Watchdog kept running without WATCHDOG_USEC")
	}
}

func TestWatchdogPingsOnlyWhileMakingProgress(t *testing.T) {
	got := listen(t)
	t.Setenv("WATCHDOG_USEC", "40000") // 40 ms: pings every 20 ms
	var wedged atomic.Bool
	seenWedged := make(chan struct{}) // closed when the watchdog first sees the wedge
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go New(quiet()).Watchdog(ctx, func() error {
		if wedged.Load() {
			once.Do(func() { close(seenWedged) })
			return errors.New(`service "dns" has completed no round for 5s`)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if s := next(t, got); s != "WATCHDOG=1" {
			t.Fatalf("got %q", s)
		}
	}
	wedged.Store(true)
	<-seenWedged
	// A ping sent before the watchdog saw the wedge may still be queued:
	// read up to a marker sent after it (a datagram socket keeps order).
	if err := daemonNotify("MARKER=1"); err != nil {
		t.Fatal(err)
	}
	for s := next(t, got); s != "MARKER=1"; s = next(t, got) {
		if s != "WATCHDOG=1" {
			t.Fatalf("got %q", s)
		}
	}
	select {
	case s := <-got:
		t.Fatalf("pinged while wedged: %q", s)
	case <-time.After(150 * time.Millisecond): // several intervals: silence
	}
	wedged.Store(false)
	if s := next(t, got); s != "WATCHDOG=1" {
		t.Errorf("no ping after recovery: %q", s)
	}
}

// daemonNotify sends state to NOTIFY_SOCKET as the service would.
func daemonNotify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}
