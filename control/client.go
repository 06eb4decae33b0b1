package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// Do sends one request to the daemon's control socket and returns its
// answer; errors say in words what is wrong with the socket.
func Do(path string, req Request) (Response, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return Response{}, fmt.Errorf("anycast-watchdog is not running: no control socket at %s", path)
		case errors.Is(err, syscall.ECONNREFUSED):
			return Response{}, fmt.Errorf("anycast-watchdog is not running: %s refuses connections (left by a daemon that stopped)", path)
		case errors.Is(err, os.ErrPermission):
			return Response{}, fmt.Errorf("permission denied on %s: run as root or as a member of the daemon's group", path)
		}
		return Response{}, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(requestTimeout))
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		// A daemon that refuses a connection (busy) answers and closes
		// before reading: the answer is still there to read.
		var resp Response
		if json.NewDecoder(conn).Decode(&resp) == nil && resp.Error != "" {
			return resp, errors.New(resp.Error)
		}
		return Response{}, fmt.Errorf("control socket %s: send: %w", path, err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("control socket %s: no answer: %w", path, err)
	}
	if !resp.OK && resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}
