package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// Handler carries out requests; Peer says who asked.
type Handler interface {
	Handle(ctx context.Context, req Request, peer Peer) Response
}

// Peer is the client process, from the socket's SO_PEERCRED.
type Peer struct {
	UID, GID, PID int
}

func (p Peer) String() string {
	name := strconv.Itoa(p.UID)
	if u, err := user.LookupId(name); err == nil {
		name += " (" + u.Username + ")"
	}
	return fmt.Sprintf("uid %s pid %d", name, p.PID)
}

// ErrRunning is Listen's answer when another daemon serves the socket.
var ErrRunning = errors.New("another anycast-watchdog is running")

// requestTimeout bounds one connection; a check round ends well before.
const requestTimeout = 60 * time.Second

// Listen opens the control socket at path with mode 0660: only root, the
// daemon's user and its group can connect. A socket left by a daemon that
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
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return l, nil
}

// Serve answers connections on l until ctx ends.
func Serve(ctx context.Context, l net.Listener, h Handler, log logrus.FieldLogger) {
	go func() { <-ctx.Done(); l.Close() }()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil {
				log.WithError(err).Error("control socket: accept failed; no longer serving")
			}
			return
		}
		go serveConn(ctx, conn.(*net.UnixConn), h, log)
	}
}

func serveConn(ctx context.Context, conn *net.UnixConn, h Handler, log logrus.FieldLogger) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(requestTimeout))
	peer, err := peerOf(conn)
	if err != nil {
		log.WithError(err).Warn("control socket: no peer credentials; request refused")
		return
	}
	var req Request
	resp := Response{}
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&req); err != nil {
		resp.Error = fmt.Sprintf("bad request: %v", err)
	} else {
		resp = h.Handle(ctx, req, peer)
	}
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		log.WithError(err).WithField("peer", peer.String()).Debug("control socket: client went away")
	}
}

func peerOf(conn *net.UnixConn) (Peer, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if credErr != nil {
		return Peer{}, credErr
	}
	return Peer{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}, nil
}
