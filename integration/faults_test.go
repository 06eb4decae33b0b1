//go:build integration

// The fault matrix: each test breaks one thing on node 1 of the FRR lab and
// asserts what the router and the operator (status, metrics, log) see.
package integration

import (
	"bufio"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/internal/tcptest"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// metricsAddr is where node watchdogs serve metrics, inside their namespace.
const metricsAddr = "127.0.0.1:9795"

// metric sums the series of name whose labels contain every one of labels
// (written as they appear, e.g. `service="dns"`), from metricsAddr.
func metric(t *testing.T, n *lab.Node, name string, labels ...string) float64 {
	t.Helper()
	return metricAt(t, n, metricsAddr, name, labels...)
}

// metricAt is metric from the node's metrics served at addr.
func metricAt(t *testing.T, n *lab.Node, addr, name string, labels ...string) float64 {
	t.Helper()
	body, err := n.NS.Get(addr, "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", n.NS.Name, err)
	}
	return sumOf(body, name, labels...)
}

// sumOf sums, in one scrape's body, the series of name whose labels
// contain every one of labels.
func sumOf(body, name string, labels ...string) float64 {
	sum := 0.0
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ') // label values may hold spaces
		series, value, ok := line[:max(i, 0)], line[i+1:], i > 0
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(series, l)
		}
		if v, err := strconv.ParseFloat(value, 64); all && err == nil {
			sum += v
		}
	}
	return sum
}

func serviceNamed(st status.Document, name string) status.Service {
	for _, s := range st.Services {
		if s.Name == name {
			return s
		}
	}
	return status.Service{}
}

// waitStatus waits until cond holds for node's status and returns it.
func waitStatus(t *testing.T, n *lab.Node, within time.Duration, what string, cond func(status.Document) bool) status.Document {
	t.Helper()
	var st status.Document
	var err error
	if _, ok := lab.WaitFor(within, func() bool {
		st, err = fullStatus(t, n)
		return err == nil && cond(st)
	}); !ok {
		t.Fatalf("%s: not within %s; status %+v (%v)\nwatchdog log:\n%s", what, within, st, err, n.Watchdog.Log())
	}
	return st
}

// waitNextHops waits until the router routes p via exactly want.
func waitNextHops(t *testing.T, a *lab.AnycastLab, p netip.Prefix, want []string, within time.Duration, what string) time.Duration {
	t.Helper()
	took, ok := lab.WaitFor(within, func() bool { return routesVia(t, a, p, want) })
	if !ok {
		t.Fatalf("%s: router routes %s via %v, want %v within %s\nnode 1 watchdog:\n%s", what, p, a.Router.NextHops(p), want, within, a.Nodes[0].Watchdog.Log())
	}
	return took
}

// keepsBothNodes watches the router's routes for the standard service
// until the returned stop, which reports the first moment one was missing, and why.
func keepsBothNodes(a *lab.AnycastLab) (stop func() string) {
	watch := lab.Watch(20*time.Millisecond, func() string {
		if v4, v6 := a.Routes(); len(v4) != 2 || len(v6) != 2 {
			return fmt.Sprintf("%s: v4 %v v6 %v", time.Now().Format("15:04:05.000"), v4, v6)
		}
		return ""
	})
	return func() string {
		if at := watch(); at != "" {
			return at + "\n" + whyRoutesChanged(a)
		}
		return ""
	}
}

// whyRoutesChanged gathers what could explain a route lost at the router:
// the watchdogs' lines about the dns service and their warnings about no
// service in particular (other services' lines left out: a test may run
// thousands of failing rounds), and the tail of the router's OSPF logs,
// where an adjacency lost to a starved ospfd shows (bgpd's in the BGP lab).
func whyRoutesChanged(a *lab.AnycastLab) string {
	var b strings.Builder
	for _, n := range a.Nodes {
		if n.Watchdog == nil {
			continue
		}
		fmt.Fprintf(&b, "%s watchdog:\n", n.NS.Name)
		for _, line := range strings.Split(n.Watchdog.Log(), "\n") {
			general := !strings.Contains(line, " service=") &&
				(strings.Contains(line, "level=warning") || strings.Contains(line, "level=error"))
			if general || strings.Contains(line, " service=dns") {
				b.WriteString("  " + line + "\n")
			}
		}
	}
	for _, d := range []string{"ospfd", "ospf6d", "bgpd"} {
		p := a.Router.FRR.Daemons[d]
		if p == nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(p.Log()), "\n")
		fmt.Fprintf(&b, "router %s, last lines:\n  %s\n", d, strings.Join(lines[max(0, len(lines)-15):], "\n  "))
	}
	return b.String()
}

