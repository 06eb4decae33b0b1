package checker

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// startDNS serves a small zone on 127.0.0.1:0 over net ("udp" or "tcp") and
// returns its address once it really serves.
func startDNS(t *testing.T, network string) string {
	t.Helper()
	mux := dns.NewServeMux()
	mux.HandleFunc("health.example.", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
			A:   net.ParseIP("198.51.100.99"),
		})
		w.WriteMsg(m)
	})
	mux.HandleFunc("broken.example.", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		w.WriteMsg(m)
	})
	mux.HandleFunc("example.", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		w.WriteMsg(m)
	})
	mux.HandleFunc("silent.example.", func(dns.ResponseWriter, *dns.Msg) {}) // never answers

	started := make(chan struct{})
	srv := &dns.Server{Addr: "127.0.0.1:0", Net: network, Handler: mux, NotifyStartedFunc: func() { close(started) }}
	go srv.ListenAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	if network == "udp" {
		return srv.PacketConn.LocalAddr().String()
	}
	return srv.Listener.Addr().String()
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestDNSCheck(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		server := startDNS(t, transport)
		tests := []struct {
			name, server, query, rcode, contains string
			wantReason, wantText                 string
		}{
			{name: "pass", query: "health.example.", contains: "198.51.100.99"},
			{name: "pass without answer check", query: "health.example."},
			{name: "expected NXDOMAIN passes", query: "nothing.example.", rcode: "NXDOMAIN"},
			{name: "wrong rcode", query: "broken.example.", wantReason: "rcode", wantText: "rcode SERVFAIL, want NOERROR"},
			{name: "wrong answer", query: "health.example.", contains: "203.0.113.1", wantReason: "answer",
				wantText: `no answer record contains "203.0.113.1"; answers: [A 198.51.100.99]`},
			{name: "timeout", query: "silent.example.", wantReason: "timeout", wantText: "no response before the deadline"},
			{name: "refused", server: closedPort(t, transport), query: "health.example.", wantReason: "refused"},
		}
		for _, tt := range tests {
			t.Run(transport+"/"+tt.name, func(t *testing.T) {
				c := config.Check{Type: "dns", Server: server, Query: tt.query, QType: "A", Transport: transport,
					Rcode: "NOERROR", AnswerContains: tt.contains}
				if tt.server != "" {
					c.Server = tt.server
				}
				if tt.rcode != "" {
					c.Rcode = tt.rcode
				}
				assertCheck(t, c, 300*time.Millisecond, tt.wantReason, tt.wantText)
			})
		}
	}
}

// assertCheck runs c once under a deadline of timeout and compares the
// reason and (when wantText is set) the exact error text; it also asserts
// that the probe ended by its deadline.
func assertCheck(t *testing.T, c config.Check, timeout time.Duration, wantReason, wantText string) error {
	t.Helper()
	ch, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	err = ch.Check(ctx)
	if took := time.Since(start); took > timeout+execWaitDelay+100*time.Millisecond {
		t.Errorf("Check took %s, deadline was %s", took, timeout)
	}
	if got := Reason(err); got != wantReason {
		t.Fatalf("Check() = %v (reason %q), want reason %q", err, got, wantReason)
	}
	if wantText != "" && (err == nil || !strings.Contains(err.Error(), wantText)) {
		t.Errorf("Check() = %v, want it to contain %q", err, wantText)
	}
	return err
}
