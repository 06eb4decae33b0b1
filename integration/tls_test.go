//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/internal/tlstest"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// unbound on every node serves DNS over TLS on 853 with a certificate of
// the test's CA; each node's service is checked by a DoT check (withdraw),
// a tls check of the same listener (report, min_validity 14d) and an exec
// check (degrade). Node 1's certificate has a day left: its report check
// fails, nothing moves, status and metrics say why and the shipped
// AnycastTLSCertExpiring rule matches in a real Prometheus. Then the
// degrade check fails on every node: all at last resort, the router in
// ECMP over the three, never without a route. Last, unbound stops on node
// 2 and its DoT check withdraws it.
func TestTLSChecksAgainstUnbound(t *testing.T) {
	a := buildAnycastLab(t, lab.AnycastOptions{Nodes: 3, MinArrival0: true, LastResort: true})
	n1, n2 := a.Nodes[0], a.Nodes[1]
	dir := t.TempDir()
	ca, err := tlstest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := ca.WritePEM(caFile); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	unbound := map[*lab.Node]*lab.Process{}
	degradeOK := map[*lab.Node]string{}
	for _, n := range a.Nodes {
		left := 90 * 24 * time.Hour
		if n == n1 {
			left = 24 * time.Hour
		}
		leaf, err := ca.Leaf("dns.example", now.Add(-time.Hour), now.Add(left))
		if err != nil {
			t.Fatal(err)
		}
		cert, key := filepath.Join(dir, n.NS.Name+"-cert.pem"), filepath.Join(dir, n.NS.Name+"-key.pem")
		if err := tlstest.WriteLeaf(leaf, cert, key); err != nil {
			t.Fatal(err)
		}
		if unbound[n], err = n.NS.DoTServer("unbound", "198.51.100.99", cert, key); err != nil {
			t.Fatal(err)
		}
		degradeOK[n] = filepath.Join(dir, n.NS.Name+"-degrade-ok")
		if err := os.WriteFile(degradeOK[n], nil, 0o644); err != nil {
			t.Fatal(err)
		}
		c := n.WatchdogConfig()
		c.FleetInterval, c.Metrics = labFleetInterval, metricsAddr
		c.MoreChecks = []string{
			fmt.Sprintf("{type: dns, transport: tls, server: 127.0.0.1:853, server_name: dns.example, ca_file: %s, query: health.example., answer_contains: 198.51.100.99}", caFile),
			fmt.Sprintf("{type: tls, address: 127.0.0.1:853, server_name: dns.example, ca_file: %s, min_validity: 14d, on_fail: report}", caFile),
			fmt.Sprintf("{type: exec, command: [/usr/bin/test, -e, %s], on_fail: degrade}", degradeOK[n])}
		startWith(t, n, c)
	}
	// Every DoT check passes against the real unbound: every node advertised.
	waitRoutes(t, a, devs(a.Nodes...), 15*time.Second, "every node advertised")

	// Node 1's certificate: the report check fails, nothing moves.
	st := waitStatus(t, n1, 2*time.Second, "node 1's tls check failing on expiry", func(st status.Document) bool {
		cs := serviceNamed(st, "dns").Checks
		return len(cs) == 4 && !cs[2].OK && cs[2].Reason == "expiry"
	})
	tlsCheck := serviceNamed(st, "dns").Checks[2]
	t.Logf("node 1, %s: %s", tlsCheck.Check, tlsCheck.Error)
	if !strings.Contains(tlsCheck.Error, "(min_validity 14d): CN=dns.example") || tlsCheck.OnFail != "report" {
		t.Errorf("node 1's tls check: %+v", tlsCheck)
	}
	if d := tlsCheck.CertExpiry.Sub(now.Add(24 * time.Hour)); d < -time.Second || d > time.Second {
		t.Errorf("status: cert_expiry %s, the certificate's NotAfter is %s", tlsCheck.CertExpiry, now.Add(24*time.Hour))
	}
	if got := metric(t, n1, "anycast_watchdog_tls_cert_expiry_timestamp_seconds", `service="dns"`); int64(got) != tlsCheck.CertExpiry.Unix() {
		t.Errorf("anycast_watchdog_tls_cert_expiry_timestamp_seconds = %v, status says %s", got, tlsCheck.CertExpiry)
	}
	if got := metric(t, n1, "anycast_watchdog_check_up", `on_fail="report"`); got != 0 {
		t.Errorf("anycast_watchdog_check_up of the failing report check = %v", got)
	}
	for _, n := range a.Nodes {
		if s := serviceNamed(fullStatusOf(t, n), "dns"); s.State != status.Up || where(n) != "lo" {
			t.Errorf("%s: %s with its prefixes on %q; want up on lo (a report check moves nothing)", n.NS.Name, s.State, where(n))
		}
	}
	if ok, stale := a.RoutesVia(lab.AnycastV4, devs(a.Nodes...)); !ok {
		t.Errorf("the router left a node over a report check: %v", stale)
	}

	// The shipped rule against node 1's metrics in a real Prometheus. Its
	// for: 10m outlasts the test: pending says the expression matched.
	rules, err := filepath.Abs("../packaging/prometheus/anycast-watchdog.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	prom, err := n1.NS.StartPrometheus("127.0.0.1:9090", []string{metricsAddr}, rules)
	if err != nil {
		t.Fatal(err)
	}
	var expiring []lab.Alert
	if _, ok := lab.WaitFor(30*time.Second, func() bool {
		alerts, err := prom.Alerts()
		expiring = nil
		for _, al := range alerts {
			if err == nil && al.Name() == "AnycastTLSCertExpiring" {
				expiring = append(expiring, al)
			}
		}
		return len(expiring) > 0
	}); !ok {
		t.Fatalf("AnycastTLSCertExpiring neither pending nor firing within 30 s; prometheus log:\n%s", prom.Proc.Log())
	}
	if al := expiring[0]; len(expiring) != 1 || al.Labels["check"] != tlsCheck.Check || al.Labels["service"] != "dns" {
		t.Errorf("AnycastTLSCertExpiring: %v, want one for %q", expiring, tlsCheck.Check)
	}
	t.Logf("Prometheus: %s, value %s s (a day)", expiring[0], expiring[0].Value)

	// The degrade check fails everywhere: all at last resort, ECMP over
	// the three, no sample without a route; then back.
	watch := watchRoutes(t, a)
	for _, n := range a.Nodes {
		os.Remove(degradeOK[n])
	}
	for _, n := range a.Nodes {
		waitStatus(t, n, withdrawBound+time.Second, n.NS.Name+" degraded", func(st status.Document) bool { return serviceNamed(st, "dns").State == status.Degraded })
		waitWhere(t, a, n, lab.LastResortDev, time.Second, n.NS.Name+" degraded")
	}
	waitRoutes(t, a, devs(a.Nodes...), 5*time.Second, "ECMP over the three nodes at last resort")
	t.Logf("degraded everywhere: every node at last resort, the router in ECMP over %v", devs(a.Nodes...))
	for _, n := range a.Nodes {
		os.WriteFile(degradeOK[n], nil, 0o644)
	}
	for _, n := range a.Nodes {
		waitWhere(t, a, n, "lo", labInterval+labRise*labFast+time.Second, n.NS.Name+" back at normal metric")
	}
	waitRoutes(t, a, devs(a.Nodes...), 5*time.Second, "every node back")
	samples, gaps := watch.end(t)
	if len(gaps) > 0 {
		t.Fatalf("the router lacked a route %d times in %d samples:\n%s", len(gaps), samples, strings.Join(gaps, "\n"))
	}
	t.Logf("%d samples of the router's routes 10 ms apart, none without a route", samples)

	// unbound stops on node 2: its DoT check withdraws it.
	unbound[n2].Stop(2 * time.Second)
	took := waitRoutes(t, a, devs(a.Nodes[0], a.Nodes[2]), withdrawBound, "the router leaves node 2, its DoT server stopped")
	s := serviceNamed(waitStatus(t, n2, time.Second, "node 2 taken out by its DoT check", func(st status.Document) bool {
		s := serviceNamed(st, "dns")
		return (s.State == status.Down || s.State == status.LastResort) && strings.Contains(s.Reason, "dns 127.0.0.1:853 health.example./A tls: ")
	}), "dns")
	t.Logf("DoT server stopped on node 2: the router left it in %s; status: %s: %s", took.Round(time.Millisecond), s.State, s.Reason)
}