func startWith(t *testing.T, n *lab.Node, c lab.WatchdogConfig, wrapper ...string) {
	t.Helper()
	if err := c.Write(n.Config); err != nil {
		t.Fatal(err)
	}
	if err := n.StartWatchdogVia(wrapper...); err != nil {
		t.Fatal(err)
	}
}

// startNodes starts node 1's watchdog with c (through wrapper, if any) and
// every other node's with the standard configuration.
func startNodes(t *testing.T, a *lab.AnycastLab, c lab.WatchdogConfig, wrapper ...string) {
	t.Helper()
	startWith(t, a.Nodes[0], c, wrapper...)
	for _, n := range a.Nodes[1:] {
		if err := n.StartWatchdog(); err != nil {
			t.Fatal(err)
		}
	}
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomic: the daemon never runs half a file
		t.Fatal(err)
	}
}

// extraService is YAML for one more service in a node's configuration;
// timing and check are YAML flow mappings.
func extraService(name, prefix, timing, check string) string {
	return fmt.Sprintf("  - {name: %s, prefixes: [%s], %s, checks: [%s]}\n", name, prefix, strings.Trim(timing, "{}"), check)
}

// switchDNS serves health.example. on addr inside ns while healthy is
// true, and REFUSED otherwise.
func switchDNS(t *testing.T, ns *lab.Namespace, addr string) *atomic.Bool {
	t.Helper()
	healthy := new(atomic.Bool)
	healthy.Store(true)
	pc, err := ns.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			if !healthy.Load() {
				m.Rcode = dns.RcodeRefused
			} else {
				rr, _ := dns.NewRR("health.example. 0 IN A 198.51.100.99")
				m.Answer = append(m.Answer, rr)
			}
			w.WriteMsg(m)
		})}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return healthy
}

// Row 1: a service flapping every 300 ms for 30 s. With rise 5 at a 100 ms
// fast interval it needs 400 ms of health in a row, which the flapping
// never gives: the router sees the withdrawal once, not 100 changes, and
// the node returns once the service is steady.
func TestFaultFlappingServiceIsHeldByHysteresis(t *testing.T) {
	a := buildAnycastLab(t, lab.AnycastOptions{MinArrival0: true})
	n1 := a.Nodes[0]
	flappy := netip.MustParsePrefix("192.0.2.70/32")
	healthy := switchDNS(t, n1.NS, "127.0.0.1:5300")
	c := n1.WatchdogConfig()
	c.Services = extraService("flappy", flappy.String(), "{interval: 500ms, fast_interval: 100ms, timeout: 80ms, rise: 5, fall: 2}",
		"{type: dns, server: 127.0.0.1:5300, query: health.example., answer_contains: 198.51.100.99}")
	startWith(t, n1, c)
	waitNextHops(t, a, flappy, []string{n1.RouterDev}, 10*time.Second, "flappy advertised")

	stop := make(chan struct{})
	defer close(stop)
	events, err := lab.StreamLines(exec.Command("ip", "-n", a.Router.Name, "monitor", "route"), stop)
	if err != nil {
		t.Fatal(err)
	}
	const flapFor, flapEvery = 30 * time.Second, 300 * time.Millisecond
	for end := time.Now().Add(flapFor); time.Now().Before(end); time.Sleep(flapEvery) {
		healthy.Store(!healthy.Load())
	}
	healthy.Store(true)
	took := waitNextHops(t, a, flappy, []string{n1.RouterDev}, labInterval+5*labFast+2*time.Second, "flappy back once steady")
	time.Sleep(time.Second) // let the last route events arrive

	var changes []string
	for len(events) > 0 {
		if line := <-events; strings.Contains(line, flappy.Addr().String()) {
			changes = append(changes, line)
		}
	}
	t.Logf("%d flips of the service in %s; the router saw %d route changes; back %s after it steadied",
		int(flapFor/flapEvery), flapFor, len(changes), took.Round(time.Millisecond))
	if len(changes) > 4 {
		t.Errorf("the router saw %d route changes while the service flapped (want at most 4):\n%s", len(changes), strings.Join(changes, "\n"))
	}
	st := waitStatus(t, n1, 2*time.Second, "flappy up", func(st status.Document) bool { return serviceNamed(st, "flappy").State == "up" })
	if s := serviceNamed(st, "flappy"); !s.Prefixes[0].Present || s.Prefixes[0].Advertised != "yes" {
		t.Errorf("flappy's prefix after the flapping: %+v", s.Prefixes[0])
	}
}

