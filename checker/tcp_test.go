package checker

import (
	"net"
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
	tests := []struct {
		name, address, wantReason string
	}{
		{"pass", l.Addr().String(), ""},
		{"refused", closedPort(t, "tcp"), "refused"},
		{"timeout", fullBacklog(t), "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertCheck(t, config.Check{Type: "tcp", Address: tt.address}, 200*time.Millisecond, tt.wantReason, "")
		})
	}
}
