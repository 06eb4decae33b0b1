package lab

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Query asks server a question of type A from inside ns and returns the
// answer's data.
func (ns *Namespace) Query(server, name string, timeout time.Duration) (answer string, err error) {
	if derr := ns.Do(func() {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		var r *dns.Msg
		if r, _, err = (&dns.Client{Timeout: timeout}).Exchange(m, server); err != nil {
			return
		}
		var answers []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				answers = append(answers, a.A.String())
			}
		}
		if r.Rcode != dns.RcodeSuccess || len(answers) == 0 {
			err = fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(answers))
			return
		}
		answer = strings.Join(answers, ",")
	}); derr != nil {
		return "", derr
	}
	return answer, err
}

// ListenPacket opens a packet socket inside ns; the returned conn may be
// used from any goroutine.
func (ns *Namespace) ListenPacket(network, addr string) (pc net.PacketConn, err error) {
	if derr := ns.Do(func() { pc, err = net.ListenPacket(network, addr) }); derr != nil {
		return nil, derr
	}
	return pc, err
}

// Listen opens a listening socket inside ns; it may be used from any
// goroutine.
func (ns *Namespace) Listen(network, addr string) (l net.Listener, err error) {
	if derr := ns.Do(func() { l, err = net.Listen(network, addr) }); derr != nil {
		return nil, derr
	}
	return l, err
}

// Get fetches http://addr/path from inside ns with a plain HTTP/1.0
// request (the connection is made in ns, and closed after the answer).
func (ns *Namespace) Get(addr, path string) (body string, err error) {
	var conn net.Conn
	if derr := ns.Do(func() { conn, err = net.DialTimeout("tcp", addr, 2*time.Second) }); derr != nil {
		return "", derr
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	head, body, ok := strings.Cut(string(b), "\r\n\r\n")
	if !ok || !strings.Contains(head, " 200 ") {
		return "", fmt.Errorf("GET %s%s: %.80q", addr, path, head)
	}
	return body, nil
}

// Do runs fn on an OS thread moved into ns's network namespace, so that the
// sockets fn opens belong to ns (and stay there when used elsewhere). The
// thread is discarded afterwards.
func (ns *Namespace) Do(fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := ns.enter(); err != nil {
			errc <- err
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

// enter moves the calling (locked) thread into ns's network namespace.
func (ns *Namespace) enter() error {
	f, err := os.Open(filepath.Join("/run/netns", ns.Name))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", ns.Name, err)
	}
	return nil
}