// Row 2: the server accepts and never answers. The check times out, counts
// as a failure, the node is withdrawn, and rounds keep their schedule.
func TestFaultHungCheckTimesOutOnSchedule(t *testing.T) {
	a := buildAnycastLab(t, lab.AnycastOptions{MinArrival0: true})
	n1 := a.Nodes[0]
	web := netip.MustParsePrefix("192.0.2.71/32")
	l, err := n1.NS.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	var hang atomic.Bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			<-r.Context().Done() // accepted, read, never answered
			return
		}
		fmt.Fprintln(w, "ok")
	})}
	go srv.Serve(l)
	defer srv.Close()
	c := n1.WatchdogConfig()
	c.Metrics = metricsAddr
	c.Services = extraService("web", web.String(), "{interval: 500ms, fast_interval: 100ms, timeout: 100ms, rise: 3, fall: 2}",
		"{type: http, url: 'http://127.0.0.1:8080/'}")
	startNodes(t, a, c)
	waitNextHops(t, a, web, []string{n1.RouterDev}, 10*time.Second, "web advertised")
	waitRoutes(t, a, both(a), 10*time.Second, "dns on both nodes")
	others := keepsBothNodes(a)

	hang.Store(true)
	took := waitNextHops(t, a, web, nil, withdrawBound, "hung web withdrawn")
	t.Logf("router lost the hung service %s after the server stopped answering", took.Round(time.Millisecond))
	st := waitStatus(t, n1, 2*time.Second, "web down on timeouts", func(st status.Document) bool {
		s := serviceNamed(st, "web")
		return s.State == "down" && len(s.Checks) == 1 && s.Checks[0].Reason == "timeout"
	})
	t.Logf("status: %s", serviceNamed(st, "web").Checks[0].Error)

	// Down, web is checked every interval: ~10 rounds in 5 s, each failing
	// on its timeout; neither a burst nor a stall.
	series := []string{`service="web"`}
	rounds0, fails0 := metric(t, n1, "anycast_watchdog_check_duration_seconds_count", series...),
		metric(t, n1, "anycast_watchdog_check_failures_total", append(series, `reason="timeout"`)...)
	time.Sleep(5 * time.Second)
	rounds := metric(t, n1, "anycast_watchdog_check_duration_seconds_count", series...) - rounds0
	fails := metric(t, n1, "anycast_watchdog_check_failures_total", append(series, `reason="timeout"`)...) - fails0
	t.Logf("in 5 s: %.0f rounds, %.0f timeouts (interval %s)", rounds, fails, labInterval)
	if rounds < 8 || rounds > 12 || fails != rounds {
		t.Errorf("in 5 s at a 500 ms interval: %.0f rounds with %.0f timeouts; want 8-12, all timeouts", rounds, fails)
	}
	// A stall would start rounds an interval (500 ms) late or worse.
	if late := metric(t, n1, "anycast_watchdog_round_lateness_seconds_count") - metric(t, n1, "anycast_watchdog_round_lateness_seconds_bucket", `le="0.25"`); late != 0 {
		t.Errorf("%.0f rounds started over 250 ms late", late)
	}
	if at := others(); at != "" {
		t.Errorf("the healthy dns service lost a next hop at %s", at)
	}
}

