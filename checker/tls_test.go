package checker

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/internal/tlstest"
)

// testCA makes a CA and writes it as PEM to dir/ca.pem.
func testCA(t testing.TB, dir string) (*tlstest.CA, string) {
	t.Helper()
	ca, err := tlstest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := ca.WritePEM(path); err != nil {
		t.Fatal(err)
	}
	return ca, path
}

// tlsServer serves TLS handshakes on 127.0.0.1 with a leaf for name, valid
// from notBefore to notAfter, signed by ca; it returns its address.
func tlsServer(t testing.TB, ca *tlstest.CA, name string, notBefore, notAfter time.Time) string {
	t.Helper()
	ln, err := ca.Listen(name, notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go tlstest.ServeHandshakes(ln)
	return ln.Addr().String()
}

func TestTLSCheck(t *testing.T) {
	dir := t.TempDir()
	ca, caFile := testCA(t, dir)
	now := time.Now()
	valid := tlsServer(t, ca, "dns.example", now.Add(-time.Hour), now.Add(90*24*time.Hour))
	expiring := tlsServer(t, ca, "dns.example", now.Add(-time.Hour), now.Add(9*24*time.Hour+4*time.Hour+30*time.Minute))
	expired := tlsServer(t, ca, "dns.example", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	plain, err := net.Listen("tcp", "127.0.0.1:0") // accepts and says nothing TLS
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			c.Close()
		}
	}()
	closed := closedPort(t, "tcp")

	for _, tt := range []struct {
		name, address, serverName, caFile string
		reason, contains                  string
	}{
		{"valid", valid, "dns.example", caFile, "", ""},
		{"expiring within min_validity", expiring, "dns.example", caFile, "expiry", "expires in 9d 4h (min_validity 14d): CN=dns.example"},
		{"expired", expired, "dns.example", caFile, "chain", "chain: x509: certificate has expired"},
		{"wrong name", valid, "other.example", caFile, "name", "name: x509: certificate is valid for dns.example, not other.example"},
		{"unknown authority (the system's roots)", valid, "dns.example", "", "chain", "chain: x509: certificate signed by unknown authority"},
		{"not TLS", plain.Addr().String(), "dns.example", caFile, "handshake", "handshake: "},
		{"refused", closed, "dns.example", caFile, "refused", "connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(config.Check{Type: config.CheckTLS, Address: tt.address, ServerName: tt.serverName, CAFile: tt.caFile, MinValidity: 14 * 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err = c.Check(ctx)
			if got := Reason(err); got != tt.reason || (err != nil && !strings.Contains(err.Error(), tt.contains)) {
				t.Errorf("Check = %v (reason %q), want reason %q containing %q", err, got, tt.reason, tt.contains)
			}
			if exp := c.(interface{ CertExpiry() time.Time }).CertExpiry(); (tt.reason == "" || tt.reason == "expiry") == exp.IsZero() {
				t.Errorf("CertExpiry %s after %v", exp, err)
			}
		})
	}
}

func TestDays(t *testing.T) {
	for d, want := range map[time.Duration]string{
		14 * 24 * time.Hour: "14d", 9*24*time.Hour + 4*time.Hour + 59*time.Minute: "9d 4h", 3 * time.Hour: "3h", -50 * time.Hour: "expired 2d 2h ago",
	} {
		if got := days(d); got != want {
			t.Errorf("days(%s) = %q, want %q", d, got, want)
		}
	}
}

// DNS over TLS against a real DoT listener: the answer is judged as over
// udp, and a certificate for another name fails as name; sessions resume.
func TestDNSOverTLS(t *testing.T) {
	ca, caFile := testCA(t, t.TempDir())
	ln, err := ca.Listen("dns.example", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	resumed := 0
	var mu sync.Mutex
	srv := &dns.Server{Listener: ln, Net: "tcp-tls", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		if cs, ok := w.(dns.ConnectionStater); ok && cs.ConnectionState() != nil && cs.ConnectionState().DidResume {
			mu.Lock()
			resumed++
			mu.Unlock()
		}
		answerHealth(w, q)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	for _, tt := range []struct {
		name, serverName, reason string
	}{
		{"valid", "dns.example", ""},
		{"wrong name", "other.example", "name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(config.Check{Type: config.CheckDNS, Server: ln.Addr().String(), Query: "health.example.", QType: "A", Rcode: "NOERROR",
				Transport: "tls", ServerName: tt.serverName, CAFile: caFile, AnswerContains: "198.51.100.99"})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err = c.Check(ctx)
				cancel()
				if got := Reason(err); got != tt.reason {
					t.Fatalf("Check = %v (reason %q), want reason %q", err, got, tt.reason)
				}
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if resumed != 2 {
		t.Errorf("%d of 3 rounds resumed the TLS session, want 2", resumed)
	}
}
