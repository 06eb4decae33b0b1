// Package tcptest serves the simplest healthy TCP service, for tests and
// benchmarks of TCP checks.
package tcptest

import "net"

// AcceptAndClose accepts connections on l and closes each at once, until l
// is closed. Run it on its own goroutine.
func AcceptAndClose(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