// Row 3: exec checks whose children ignore SIGTERM and hang, 10 000 rounds
// of them. Each timeout kills the whole process group: afterwards no
// zombie, no leftover child and no extra descriptor in the daemon.
//
// A round counts only once its script has started the stubborn child: a
// timeout that hits the shell before it forks tests nothing. A clean-clone
// CI run showed that rounds of 30 ms can be all of that kind under load.
func TestFaultStubbornExecChildrenLeaveNothingBehind(t *testing.T) {
	a := buildAnycastLab(t, lab.AnycastOptions{})
	n1 := a.Nodes[0]
	c := n1.WatchdogConfig()
	c.Metrics = metricsAddr
	// The dns service witnesses that the storm leaves other services
	// alone, with a 100 ms timeout. Before exec checks were bounded and
	// niced it was withdrawn once in a run: the storm starved the daemon,
	// and its checks timed out before they had even sent the query.
	c.Interval, c.FastInterval, c.Timeout = time.Second, time.Second, 100*time.Millisecond
	startNodes(t, a, c)
	waitRoutes(t, a, both(a), 10*time.Second, "both nodes advertised")
	// A duration no other process on the machine uses marks our sleeps.
	const marker = "987.654"
	dir := filepath.Dir(n1.Config)
	script := filepath.Join(dir, n1.NS.Name+"-stubborn.sh")
	// One byte per round, appended once the background sleep exists.
	started := filepath.Join(dir, n1.NS.Name+"-stubborn.started")
	writeScript(t, script, "trap '' TERM\nsleep "+marker+" &\nprintf x >>"+started+"\nsleep "+marker+"\n")
	time.Sleep(time.Second)
	pid := n1.Watchdog.PID()
	fds0 := settledFDs(t, pid)

	const services, wantRounds = 25, 10000
	base := c
	for i := 0; i < services; i++ {
		c.Services += extraService(fmt.Sprintf("stubborn-%d", i), fmt.Sprintf("192.0.2.%d/32", 100+i),
			"{interval: 150ms, fast_interval: 150ms, timeout: 100ms, rise: 1, fall: 1}", "{type: exec, command: ["+script+"]}")
	}
	if err := c.Write(n1.Config); err != nil {
		t.Fatal(err)
	}
	others := keepsBothNodes(a)
	start := time.Now()
	if out, err := cli(t, n1, "reload"); err != nil {
		t.Fatalf("reload: %v: %s", err, out)
	}
	var rounds, maxFDs float64
	var stubborn int64
	if _, ok := lab.WaitFor(8*time.Minute, func() bool {
		maxFDs = max(maxFDs, float64(countFDs(t, pid)))
		rounds = metric(t, n1, "anycast_watchdog_check_failures_total", `service="stubborn-`, `reason="timeout"`)
		if fi, err := os.Stat(started); err == nil {
			stubborn = fi.Size()
		}
		time.Sleep(500 * time.Millisecond)
		return stubborn >= wantRounds
	}); !ok {
		t.Fatalf("in 8 minutes only %d of %.0f timed-out rounds had started their stubborn child", stubborn, rounds)
	}
	took := time.Since(start)
	if err := base.Write(n1.Config); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(t, n1, "reload"); err != nil {
		t.Fatalf("reload: %v: %s", err, out)
	}
	time.Sleep(time.Second)
	if at := others(); at != "" {
		t.Errorf("the healthy dns service lost a next hop at %s", at)
	}
	zombies, children := childrenOf(t, pid)
	left := processesWithArgs(t, "sleep", marker)
	fds := settledFDs(t, pid)
	starved := metric(t, n1, "anycast_watchdog_check_failures_total", `service="stubborn-`, `reason="starved"`)
	dnsFailures := metric(t, n1, "anycast_watchdog_check_failures_total", `service="dns"`)
	t.Logf("%.0f timed-out and %.0f starved rounds of %d services in %s, %d of them with a stubborn child running; daemon fds %d before, at most %.0f during, %d after; %d zombies, %d children, %d leftover sleeps after; the dns witness (timeout 100 ms) failed %.0f checks",
		rounds, starved, services, took.Round(time.Second), stubborn, fds0, maxFDs, fds, zombies, children, len(left), dnsFailures)
	if zombies != 0 || len(left) != 0 || fds > fds0+2 {
		t.Errorf("after %d rounds with stubborn children: %d zombies, leftover sleeps %v, %d fds (started with %d): %v", stubborn, zombies, left, fds, fds0, fdTargets(pid))
	}
	if n1.Watchdog.Exited() {
		t.Fatalf("the watchdog exited:\n%s", n1.Watchdog.Log())
	}
}

// Row 4: an exec check that writes 100 MB to stdout each round passes, its
// output capped, and the daemon's memory stays flat.
func TestFaultExecFloodingStdoutKeepsMemoryFlat(t *testing.T) {
	a := buildAnycastLab(t, lab.AnycastOptions{})
	n1 := a.Nodes[0]
	chatty := netip.MustParsePrefix("192.0.2.72/32")
	c := n1.WatchdogConfig()
	c.Metrics = metricsAddr
	startWith(t, n1, c)
	waitStatus(t, n1, 10*time.Second, "dns up", func(st status.Document) bool { return serviceNamed(st, "dns").State == "up" })
	pid := n1.Watchdog.PID()

	c.Services = extraService("chatty", chatty.String(), "{interval: 1s, timeout: 900ms, rise: 1, fall: 1}",
		"{type: exec, command: [/usr/bin/head, -c, '100000000', /dev/zero]}")
	if err := c.Write(n1.Config); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(t, n1, "reload"); err != nil {
		t.Fatalf("reload: %v: %s", err, out)
	}
	waitNextHops(t, a, chatty, []string{n1.RouterDev}, 10*time.Second, "chatty advertised")
	rounds := func(n float64) {
		t.Helper()
		var got float64
		if _, ok := lab.WaitFor(30*time.Second, func() bool {
			got = metric(t, n1, "anycast_watchdog_check_duration_seconds_count", `service="chatty"`)
			return got >= n
		}); !ok {
			t.Fatalf("only %.0f rounds of chatty", got)
		}
	}
	// Memory after the first rounds (the new service's own allocations),
	// then twice after ten more: a leak grows each time, a buffered output
	// by 100 MB.
	var rss, hwm [3]int
	for i, n := range []float64{2, 12, 22} {
		rounds(n)
		rss[i], hwm[i] = memory(t, pid)
	}
	st, err := fullStatus(t, n1)
	if err != nil {
		t.Fatal(err)
	}
	s := serviceNamed(st, "chatty")
	t.Logf("after 2, 12 and 22 rounds of 100 MB each: RSS %v KiB, peak %v KiB; status: %s, %s", rss, hwm, s.State, s.Checks[0].Check)
	if s.State != "up" || !s.Checks[0].OK || metric(t, n1, "anycast_watchdog_check_failures_total", `service="chatty"`) != 0 {
		t.Errorf("chatty: %+v", s)
	}
	if hwm[2]-hwm[0] > 8<<10 || hwm[2]-hwm[1] > 2<<10 {
		t.Errorf("peak RSS %v KiB after 2, 12 and 22 rounds of 100 MB output: not flat", hwm)
	}
}

