package checker

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/internal/tcptest"
)

// BenchmarkCheck runs the in-process checks bench/checks runs, one after
// another against servers on 127.0.0.1, and reports their allocations (a
// CPU figure with the runtime's scheduling is bench/checks' to give).
func BenchmarkCheck(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go tcptest.AcceptAndClose(l)
	dnsServer := startDNS(b, "udp")
	for _, c := range []config.Check{
		{Type: "dns", Server: dnsServer, Query: "health.example.", QType: "A", Rcode: "NOERROR", Transport: "udp", AnswerContains: "198.51.100.99"},
		{Type: "tcp", Address: l.Addr().String()},
	} {
		b.Run(c.Type, func(b *testing.B) {
			ch, err := New(c)
			if err != nil {
				b.Fatal(err)
			}
			if closer, ok := ch.(io.Closer); ok {
				defer closer.Close()
			}
			b.ReportAllocs()
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				err := ch.Check(ctx)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
