package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/doctor"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr/ifaddrtest"
	"github.com/anycast-watchdog/anycast-watchdog/internal/tcptest"
	"github.com/anycast-watchdog/anycast-watchdog/metrics"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// recordingNotifier keeps what the daemon told systemd.
type recordingNotifier struct {
	mu   sync.Mutex
	sent []string
}

func (n *recordingNotifier) add(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, s)
}
func (n *recordingNotifier) Ready()                                 { n.add("READY=1") }
func (n *recordingNotifier) Reloading()                             { n.add("RELOADING=1") }
func (n *recordingNotifier) Stopping()                              { n.add("STOPPING=1") }
func (n *recordingNotifier) Status(s string)                        { n.add("STATUS=" + s) }
func (n *recordingNotifier) Watchdog(context.Context, func() error) {}

func (n *recordingNotifier) all() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.sent, "\n")
}

// syncBuffer is a log output the test reads while the daemon writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testDaemon is a daemon on a fake interface, serving its control socket
// and metrics in a temporary directory, with real checks against real
// servers on 127.0.0.1.
type testDaemon struct {
	t       *testing.T
	dir     string
	path    string // the configuration file
	socket  string
	metrics string // URL of /metrics
	iface   *ifaddrtest.Interface
	notify  *recordingNotifier
	log     *syncBuffer
	signals chan os.Signal
	exit    chan int
}

// healthyTCP is a listener that accepts and closes for the test's life.
func healthyTCP(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go tcptest.AcceptAndClose(l)
	return l.Addr().String()
}