// Row 5: vtysh missing, not executable, refused by FRR's sockets, or hung.
// Status explains it; checks and address control go on: the router still
// loses node 1 when its DNS server stops, and regains it.
func TestFaultBrokenVtysh(t *testing.T) {
	// Each case withdraws node 1 once more within a minute: the default
	// flap damping would rightly hold it from the third case on
	// (TestFlappingNodeIsDampedAndReleased), which is not what this tests.
	a := newAnycastLab(t, lab.AnycastOptions{MinArrival0: true, Damping: "{mode: off}"})
	n1 := a.Nodes[0]
	waitRoutes(t, a, both(a), 10*time.Second, "both nodes advertised")
	n1.Watchdog.Stop(5 * time.Second)
	dir := filepath.Dir(n1.Config)
	notExecutable := filepath.Join(dir, "vtysh-not-executable")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hung := filepath.Join(dir, "vtysh-hung")
	writeScript(t, hung, "exec sleep 30\n")

	for _, tc := range []struct {
		name, vtysh string
		wrapper     []string // how the daemon is started
		kind, error string
	}{
		{"missing", "/nonexistent/vtysh", nil, "vtysh-missing", "cannot run vtysh (install frr or fix frr.vtysh)"},
		{"not executable", notExecutable, nil, "vtysh-missing", "permission denied"},
		{"hung", hung, nil, "timeout", "ospfd did not answer in time"},
		// The daemon as nobody (keeping CAP_NET_ADMIN for ip): FRR's vty
		// sockets are frr:frrvty 0770.
		{"permission denied", "/usr/bin/vtysh", []string{"setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
			"--inh-caps", "+net_admin", "--ambient-caps", "+net_admin"}, "permission-denied", "permission denied talking to ospfd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wrapper != nil {
				giveToNobody(t, dir, filepath.Join(dir, n1.NS.Name+"-state"))
			}
			c := n1.WatchdogConfig()
			c.Vtysh = tc.vtysh
			startWith(t, n1, c, tc.wrapper...)
			defer n1.Watchdog.Stop(5 * time.Second)
			st := waitStatus(t, n1, 10*time.Second, "FRR read-back failing", func(st status.Document) bool {
				return len(st.FRR) > 0 && !st.FRR[0].OK && st.FRR[0].Errors[tc.kind] > 0
			})
			if !strings.Contains(st.FRR[0].Error, tc.error) {
				t.Errorf("status says %q, want it to say %q", st.FRR[0].Error, tc.error)
			}
			s := serviceNamed(st, "dns")
			if s.State != "up" || !s.Prefixes[0].Present || s.Prefixes[0].Advertised != "unknown" {
				t.Errorf("dns: %s, prefix %+v; want up, present, advertised unknown", s.State, s.Prefixes[0])
			}
			t.Logf("status: FRR read-back: %s: %s", st.FRR[0].Daemon, st.FRR[0].Error)

			// Address control goes on: lo follows the service on time, and
			// the router follows lo.
			n1.DNS.Stop(2 * time.Second)
			if _, ok := lab.WaitFor(withdrawBound, func() bool { v4, v6 := n1.Has(); return !v4 && !v6 }); !ok {
				t.Fatalf("not withdrawn from lo within %s:\n%s", withdrawBound, n1.Watchdog.Log())
			}
			n2 := []string{a.Nodes[1].RouterDev}
			waitNextHops(t, a, lab.AnycastV4, n2, time.Second, "router loses node 1's /32")
			waitNextHops(t, a, lab.AnycastV6, n2, time.Second, "router loses node 1's /128")
			if err := n1.StartDNS(); err != nil {
				t.Fatal(err)
			}
			if _, ok := lab.WaitFor(labInterval+labRise*labFast+time.Second, func() bool { v4, v6 := n1.Has(); return v4 && v6 }); !ok {
				t.Fatalf("not restored on lo:\n%s", n1.Watchdog.Log())
			}
			waitNextHops(t, a, lab.AnycastV4, both(a), time.Second, "router regains node 1's /32")
			waitNextHops(t, a, lab.AnycastV6, both(a), time.Second, "router regains node 1's /128")
		})
	}
}

