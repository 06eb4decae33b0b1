// Package instance keeps two daemons from managing the same interface: a
// daemon holds an abstract unix socket named for each interface it changes.
// Abstract sockets belong to the network namespace, which is the scope of
// the interfaces' addresses; they need no file and vanish with the process
// that holds them. So a second daemon in the same namespace is refused
// whatever its control socket, state directory or configuration file, and
// a daemon in another namespace (a lab node, a container) is not.
package instance

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// ErrRunning is Lock's error when another daemon holds the interface.
var ErrRunning = errors.New("another anycast-watchdog manages it in this network namespace")

// Lock holds the interfaces for this process until Close, or its end.
func Lock(devs ...string) (*Held, error) {
	h := &Held{}
	for _, dev := range devs {
		l, err := net.Listen("unix", "@anycast-watchdog/interface/"+dev)
		if err != nil {
			h.Close()
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("interface %s: %w", dev, ErrRunning)
			}
			return nil, fmt.Errorf("interface %s: hold the instance lock: %w", dev, err)
		}
		h.listeners = append(h.listeners, l)
	}
	return h, nil
}

// Held is the interfaces a daemon holds.
type Held struct{ listeners []net.Listener }

// Close lets the interfaces go.
func (h *Held) Close() {
	for _, l := range h.listeners {
		l.Close()
	}
}