// closedTCP is an address where nothing listens.
func closedTCP(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func (d *testDaemon) writeConfig(body string) {
	d.t.Helper()
	if err := os.WriteFile(d.path, []byte(body), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// configYAML is a configuration with the test's sockets and state, and
// services.
func (d *testDaemon) configYAML(onExit, services string) string {
	return fmt.Sprintf(`on_exit: %s
control_socket: %s
state_dir: %s
metrics_listen: 127.0.0.1:9795
frr: {verify: false}
services:
%s`, onExit, d.socket, filepath.Join(d.dir, "state"), services)
}

func startDaemon(t *testing.T, onExit, services string, present ...netip.Prefix) *testDaemon {
	t.Helper()
	return startDaemonWith(t, nil, onExit, services, present...)
}

// startDaemonWith is startDaemon with doctor's audit faked by audit.
func startDaemonWith(t *testing.T, audit func(context.Context, *config.Config) doctor.Report, onExit, services string, present ...netip.Prefix) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	d := &testDaemon{t: t, dir: dir, path: filepath.Join(dir, "config.yaml"), socket: filepath.Join(dir, "control.sock"),
		iface: ifaddrtest.New(present...), notify: &recordingNotifier{}, log: &syncBuffer{},
		signals: make(chan os.Signal, 4), exit: make(chan int, 1)}
	d.writeConfig(d.configYAML(onExit, services))
	cfg, err := config.Load(d.path)
	if err != nil {
		t.Fatal(err)
	}
	log := newLogger(cfg, d.log)
	ctl, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.metrics = "http://" + ml.Addr().String() + "/metrics"
	dm := newDaemon(d.path, cfg, log, daemonDeps{addrs: d.iface, notify: d.notify, audit: audit})
	go func() { d.exit <- dm.run(context.Background(), cfg, listeners{control: ctl, metrics: ml}, d.signals) }()
	t.Cleanup(func() { d.stop(syscall.SIGTERM) })
	d.waitFor("ready", func() bool { return strings.Contains(d.notify.all(), "READY=1") })
	return d
}

// stop signals the daemon and waits for its exit status; once only.
func (d *testDaemon) stop(sig os.Signal) int {
	if d.signals == nil {
		return -1
	}
	d.signals <- sig
	d.signals = nil
	select {
	case code := <-d.exit:
		return code
	case <-time.After(10 * time.Second):
		d.t.Fatalf("the daemon did not stop; log:\n%s", d.log)
		return -1
	}
}

func (d *testDaemon) waitFor(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("never %s; log:\n%s", what, d.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cli runs the binary's own command line against the daemon.
func (d *testDaemon) cli(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = realMain(append(args, "--socket", d.socket), &out, &errOut)
	return code, out.String(), errOut.String()
}

func (d *testDaemon) status() status.Document {
	d.t.Helper()
	code, out, errOut := d.cli("status", "--json")
	if code != 0 {
		d.t.Fatalf("status --json: exit %d: %s", code, errOut)
	}
	var st status.Document
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		d.t.Fatalf("status --json: %v:\n%s", err, out)
	}
	return st
}

func (d *testDaemon) state(name string) status.State {
	for _, s := range d.status().Services {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

func (d *testDaemon) scrape() string {
	d.t.Helper()
	resp, err := http.Get(d.metrics)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func service(name, prefix, addr string) string {
	return fmt.Sprintf("  - {name: %s, prefixes: [%s], interval: 50ms, fast_interval: 10ms, timeout: 40ms, rise: 2, fall: 2, checks: [{type: tcp, address: %q}]}\n",
		name, prefix, addr)
}

// The whole operator surface on a running daemon: status as a table and as
// JSON, drain, undrain, check, reload by command and by SIGHUP (a bad
// configuration refused and the running one kept), metrics, then a stop
// that applies on_exit: withdraw.
func TestDaemonOperatorSurface(t *testing.T) {
	healthy := healthyTCP(t)
	d := startDaemon(t, "withdraw", service("dns", "192.0.2.53/32", healthy)+service("web", "203.0.113.80/32", closedTCP(t)))
	d.waitFor("dns is advertised", func() bool { return d.iface.Has(netip.MustParsePrefix("192.0.2.53/32")) })

	code, out, _ := d.cli("status")
	for _, want := range []string{"SERVICE", "dns", "up", "web", "down", "192.0.2.53/32", "refused"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	if st := d.status(); st.Config.Path != d.path || len(st.Services) != 2 || st.Services[0].Prefixes[0].Advertised != status.AdvertisedUnknown {
		t.Errorf("status --json: %+v", st)
	}
	d.waitFor("systemd's status line follows", func() bool {
		return strings.Contains(d.notify.all(), "STATUS=2 services: 1 up, 1 down (web: refused)")
	})

	// Drain: refused while the fleet cannot be seen (the read-back is off
	// here); forced, withdrawn when the command returns (there is no
	// last-resort interface); status and metrics say so.
	if code, _, errOut := d.cli("drain", "dns", "--reason", "kernel upgrade"); code != 1 ||
		!strings.Contains(errOut, "drain of dns refused: 192.0.2.53/32: the fleet view is unknown (read-back is off (frr.verify: false)), so draining it could take it off the network; --force drains anyway") {
		t.Fatalf("drain without --force: exit %d: %s", code, errOut)
	}
	if code, out, errOut := d.cli("drain", "dns", "--reason", "kernel upgrade", "--force"); code != 0 || !strings.Contains(out, "drained (withdrawn; checks keep running): dns; forced") {
		t.Fatalf("drain: exit %d: %s%s", code, out, errOut)
	}
	if d.iface.Has(netip.MustParsePrefix("192.0.2.53/32")) {
		t.Error("still on the interface after drain returned")
	}
	if st := d.state("dns"); st != status.Drained {
		t.Errorf("state after drain: %s", st)
	}
	if m := d.scrape(); !strings.Contains(m, `anycast_watchdog_service_state{service="dns",state="drained"} 1`) ||
		!strings.Contains(m, `anycast_watchdog_service_drained{service="dns"} 1`) {
		t.Errorf("metrics while drained:\n%s", m)
	}
	if code, _, errOut := d.cli("drain", "web", "--reason", strings.Repeat("x", 1025)); code != 1 || !strings.Contains(errOut, "the drain reason is 1025 bytes; at most 1024") {
		t.Errorf("drain with a long reason: exit %d: %s", code, errOut)
	}
	if code, out, _ := d.cli("undrain", "dns", "web"); code != 0 || strings.TrimSpace(out) != "undrained; each must rise again: dns; not drained: web" {
		t.Errorf("undrain: exit %d: %s", code, out)
	}
	if code, out, _ := d.cli("undrain", "--all"); code != 0 || strings.TrimSpace(out) != "nothing was drained" {
		t.Errorf("undrain --all with nothing drained: exit %d: %s", code, out)
	}
	d.waitFor("dns rises again", func() bool { return d.iface.Has(netip.MustParsePrefix("192.0.2.53/32")) })

	// check runs a round now; a failing service exits 1.
	if code, out, _ := d.cli("check", "dns"); code != 0 || !strings.Contains(out, "tcp "+healthy+"  pass") {
		t.Errorf("check dns: exit %d:\n%s", code, out)
	}
	if code, out, _ := d.cli("check", "web"); code != 1 || !strings.Contains(out, "FAIL") {
		t.Errorf("check web: exit %d:\n%s", code, out)
	}
	if code, _, errOut := d.cli("check", "nope"); code != 1 || !strings.Contains(errOut, `no service "nope"`) {
		t.Errorf("check nope: exit %d: %s", code, errOut)
	}

	// A bad configuration is refused and the running one stays.
	d.writeConfig("services:\n  - name: dns\n    rise: 0\n")
	if code, _, errOut := d.cli("reload"); code != 1 || !strings.Contains(errOut, "reload failed; the running configuration stays") {
		t.Errorf("bad reload: exit %d: %s", code, errOut)
	}
	st := d.status()
	if r := st.Config.LastReload; r == nil || r.OK || !strings.Contains(r.Error, "rise: 0 must be at least 1") || len(st.Services) != 2 {
		t.Errorf("after a bad reload: %+v", st.Config)
	}
	if code, out, _ := d.cli("status"); code != 0 || !strings.Contains(out, "LAST RELOAD FAILED") {
		t.Errorf("status after a bad reload:\n%s", out)
	}

	// web removed, ntp added: by command, then the same file by SIGHUP.
	d.writeConfig(d.configYAML("withdraw", service("dns", "192.0.2.53/32", healthy)+service("ntp", "198.51.100.123/32", healthy)))
	if code, out, errOut := d.cli("reload"); code != 0 || strings.TrimSpace(out) != "configuration reloaded" {
		t.Fatalf("reload: exit %d: %s%s", code, out, errOut)
	}
	d.waitFor("ntp is advertised", func() bool { return d.iface.Has(netip.MustParsePrefix("198.51.100.123/32")) })
	d.signals <- syscall.SIGHUP
	d.waitFor("the SIGHUP reload is recorded", func() bool { return strings.Count(d.log.String(), `msg="configuration reloaded"`) == 2 })
	if n := strings.Count(d.notify.all(), "RELOADING=1"); n != 1 {
		t.Errorf("%d RELOADING notifications, want 1 (for SIGHUP)", n)
	}
	m := d.scrape()
	for _, want := range []string{`anycast_watchdog_config_reloads_total{result="success"} 2`, `anycast_watchdog_config_reloads_total{result="failure"} 1`,
		`anycast_watchdog_config_last_reload_successful 1`, `anycast_watchdog_service_state{service="ntp",state="up"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, `anycast_watchdog_service_state{service="web"`) {
		t.Error("metrics still show the removed service's state")
	}

	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	if d.iface.Has(netip.MustParsePrefix("192.0.2.53/32")) || d.iface.Has(netip.MustParsePrefix("198.51.100.123/32")) {
		t.Error("on_exit: withdraw left addresses on the interface")
	}
	if !strings.Contains(d.notify.all(), "STOPPING=1") || !strings.Contains(d.log.String(), `msg=stopping on_exit=withdraw signal=terminated`) {
		t.Errorf("stop not announced:\n%s\n%s", d.notify.all(), d.log)
	}
}

// on_exit: keep leaves a healthy service's address in place, so that a
// restart never blips it; a daemon started over it adopts it as up.
// The audit runs at start and after each reload; status and metrics carry
// its counts, and each finding is logged once however often it is found.
func TestDaemonAuditsAtStartAndReload(t *testing.T) {
	var audits atomic.Int32
	report := doctor.Report{Findings: []doctor.Finding{
		{Severity: doctor.Error, Check: "ospf-not-covered", Object: "192.0.2.53/32", Message: "no network statement covers it", Fix: "router ospf\n network 192.0.2.53/32 area 0"},
		{Severity: doctor.Warning, Check: "min-arrival-default", Object: "ospfd", Message: "min-arrival at its default"},
		{Severity: doctor.Warning, Check: "min-arrival-default", Object: "ospf6d", Message: "min-arrival at its default"},
	}, Doctor: status.Doctor{Errors: 1, Warnings: 2}}
	d := startDaemonWith(t, func(context.Context, *config.Config) doctor.Report { audits.Add(1); return report },
		"keep", service("dns", "192.0.2.53/32", healthyTCP(t)))
	d.waitFor("the first audit", func() bool { return d.status().Doctor != nil })
	if code, out, _ := d.cli("status"); code != 0 || !strings.Contains(out, "doctor: 1 error, 2 warnings — run anycast-watchdog doctor\n") {
		t.Errorf("status (exit %d):\n%s", code, out)
	}
	if m := d.scrape(); !strings.Contains(m, `anycast_watchdog_doctor_findings{severity="error"} 1`) || !strings.Contains(m, `anycast_watchdog_doctor_findings{severity="warning"} 2`) {
		t.Errorf("metrics:\n%s", m)
	}
	if code, _, errOut := d.cli("reload"); code != 0 {
		t.Fatalf("reload: %s", errOut)
	}
	d.waitFor("a second audit after the reload", func() bool { return audits.Load() == 2 && strings.Count(d.log.String(), "doctor: audit") == 2 })
	logged := d.log.String()
	if n := strings.Count(logged, `msg="doctor: no network statement covers it"`); n != 1 || !strings.Contains(logged, `level=error`) ||
		!strings.Contains(logged, `fix="router ospf\n network 192.0.2.53/32 area 0"`) {
		t.Errorf("the error finding logged %d times (want 1, with its fix):\n%s", n, logged)
	}
}

func TestDaemonStopKeepsAndRestartAdopts(t *testing.T) {
	healthy := healthyTCP(t)
	d := startDaemon(t, "keep", service("dns", "192.0.2.53/32", healthy), netip.MustParsePrefix("192.0.2.53/32"))
	if st := d.state("dns"); st != status.Up {
		t.Errorf("a service whose address is there at start is %s, want up", st)
	}
	if code := d.stop(syscall.SIGINT); code != 0 || !d.iface.Has(netip.MustParsePrefix("192.0.2.53/32")) {
		t.Errorf("exit %d; present %v; want 0 and the address kept", code, d.iface.Has(netip.MustParsePrefix("192.0.2.53/32")))
	}
}

// A drains file that cannot be read stops the start: exit 1, with why.
func TestDaemonRefusesToStartWithUnreadableDrains(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{Interface: "lo", OnExit: config.OnExitKeep, StateDir: dir, Path: filepath.Join(dir, "config.yaml")}
	os.WriteFile(filepath.Join(dir, "drains.json"), []byte("{"), 0o640)
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	d := newDaemon(cfg.Path, cfg, log, daemonDeps{addrs: ifaddrtest.New(), notify: &recordingNotifier{}})
	if code := d.run(context.Background(), cfg, listeners{}, make(chan os.Signal)); code != 1 || !strings.Contains(out.String(), "no drained service is put back") {
		t.Errorf("exit %d; log:\n%s", code, &out)
	}
}

// A scraper cannot make the daemon hold connections: an idle keep-alive
// connection is closed, and connections beyond the limit wait for a slot.
func TestMetricsConnectionsAreBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveMetricsWith(ctx, l, metrics.New("test"), logrus.New(), metricsLimits{connections: 2, write: time.Second, idle: 200 * time.Millisecond})
	get := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b, c := dial(), dial(), dial()
	if err := get(a); err != nil {
		t.Fatal(err)
	}
	if err := get(b); err != nil {
		t.Fatal(err)
	}
	// a and b hold both slots: c is not served until the idle timeout
	// closes one of them.
	start := time.Now()
	if err := get(c); err != nil {
		t.Fatalf("the third connection was never served: %v", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("the third connection was served after %s, beyond the limit of 2", waited)
	}
	a.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := a.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("an idle keep-alive connection was not closed: %v", err)
	}
}

// Flap damping as an operator meets it: a service that flaps three times
// is damped (here without a last-resort interface, so its address stays
// off while it passes), status, STATUS= and metrics say so with the
// figures, and undamp puts it back at once.
func TestDaemonDampingAndUndamp(t *testing.T) {
	healthyFile := filepath.Join(t.TempDir(), "healthy")
	if err := os.WriteFile(healthyFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	svc := fmt.Sprintf("  - {name: dns, prefixes: [192.0.2.53/32], interval: 50ms, fast_interval: 10ms, timeout: 40ms, rise: 2, fall: 2,\n"+
		"     damping: {half_life: 1m, max_suppress: 2m}, checks: [{type: exec, command: [/usr/bin/test, -e, %s]}]}\n", healthyFile)
	d := startDaemon(t, "keep", svc)
	dns := netip.MustParsePrefix("192.0.2.53/32")
	d.waitFor("dns is advertised", func() bool { return d.iface.Has(dns) })
	for i := 1; i <= 3; i++ {
		os.Remove(healthyFile)
		d.waitFor(fmt.Sprintf("withdrawal %d", i), func() bool { return d.state("dns") == status.Down })
		os.WriteFile(healthyFile, nil, 0o644)
		if i < 3 {
			d.waitFor("dns is back", func() bool { return d.iface.Has(dns) })
		}
	}
	d.waitFor("dns is damped", func() bool { return d.state("dns") == status.Damped })
	if d.iface.Has(dns) {
		t.Error("a damped service without a last-resort interface is on the interface")
	}
	st := d.status().Services[0]
	if dp := st.Damping; dp == nil || !dp.Damped || dp.Withdrawals != 3 || dp.Penalty < 2900 || dp.ReleaseAt.IsZero() {
		t.Errorf("status damping: %+v", dp)
	}
	if code, out, _ := d.cli("status"); code != 0 || !strings.Contains(out, "after 3 withdrawals: damped, released in ~") {
		t.Errorf("status table (exit %d):\n%s", code, out)
	}
	d.waitFor("systemd's status line counts it", func() bool { return strings.Contains(d.notify.all(), "STATUS=1 service: 1 damped (dns: damped)") })
	m := d.scrape()
	for _, want := range []string{`anycast_watchdog_service_state{service="dns",state="damped"} 1`, `anycast_watchdog_withdrawals_total{service="dns"} 3`,
		`anycast_watchdog_service_damped{mode="suppress",service="dns"} 1`, `anycast_watchdog_damping_penalty{service="dns"} 29`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(d.log.String(), `msg="service damped: flapping; held at last resort while its checks pass, until released"`) {
		t.Errorf("no log line for the damping:\n%s", d.log)
	}

	if code, out, errOut := d.cli("undamp", "dns"); code != 0 || strings.TrimSpace(out) != "damping penalty cleared; back at normal metric where the checks pass: dns" {
		t.Fatalf("undamp: exit %d: %s%s", code, out, errOut)
	}
	if !d.iface.Has(dns) {
		t.Error("not back on the interface when undamp returned")
	}
	if code, out, _ := d.cli("undamp", "--all"); code != 0 || strings.TrimSpace(out) != "no penalty to clear" {
		t.Errorf("undamp --all: exit %d: %s", code, out)
	}
	if code, _, errOut := d.cli("undamp"); code != 2 || !strings.Contains(errOut, "name services or give --all") {
		t.Errorf("undamp without a name: exit %d: %s", code, errOut)
	}
	if !strings.Contains(d.log.String(), `msg="damping penalty cleared (undamp)"`) {
		t.Errorf("no log line for the undamp:\n%s", d.log)
	}
}