// Row 6: ip replaced by a failing stub. The change that the failing service
// needs is logged, retried with backoff (never in a tight loop), shown in
// status, and carried out once ip works again.
func TestFaultFailingIPIsRetriedWithBackoff(t *testing.T) {
	a := buildAnycastLab(t, lab.AnycastOptions{MinArrival0: true})
	n1 := a.Nodes[0]
	bin := filepath.Join(filepath.Dir(n1.Config), "bin")
	os.Mkdir(bin, 0o755)
	ipPath, calls := filepath.Join(bin, "ip"), filepath.Join(bin, "calls")
	realIP, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(realIP, ipPath); err != nil {
		t.Fatal(err)
	}
	c := n1.WatchdogConfig()
	c.IP = ipPath
	startNodes(t, a, c)
	waitRoutes(t, a, both(a), 10*time.Second, "both nodes advertised")

	// Changes fail; reads still work, so the daemon sees what it must retry.
	writeScript(t, ipPath, fmt.Sprintf("case \" $* \" in *' add '*|*' del '*)\n  echo \"$*\" >> %s\n"+
		"  echo 'RTNETLINK answers: Operation not permitted' >&2; exit 2;;\nesac\nexec %s \"$@\"\n", calls, realIP))
	n1.DNS.Stop(2 * time.Second)
	waitLog(t, n1.Watchdog, withdrawBound, `msg="cannot change address; will retry"`)
	failedAt := time.Now()
	st := waitStatus(t, n1, 2*time.Second, "failed change in status", func(st status.Document) bool {
		p := serviceNamed(st, "dns").Prefixes[0]
		return !p.Wanted && p.Present && strings.Contains(p.Error, "Operation not permitted")
	})
	t.Logf("status while ip fails: %s %s", serviceNamed(st, "dns").State, serviceNamed(st, "dns").Prefixes[0].Error)
	time.Sleep(10 * time.Second)
	raw, _ := os.ReadFile(calls)
	v4tries, v6tries := strings.Count(string(raw), "del 192.0.2.53/32"), strings.Count(string(raw), "del 2001:db8::53/128")
	t.Logf("in the 10 s after the first failure ip was asked to remove the /32 %d times and the /128 %d times", v4tries, v6tries)
	// Backoff from 1 s, doubling: tries at 0, 1, 3 and 7 s (plus up to one
	// reconcile tick each), so 3 to 5 in 10 s; a tight loop would be hundreds.
	for _, n := range []int{v4tries, v6tries} {
		if n < 3 || n > 5 {
			t.Errorf("a failing ip was tried %d times for one prefix in 10 s, want 3-5 (backoff):\n%s", n, raw)
		}
	}
	if v4, _ := a.Routes(); len(v4) != 2 {
		t.Errorf("router lost node 1 although ip never worked: %v", v4)
	}

	// ip works again: the withdrawal happens on the next retry (backoff is
	// capped at 16 s), and the router follows.
	os.Remove(ipPath)
	if err := os.Symlink(realIP, ipPath); err != nil {
		t.Fatal(err)
	}
	took := waitRoutes(t, a, []string{a.Nodes[1].RouterDev}, 20*time.Second, "withdrawn once ip works")
	t.Logf("withdrawn %s after ip was restored (%s after the first failure)", took.Round(time.Millisecond), time.Since(failedAt).Round(time.Millisecond))
	waitLog(t, n1.Watchdog, time.Second, `msg="address change works again"`)
}

