package checker

import (
	"context"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// tcpChecker passes when a TCP connection to address completes. Every
// check makes a real connect and closes it with a reset, as load
// balancers' health checks do: no FIN exchange and no TIME_WAIT socket
// left behind per check (a check every second would otherwise keep about
// 60 of them per target).
type tcpChecker struct {
	address string
	// literal is address when it is an IP literal without a zone: it is
	// connected by connectAndReset, without the resolver. Invalid: a host
	// name, dialled through package net.
	literal netip.AddrPort
}

func newTCP(_ *Builder, c config.Check) (Checker, error) {
	t := tcpChecker{address: c.Address}
	if ap, err := netip.ParseAddrPort(c.Address); err == nil && ap.Addr().Zone() == "" {
		t.literal = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return t, nil
}

func (t tcpChecker) Check(ctx context.Context) error {
	if t.literal.IsValid() {
		return connectAndReset(ctx, t.literal)
	}
	// No keep-alive: the connection lives for microseconds.
	d := net.Dialer{KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", t.address)
	if err != nil {
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	return conn.Close()
}

// connectAndReset connects to to and closes the connection with a reset.
// It is package net's dial cut to what a check needs: a local service — the
// usual target — completes the handshake inside connect(2) itself, so one
// poll(2) without waiting sees it, and the socket never enters the runtime's
// poller; nor does it set TCP_NODELAY or ask for either address. Five system
// calls instead of ten (docs/performance.md).
// Outcomes:
//   - nil: connected;
//   - a *net.OpError wrapping the connect's errno (ECONNREFUSED, …);
//   - a *net.OpError wrapping ctx's error when ctx ended first;
//   - a *net.OpError wrapping a failing socket call's *os.SyscallError.
func connectAndReset(ctx context.Context, to netip.AddrPort) error {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(to), Err: err}
	}
	if err := ctx.Err(); err != nil {
		return opErr(err)
	}
	var family int
	var sa unix.Sockaddr
	if to.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()}
	} else {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(to.Port()), Addr: to.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return opErr(os.NewSyscallError("socket", err))
	}
	// Set before connecting, so that every way out below closes with a
	// reset, a connection completed after a timeout too.
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1}); err != nil {
		unix.Close(fd)
		return opErr(os.NewSyscallError("setsockopt", err))
	}
	switch err := unix.Connect(fd, sa); err {
	case nil:
		unix.Close(fd)
		return nil
	case unix.EINPROGRESS:
	default:
		unix.Close(fd)
		return opErr(os.NewSyscallError("connect", err))
	}
	if done, err := connectDone(fd); done {
		unix.Close(fd)
		if err != nil {
			return opErr(err)
		}
		return nil
	}
	// Still in progress (a remote target, or a full accept queue): wait in
	// the runtime's poller until it is writable, ctx's deadline, or ctx's
	// cancellation. os.NewFile registers the non-blocking socket and owns it.
	f := os.NewFile(uintptr(fd), "tcp check "+to.String())
	defer f.Close()
	raw, err := f.SyscallConn()
	if err != nil {
		return opErr(err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	var result error
	werr := raw.Write(func(fd uintptr) bool {
		var done bool
		done, result = connectDone(int(fd))
		return done
	})
	switch {
	case ctx.Err() != nil:
		return opErr(ctx.Err())
	case werr != nil:
		return opErr(werr)
	case result != nil:
		return opErr(result)
	}
	return nil
}

// connectDone looks, without waiting, whether the connect on fd has ended,
// and if so how: nil when connected, else the connect's error.
func connectDone(fd int) (bool, error) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(pfd, 0)
	switch {
	case err == unix.EINTR || (err == nil && n == 0):
		return false, nil
	case err != nil:
		return true, os.NewSyscallError("poll", err)
	case pfd[0].Revents&(unix.POLLERR|unix.POLLHUP) == 0:
		return true, nil // writable and no error: connected
	}
	errno, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		return true, os.NewSyscallError("getsockopt", err)
	case errno != 0:
		return true, os.NewSyscallError("connect", unix.Errno(errno))
	}
	return true, os.NewSyscallError("connect", unix.ECONNRESET) // hung up with no error left to read
}
