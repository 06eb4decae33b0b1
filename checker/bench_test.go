package checker

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/internal/tcptest"
	"github.com/miekg/dns"
)

// BenchmarkCheck runs the in-process checks bench/checks runs, one after
// another against servers on 127.0.0.1, and reports their allocations (a
// CPU figure with the runtime's scheduling is bench/checks' to give; the
// TLS servers' side is in this process's profile too).
func BenchmarkCheck(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go tcptest.AcceptAndClose(l)
	dnsServer := startDNS(b, "udp")
	ca, caFile := testCA(b, b.TempDir())
	now := time.Now()
	dot, err := ca.Listen("dns.example", now.Add(-time.Hour), now.Add(90*24*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	dotServer := &dns.Server{Listener: dot, Net: "tcp-tls", Handler: dns.HandlerFunc(answerHealth)}
	go dotServer.ActivateAndServe()
	defer dotServer.Shutdown()
	for name, c := range map[string]config.Check{
		"dns": {Type: "dns", Server: dnsServer, Query: "health.example.", QType: "A", Rcode: "NOERROR", Transport: "udp", AnswerContains: "198.51.100.99"},
		"tcp": {Type: "tcp", Address: l.Addr().String()},
		"tls": {Type: "tls", Address: tlsServer(b, ca, "dns.example", now.Add(-time.Hour), now.Add(90*24*time.Hour)), ServerName: "dns.example", CAFile: caFile},
		"dns over tls": {Type: "dns", Server: dot.Addr().String(), Query: "health.example.", QType: "A", Rcode: "NOERROR", Transport: "tls",
			ServerName: "dns.example", CAFile: caFile, AnswerContains: "198.51.100.99"},
	} {
		b.Run(name, func(b *testing.B) {
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
