package checker

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// fullBacklog returns a listening address whose accept queue is full, so a
// further connect hangs until its deadline.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	for i := 0; i < 16; i++ {
		c, err := net.DialTimeout("tcp", addr, 50*time.Millisecond)
		if err != nil {
			return addr // the queue is full: this connect hung
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill a listen backlog on this kernel")
	return ""
}

func TestTCPCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	tests := []struct {
		name, address, wantReason, wantText string
	}{
		{"pass", l.Addr().String(), "", ""},
		{"pass, a host name", net.JoinHostPort("localhost", strconv.Itoa(port)), "", ""},
		{"pass, IPv4 written as IPv6", net.JoinHostPort("::ffff:127.0.0.1", strconv.Itoa(port)), "", ""},
		{"refused", closedPort(t, "tcp"), "refused", "dial tcp 127.0.0.1:"},
		{"timeout", fullBacklog(t), "timeout", ""},
	}
	if l6, err := net.Listen("tcp", "[::1]:0"); err == nil {
		defer l6.Close()
		tests = append(tests, struct{ name, address, wantReason, wantText string }{"pass, IPv6", l6.Addr().String(), "", ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertCheck(t, config.Check{Type: "tcp", Address: tt.address}, 200*time.Millisecond, tt.wantReason, tt.wantText)
		})
	}
}

// The service sees each check's connection end with a reset, by an IP
// literal or a host name: no TIME_WAIT is left behind per check.
func TestTCPCheckClosesWithAReset(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	for name, address := range map[string]string{"IP literal": "127.0.0.1:" + port, "host name": "localhost:" + port} {
		t.Run(name, func(t *testing.T) {
			assertCheck(t, config.Check{Type: "tcp", Address: address}, time.Second, "", "")
			conn, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the service read %v, want a reset", err)
			}
		})
	}
}

// A round that is cancelled while the connect waits ends at once, and
// the check leaves no descriptor behind.
func TestTCPCheckCancelled(t *testing.T) {
	addr := fullBacklog(t)
	c, err := New(config.Check{Type: "tcp", Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err = c.Check(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Check() = %v, want it cancelled", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Check took %s after a cancel at 50ms", took)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after the check, %d before", after, before)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(entries)
}