// Row 7: the daemon is SIGKILLed after deciding to withdraw a failed
// service but before ip has done it (ip hangs). Restarted, it converges
// within one interval, and the healthy service never blips.
func TestFaultKilledBetweenDecidingAndApplying(t *testing.T) {
	a := buildAnycastLab(t, lab.AnycastOptions{MinArrival0: true})
	n1 := a.Nodes[0]
	web := netip.MustParsePrefix("192.0.2.73/32")
	l, err := n1.NS.Listen("tcp", "127.0.0.1:8081")
	if err != nil {
		t.Fatal(err)
	}
	go tcptest.AcceptAndClose(l)
	defer l.Close()
	dir := filepath.Dir(n1.Config)
	ipPath, hungPID := filepath.Join(dir, "ip"), filepath.Join(dir, "ip-hung.pid")
	realIP, _ := exec.LookPath("ip")
	// ip that hangs when asked to delete, and works otherwise.
	writeScript(t, ipPath, fmt.Sprintf("case \" $* \" in *' del '*) echo $$ > %s; exec sleep 60;; esac\nexec %s \"$@\"\n", hungPID, realIP))
	c := n1.WatchdogConfig()
	c.Services = extraService("web", web.String(), "{interval: 500ms, fast_interval: 100ms, timeout: 100ms, rise: 3, fall: 2}",
		"{type: tcp, address: '127.0.0.1:8081'}")
	c.IP = ipPath
	startNodes(t, a, c)
	waitRoutes(t, a, both(a), 10*time.Second, "dns on both nodes")
	waitNextHops(t, a, web, []string{n1.RouterDev}, 10*time.Second, "web advertised")
	others := keepsBothNodes(a)

	l.Close() // web fails
	if _, ok := lab.WaitFor(withdrawBound, func() bool { _, err := os.Stat(hungPID); return err == nil }); !ok {
		t.Fatalf("the daemon never tried to withdraw web:\n%s", n1.Watchdog.Log())
	}
	n1.Watchdog.Signal(syscall.SIGKILL)
	n1.Watchdog.Wait(5 * time.Second)
	if raw, err := os.ReadFile(hungPID); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
			syscall.Kill(pid, syscall.SIGKILL) // the hung stub our test put in place
		}
	}
	if !n1.NS.Has("lo", web) {
		t.Fatal("web's address went away although ip never ran")
	}

	c.IP = "" // the real ip this time
	if err := c.Write(n1.Config); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	if err := n1.StartWatchdog(); err != nil {
		t.Fatal(err)
	}
	if _, ok := lab.WaitFor(labInterval+time.Second, func() bool { return !n1.NS.Has("lo", web) }); !ok {
		t.Fatalf("web's address still on lo %s after the restart:\n%s", labInterval+time.Second, n1.Watchdog.Log())
	}
	converged := time.Since(restarted)
	waitNextHops(t, a, web, nil, 2*time.Second, "router loses web")
	t.Logf("after the restart web was withdrawn in %s (interval %s, process start included)", converged.Round(time.Millisecond), labInterval)
	time.Sleep(labInterval)
	if at := others(); at != "" {
		t.Errorf("the healthy dns service lost a next hop at %s", at)
	}
	if log := n1.Watchdog.Log(); !strings.Contains(log, `prefixes already on the interface at start`) {
		t.Errorf("the restarted daemon did not start from what was on lo:\n%s", log)
	}
}

