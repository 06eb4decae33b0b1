package checker

import (
	"context"
	"net"
)

// tcpChecker passes when a TCP connection to address completes.
type tcpChecker struct{ address string }

func (t tcpChecker) Check(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.address)
	if err != nil {
		return err
	}
	return conn.Close()
}
