package checker

import (
	"context"
	"net"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// tcpChecker passes when a TCP connection to address completes.
type tcpChecker struct{ address string }

func newTCP(_ *Builder, c config.Check) (Checker, error) { return tcpChecker{address: c.Address}, nil }

func (t tcpChecker) Check(ctx context.Context) error {
	// No keep-alive: the connection lives for microseconds.
	d := net.Dialer{KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", t.address)
	if err != nil {
		return err
	}
	// Close with a reset, as load balancers' health checks do: no FIN
	// exchange and no TIME_WAIT socket left behind per check (a check every
	// second would otherwise keep about 60 of them per target).
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	return conn.Close()
}