// Row 8: the configuration file replaced by garbage, then SIGHUP. The old
// configuration keeps guarding; status and metrics show the failed reload.
func TestFaultGarbageConfigOnSIGHUP(t *testing.T) {
	a := buildAnycastLab(t, lab.AnycastOptions{MinArrival0: true})
	n1 := a.Nodes[0]
	c := n1.WatchdogConfig()
	c.Metrics = metricsAddr
	startNodes(t, a, c)
	waitRoutes(t, a, both(a), 10*time.Second, "both nodes advertised")
	if err := os.WriteFile(n1.Config, []byte("\x00\x01 services: [ {{ garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	n1.Watchdog.Signal(syscall.SIGHUP)
	st := waitStatus(t, n1, 5*time.Second, "failed reload in status", func(st status.Document) bool {
		return st.Config.LastReload != nil && !st.Config.LastReload.OK
	})
	t.Logf("status: last reload failed: %s", st.Config.LastReload.Error)
	if !strings.Contains(st.Config.LastReload.Error, n1.Config) {
		t.Errorf("the reload error does not name the file: %s", st.Config.LastReload.Error)
	}
	if out, _ := cli(t, n1, "status"); !strings.Contains(out, "LAST RELOAD FAILED") {
		t.Errorf("status table does not show the failed reload:\n%s", out)
	}
	if ok, failed := metric(t, n1, "anycast_watchdog_config_last_reload_successful"), metric(t, n1, "anycast_watchdog_config_reloads_total", `result="failure"`); ok != 0 || failed != 1 {
		t.Errorf("metrics: last_reload_successful %v, failed reloads %v; want 0 and 1", ok, failed)
	}
	// The old configuration still guards the node.
	n1.DNS.Stop(2 * time.Second)
	waitRoutes(t, a, []string{a.Nodes[1].RouterDev}, withdrawBound, "withdrawn under the kept configuration")
}

// Row 9: every service on a node fails at once: each is withdrawn, with one
// log line each, and no "keep one up" rule holds any back; when every node
// fails, the router has no route at all.
//
// This lab has no last-resort interfaces, so failing open is off: with it,
// see failopen_test.go.
func TestFaultEveryServiceFailsAtOnce(t *testing.T) {
	a := buildAnycastLab(t, lab.AnycastOptions{MinArrival0: true})
	extra := []netip.Prefix{netip.MustParsePrefix("192.0.2.54/32"), netip.MustParsePrefix("192.0.2.55/32")}
	names := []string{"dns", "dns-b", "dns-c"}
	for _, n := range a.Nodes {
		c := n.WatchdogConfig()
		for i, p := range extra {
			c.Services += extraService(names[i+1], p.String(), "{interval: 500ms, fast_interval: 100ms, timeout: 100ms, rise: 3, fall: 2}",
				"{type: dns, server: 127.0.0.1, query: health.example., answer_contains: 198.51.100.99}")
		}
		startWith(t, n, c)
	}
	waitRoutes(t, a, both(a), 10*time.Second, "both nodes advertised")
	for _, p := range extra {
		waitNextHops(t, a, p, both(a), 10*time.Second, p.String()+" on both nodes")
	}

	n1, n2 := a.Nodes[0], a.Nodes[1]
	n1.DNS.Stop(2 * time.Second)
	waitRoutes(t, a, []string{n2.RouterDev}, withdrawBound, "node 1 withdrawn")
	for _, p := range extra {
		waitNextHops(t, a, p, []string{n2.RouterDev}, time.Second, p.String()+" withdrawn from node 1")
	}
	st := waitStatus(t, n1, 2*time.Second, "all down", func(st status.Document) bool {
		for _, s := range st.Services {
			if s.State != "down" || s.Prefixes[0].Present {
				return false
			}
		}
		return len(st.Services) == 3
	})
	log := n1.Watchdog.Log()
	for _, name := range names {
		n := 0
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, `msg="service down"`) && strings.Contains(line, " service="+name+" to=down") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d 'service down' lines for %s, want 1:\n%s", n, name, log)
		}
	}
	t.Logf("node 1: %d services down: %s", len(st.Services), serviceNamed(st, "dns").Reason)

	// Every node fails: nothing is kept up anywhere.
	n2.DNS.Stop(2 * time.Second)
	waitRoutes(t, a, nil, withdrawBound, "withdrawn everywhere")
	for _, p := range extra {
		waitNextHops(t, a, p, nil, time.Second, p.String()+" withdrawn everywhere")
	}
}

// countFDs is how many descriptors pid has open.
func countFDs(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// settledFDs is the fewest descriptors pid had in 20 looks over 2 s: the
// daemon's own, without the pipes of an ip or vtysh call under way. A
// leak raises it; a call in flight at one look does not.
func settledFDs(t *testing.T, pid int) int {
	t.Helper()
	fewest := countFDs(t, pid)
	for i := 0; i < 19; i++ {
		time.Sleep(100 * time.Millisecond)
		fewest = min(fewest, countFDs(t, pid))
	}
	return fewest
}

// fdTargets lists what pid's descriptors point at.
func fdTargets(pid int) []string {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range entries {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+"->"+target)
	}
	return out
}

// memory is pid's current and peak RSS in KiB.
func memory(t *testing.T, pid int) (rss, hwm int) {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			v, _ := strconv.Atoi(f[1])
			if f[0] == "VmRSS:" {
				rss = v
			} else {
				hwm = v
			}
		}
	}
	return rss, hwm
}

// childrenOf counts pid's children, and those of them that are zombies.
func childrenOf(t *testing.T, pid int) (zombies, children int) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid …; comm may hold spaces, so cut at the last ')'.
		rest := string(raw[strings.LastIndexByte(string(raw), ')')+1:])
		f := strings.Fields(rest)
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			children++
			if f[0] == "Z" {
				zombies++
			}
		}
	}
	return zombies, children
}

// processesWithArgs lists the PIDs of processes whose command line is
// exactly argv.
func processesWithArgs(t *testing.T, argv ...string) []string {
	t.Helper()
	want := strings.Join(argv, "\x00") + "\x00"
	var pids []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if raw, err := os.ReadFile(p); err == nil && string(raw) == want {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// giveToNobody lets a daemon running as nobody use dirs inside the test's
// temporary directory, and reach them: the directories between it and the
// system's temporary directory get search permission. Nothing outside
// os.TempDir() is touched.
func giveToNobody(t *testing.T, dirs ...string) {
	t.Helper()
	top := filepath.Clean(os.TempDir())
	for _, d := range dirs {
		if !strings.HasPrefix(d, top+string(filepath.Separator)) {
			t.Fatalf("%s is not under %s", d, top)
		}
		os.MkdirAll(d, 0o755)
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		for p := filepath.Dir(d); p != top; p = filepath.Dir(p) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
				os.Chmod(p, fi.Mode().Perm()|0o011)
			}
		}
	}
}
