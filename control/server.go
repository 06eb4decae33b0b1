package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
	"unsafe"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Handler carries out requests; Peer says who asked.
type Handler interface {
	Handle(ctx context.Context, req Request, peer Peer) Response
}

// Peer is the client process, from the socket's SO_PEERCRED and
// SO_PEERGROUPS: its credentials when it connected.
type Peer struct {
	UID, GID, PID int
	Groups        []int // supplementary groups
}

func (p Peer) String() string { return fmt.Sprintf("%s pid %d", p.identity(), p.PID) }

// identity is "uid 1000 (alice)".
func (p Peer) identity() string {
	name := strconv.Itoa(p.UID)
	if u, err := user.LookupId(name); err == nil {
		name += " (" + u.Username + ")"
	}
	return "uid " + name
}

// ErrRunning is Listen's answer when another daemon serves the socket.
var ErrRunning = errors.New("another anycast-watchdog is running")

// Limits on what a client, any local user, can make the daemon hold.
const (
	// requestTimeout bounds one connection; a check round ends well before.
	requestTimeout = 60 * time.Second
	// readTimeout bounds reading the request: it is one short line.
	readTimeout = 5 * time.Second
	// MaxRequest is the largest request read; a drain reason is at most
	// 1024 bytes, so real requests are far smaller.
	MaxRequest = 64 << 10
	// MaxConnections are served at once; more are answered "busy" and
	// closed, so idle connections cannot exhaust descriptors or memory.
	MaxConnections = 32
)

// Listen opens the control socket at path with mode 0666: anyone may connect
// and read status; Serve lets only those that Access allows change anything.
// A socket left by a daemon that
// died is replaced; one that answers belongs to a running daemon and is an
// error.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s answers: %w", path, ErrRunning)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket: remove stale %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return l, nil
}

// Serve answers connections on l until ctx ends; requests that change state
// reach h only from peers that access allows. An accept that fails (out of
// descriptors, say) is retried with backoff, never the end of the socket;
// at most MaxConnections are served at once.
func Serve(ctx context.Context, l net.Listener, h Handler, access Access, log logrus.FieldLogger) {
	go func() { <-ctx.Done(); l.Close() }()
	slots := make(chan struct{}, MaxConnections)
	refusals := newRateLimitedLog(log, time.Second)
	backoff := time.Duration(0)
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			refusals.warn(logrus.Fields{"retry_in": backoff.String()}, "control socket: accept failed; retrying: "+err.Error())
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		select {
		case slots <- struct{}{}:
			go func() {
				defer func() { <-slots }()
				serveConn(ctx, conn.(*net.UnixConn), h, access, log, refusals)
			}()
		default:
			conn.SetDeadline(time.Now().Add(time.Second))
			json.NewEncoder(conn).Encode(Response{Error: fmt.Sprintf("busy: %d requests are being served; try again", MaxConnections)})
			conn.Close()
			refusals.warn(nil, "control socket: busy, connection refused")
		}
	}
}

func serveConn(ctx context.Context, conn *net.UnixConn, h Handler, access Access, log logrus.FieldLogger, refusals *rateLimitedLog) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(requestTimeout))
	conn.SetReadDeadline(time.Now().Add(readTimeout))
	peer, err := peerOf(conn)
	if err != nil {
		refusals.warn(logrus.Fields{"error": err.Error()}, "control socket: no peer credentials; request refused")
		return
	}
	var req Request
	resp := Response{}
	if err := readRequest(conn, &req); err != nil {
		resp.Error = fmt.Sprintf("bad request: %v", err)
	} else if !access.Allows(peer, req.Command) {
		resp.Error = access.refusal(peer, req.Command)
		refusals.warn(logrus.Fields{"command": req.Command, "by": peer.String()}, "control socket: request refused: not root and not in the daemon's group")
	} else {
		resp = h.Handle(ctx, req, peer)
	}
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		log.WithError(err).WithField("peer", peer.String()).Debug("control socket: client went away")
	}
}

// readRequest decodes one request of at most MaxRequest bytes.
func readRequest(r io.Reader, req *Request) error {
	lr := &io.LimitedReader{R: r, N: MaxRequest + 1}
	err := json.NewDecoder(bufio.NewReader(lr)).Decode(req)
	if lr.N <= 0 {
		return fmt.Errorf("larger than %d bytes", MaxRequest)
	}
	return err
}

func peerOf(conn *net.UnixConn) (Peer, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var groups []int
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		if cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); credErr == nil {
			groups, credErr = peerGroups(int(fd))
		}
	}); err != nil {
		return Peer{}, err
	}
	if credErr != nil {
		return Peer{}, credErr
	}
	return Peer{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid), Groups: groups}, nil
}

// peerGroups reads SO_PEERGROUPS (Linux 4.13+): the peer's supplementary
// groups as they were when it connected. Unlike /proc/PID/status it needs no
// access to the peer's process (the unit hides other users' processes).
func peerGroups(fd int) ([]int, error) {
	buf := make([]uint32, 32)
	for {
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno == unix.ERANGE && int(size/4) > len(buf) {
			buf = make([]uint32, size/4) // size now says how much is needed
			continue
		}
		if errno != 0 {
			return nil, fmt.Errorf("SO_PEERGROUPS: %w", errno)
		}
		groups := make([]int, size/4)
		for i := range groups {
			groups[i] = int(buf[i])
		}
		return groups, nil
	}
}
