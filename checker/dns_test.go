package checker

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// startDNS serves a small zone on 127.0.0.1:0 over net ("udp" or "tcp") and
// returns its address once it really serves.
func startDNS(t testing.TB, network string) string {
	t.Helper()
	mux := dns.NewServeMux()
	mux.HandleFunc("health.example.", answerHealth)
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
	return serveDNS(t, network, mux)
}

// answerHealth answers a query with an A record of 198.51.100.99, what the
// tests' dns checks expect.
func answerHealth(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Answer = append(m.Answer, &dns.A{
		Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
		A:   net.ParseIP("198.51.100.99"),
	})
	w.WriteMsg(m)
}

// serveDNS serves h on 127.0.0.1:0 over network until the test ends and
// returns its address once it really serves.
func serveDNS(t testing.TB, network string, h dns.Handler) string {
	t.Helper()
	started := make(chan struct{})
	srv := &dns.Server{Addr: "127.0.0.1:0", Net: network, Handler: h, NotifyStartedFunc: func() { close(started) }}
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

// Over UDP a check keeps its socket for the next round when it got a
// response, asking with a fresh ID each time; a round that ends otherwise
// closes it, and Close releases the one kept.
func TestDNSReusesItsSocketAcrossRounds(t *testing.T) {
	var mu sync.Mutex
	var ports []int
	var ids []uint16
	silent := false
	addr := serveDNS(t, "udp", dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		ports, ids = append(ports, w.RemoteAddr().(*net.UDPAddr).Port), append(ids, r.Id)
		quiet := silent
		mu.Unlock()
		if quiet {
			return
		}
		m := new(dns.Msg)
		m.SetReply(r)
		w.WriteMsg(m)
	}))
	c, err := New(config.Check{Type: "dns", Server: addr, Query: "health.example.", QType: "A", Rcode: "NOERROR", Transport: "udp"})
	if err != nil {
		t.Fatal(err)
	}
	check := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		return c.Check(ctx)
	}
	for i := 0; i < 3; i++ {
		if err := check(); err != nil {
			t.Fatal(err)
		}
	}
	// A round without a response takes the kept socket and closes it: the
	// next round dials again.
	mu.Lock()
	silent = true
	mu.Unlock()
	if err := check(); err == nil {
		t.Fatal("a round without a response passed")
	}
	mu.Lock()
	silent = false
	mu.Unlock()
	if err := check(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ports) != 5 || ports[0] != ports[1] || ports[1] != ports[2] || ports[2] != ports[3] || ports[4] == ports[0] {
		t.Errorf("source ports %v: want the first four alike (the fourth got no response), then a new one", ports)
	}
	seen := map[uint16]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	if len(seen) != len(ids) {
		t.Errorf("query IDs %v: want a fresh one per round", ids)
	}
	kept := c.(dnsChecker).idle
	if len(kept) != 1 {
		t.Fatalf("%d sockets kept, want 1", len(kept))
	}
	s := <-kept
	kept <- s
	if err := c.(io.Closer).Close(); err != nil || len(kept) != 0 {
		t.Errorf("Close: %v, %d kept", err, len(kept))
	}
	if _, err := s.conn.Write([]byte{0}); err == nil {
		t.Error("the kept socket still works after Close")
	}
}

// A response whose ID is not the question's answers something else (an
// earlier round's question on a kept socket, or a forgery): over UDP it is
// skipped and the right one judged; over TCP it ends the check.
func TestDNSSkipsResponsesWithAnotherID(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			server := serveDNS(t, transport, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
				decoy := new(dns.Msg)
				decoy.SetRcode(r, dns.RcodeServerFailure)
				decoy.Id = r.Id + 1
				w.WriteMsg(decoy)
				m := new(dns.Msg)
				m.SetReply(r)
				w.WriteMsg(m)
			}))
			c, err := New(config.Check{Type: "dns", Server: server, Query: "health.example.", QType: "A", Rcode: "NOERROR", Transport: transport})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err = c.Check(ctx)
			switch {
			case transport == "udp" && err != nil:
				t.Errorf("Check() = %v, want the response with the question's ID to pass", err)
			case transport == "tcp" && !errors.Is(err, dns.ErrId):
				t.Errorf("Check() = %v, want %v", err, dns.ErrId)
			}
		})
	}
}
