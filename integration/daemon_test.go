//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

var (
	anycastV4 = netip.MustParsePrefix("192.0.2.53/32")
	anycastV6 = netip.MustParsePrefix("2001:db8::53/128")
)

const (
	interval     = 300 * time.Millisecond
	fastInterval = 100 * time.Millisecond
	fall         = 2
	rise         = 2
)

// node is one anycast host: a namespace with a DNS server and the daemon.
type node struct {
	t      *testing.T
	ns     *lab.Namespace
	dns    *lab.Process
	daemon *lab.Process
	config string
}

func newNode(t *testing.T, l *lab.Lab, role string) *node {
	t.Helper()
	ns, err := l.AddNamespace(nsName(t, role))
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, ns: ns, config: filepath.Join(l.Dir, role+".yaml")}
	n.writeConfig(lab.WatchdogConfig{OnExit: "keep", LogLevel: "debug", Dir: l.Dir, Name: role,
		Interval: interval, FastInterval: fastInterval, Rise: rise, Fall: fall})
	return n
}

func (n *node) writeConfig(c lab.WatchdogConfig) {
	n.t.Helper()
	if err := c.Write(n.config); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) writeRaw(body string) {
	n.t.Helper()
	if err := os.WriteFile(n.config, []byte(body), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) startDNS() {
	n.t.Helper()
	p, err := n.ns.DNSServer("dnsmasq", "198.51.100.99")
	if err != nil {
		n.t.Fatal(err)
	}
	n.dns = p
	if _, ok := lab.WaitFor(3*time.Second, func() bool {
		answer, err := n.ns.Query("127.0.0.1:53", "health.example.", time.Second)
		return err == nil && answer == "198.51.100.99"
	}); !ok {
		n.t.Fatalf("dnsmasq does not answer; log:\n%s", p.Log())
	}
}

func (n *node) startDaemon() {
	n.t.Helper()
	p, err := n.ns.Start("anycast-watchdog", binary, "run", "--config", n.config)
	if err != nil {
		n.t.Fatal(err)
	}
	n.daemon = p
}

func (n *node) has(p netip.Prefix) bool { return n.ns.Has("lo", p) }

// waitBoth waits until both anycast prefixes are present (or both absent).
func (n *node) waitBoth(present bool, within time.Duration, what string) time.Duration {
	n.t.Helper()
	took, ok := lab.WaitFor(within, func() bool {
		return n.has(anycastV4) == present && n.has(anycastV6) == present
	})
	if !ok {
		addrs, _ := n.ns.Addresses("lo")
		n.t.Fatalf("%s: not within %s; lo has %v; daemon log:\n%s", what, within, addrs, n.daemon.Log())
	}
	return took
}

func TestDaemonAddsWithdrawsAndRestores(t *testing.T) {
	n := newNode(t, newLab(t), "core")
	n.startDNS()
	n.startDaemon()

	n.waitBoth(true, interval+rise*fastInterval+2*time.Second, "healthy service is advertised")
	if n.daemon.Exited() {
		t.Fatalf("daemon exited:\n%s", n.daemon.Log())
	}

	// Withdraw: the first failing round comes within one interval, the
	// service is down fall-1 fast intervals later.
	n.dns.Stop(2 * time.Second)
	bound := interval + (fall-1)*fastInterval + time.Second
	took := n.waitBoth(false, bound, "failed service is withdrawn")
	t.Logf("withdrawn %s after the DNS server stopped (bound %s)", took.Round(time.Millisecond), bound)

	// Restore.
	n.startDNS()
	took = n.waitBoth(true, interval+rise*fastInterval+time.Second, "recovered service is restored")
	t.Logf("restored %s after the DNS server came back", took.Round(time.Millisecond))

	log := n.daemon.Log()
	for _, want := range []string{
		`msg="service down" check="dns 127.0.0.1:53 health.example./A udp" error=`,
		`msg="removed address"`,
		`msg="service up" from=rising prefixes="192.0.2.53/32,2001:db8::53/128" reason="2 consecutive passing rounds (rise 2)"`,
		`msg="added address"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("daemon log lacks %s:\n%s", want, log)
		}
	}
}

func TestDaemonPutsBackHandEdits(t *testing.T) {
	n := newNode(t, newLab(t), "hand")
	n.startDNS()
	n.startDaemon()
	n.waitBoth(true, 5*time.Second, "advertised")

	if _, err := n.ns.Run("ip", "addr", "del", anycastV4.String(), "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	took := n.waitBoth(true, 2*interval+time.Second, "address removed by hand is put back")
	t.Logf("put back %s after the removal (the interface's watch reports it; reconcile ticks every %s)", took.Round(time.Millisecond), interval)
	if strings.Contains(n.daemon.Log(), "cannot watch the interface's addresses") {
		t.Errorf("the interface was not watched:\n%s", n.daemon.Log())
	}
	if !strings.Contains(n.daemon.Log(), "address changed outside anycast-watchdog; putting it back") {
		t.Errorf("no log line for the hand edit:\n%s", n.daemon.Log())
	}
}

func TestDaemonKeepsRunningConfigOnBadReload(t *testing.T) {
	n := newNode(t, newLab(t), "reload")
	n.startDNS()
	n.startDaemon()
	n.waitBoth(true, 5*time.Second, "advertised")

	good, _ := os.ReadFile(n.config)
	n.writeRaw("services: [ this is : not yaml")
	n.daemon.Signal(syscall.SIGHUP)
	if _, ok := lab.WaitFor(3*time.Second, func() bool {
		return strings.Contains(n.daemon.Log(), "reload failed; the running configuration stays")
	}); !ok {
		t.Fatalf("no reload failure logged:\n%s", n.daemon.Log())
	}
	// Still guarding: a failure still withdraws.
	n.dns.Stop(2 * time.Second)
	n.waitBoth(false, interval+(fall-1)*fastInterval+time.Second, "withdrawn under the kept configuration")

	n.writeRaw(string(good))
	n.daemon.Signal(syscall.SIGHUP)
	if _, ok := lab.WaitFor(3*time.Second, func() bool {
		return strings.Contains(n.daemon.Log(), "configuration reloaded")
	}); !ok {
		t.Fatalf("good config not reloaded:\n%s", n.daemon.Log())
	}
}

// A restart of the daemon (SIGTERM with on_exit: keep, or SIGKILL) must
// never take a healthy node's address away, not even for 10 ms.
func TestDaemonRestartNeverBlipsHealthyService(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			n := newNode(t, newLab(t), "restart")
			n.startDNS()
			n.startDaemon()
			n.waitBoth(true, 5*time.Second, "advertised")

			stop := lab.Watch(10*time.Millisecond, func() string {
				if !n.has(anycastV4) || !n.has(anycastV6) {
					return time.Now().Format("15:04:05.000")
				}
				return ""
			})
			n.daemon.Signal(sig)
			code, err := n.daemon.Wait(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if sig == syscall.SIGTERM && code != 0 {
				t.Errorf("SIGTERM: exit code %d, want 0; log:\n%s", code, n.daemon.Log())
			}
			// Its interface watch (ip monitor) goes with it.
			if _, ok := lab.WaitFor(time.Second, func() bool { return len(ipMonitors(t, n.ns)) == 0 }); !ok {
				t.Errorf("after %s the daemon's ip monitor still runs: %v", sig, ipMonitors(t, n.ns))
			}
			n.startDaemon()
			time.Sleep(3 * interval) // several rounds of the new daemon
			if at := stop(); at != "" {
				t.Fatalf("a healthy address was missing at %s; log:\n%s", at, n.daemon.Log())
			}
			if !strings.Contains(n.daemon.Log(), "prefixes already on the interface at start") {
				t.Errorf("restarted daemon did not start the service as up:\n%s", n.daemon.Log())
			}
		})
	}
}

// ipMonitors lists the `ip monitor` processes in ns, by PID and command line.
func ipMonitors(t *testing.T, ns *lab.Namespace) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", ns.Name).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", ns.Name, err)
	}
	var found []string
	for _, pid := range strings.Fields(string(out)) {
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		if args := strings.Split(string(cmdline), "\x00"); len(args) > 2 && filepath.Base(args[0]) == "ip" && slices.Contains(args, "monitor") {
			found = append(found, pid+": "+strings.Join(args, " "))
		}
	}
	return found
}

func TestDaemonWithdrawsOnExitWhenConfigured(t *testing.T) {
	n := newNode(t, newLab(t), "onexit")
	cfg, _ := os.ReadFile(n.config)
	n.writeRaw(strings.Replace(string(cfg), "on_exit: keep", "on_exit: withdraw", 1))
	n.startDNS()
	n.startDaemon()
	n.waitBoth(true, 5*time.Second, "advertised")
	n.daemon.Signal(syscall.SIGTERM)
	if code, err := n.daemon.Wait(5 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	if n.has(anycastV4) || n.has(anycastV6) {
		t.Errorf("on_exit: withdraw left addresses behind")
	}
}

// An exec check with user: runs as that user with no capability; the same
// check without it runs as the daemon (root here) and fails.
func TestExecCheckRunsAsItsUser(t *testing.T) {
	l := newLab(t)
	n := newNode(t, l, "user")
	asNobody, asDaemon := netip.MustParsePrefix("192.0.2.60/32"), netip.MustParsePrefix("192.0.2.61/32")
	check := `[/bin/sh, -c, 'test "$(id -u)" = 65534 && grep -q "^CapEff:[[:space:]]*0000000000000000$" /proc/self/status']`
	n.writeRaw(fmt.Sprintf(`control_socket: %[1]s/user.sock
state_dir: %[1]s/user-state
metrics_listen: ""
frr: {verify: false}
services:
  - name: as-nobody
    prefixes: [%[2]s]
    interval: 200ms
    rise: 1
    checks:
      - {type: exec, user: nobody, command: %[4]s}
  - name: as-daemon
    prefixes: [%[3]s]
    interval: 200ms
    rise: 1
    checks:
      - {type: exec, command: %[4]s}
`, l.Dir, asNobody, asDaemon, check))
	n.startDaemon()
	if _, ok := lab.WaitFor(5*time.Second, func() bool { return n.has(asNobody) }); !ok {
		t.Fatalf("the check run as nobody never passed:\n%s", n.daemon.Log())
	}
	waitLog(t, n.daemon, 3*time.Second, `msg="every service has its first verdict; ready" status="2 services: 1 up, 1 down (as-daemon: exit)"`)
	if n.has(asDaemon) {
		t.Errorf("the check run as root passed: it did not test the user")
	}
}

// A check program that another user can change (here nobody, who owns its
// directory) would run their code as the daemon: check-config and the
// start refuse it, naming the directory, its owner and the fix, and the
// program never runs. One that becomes nobody's while the daemon runs is
// not run either: its check fails as untrusted, the service is withdrawn
// with that reason, and doctor reports it.
func TestUntrustedExecProgramIsNeverRun(t *testing.T) {
	l := newLab(t)
	n := newNode(t, l, "trust")
	ran := filepath.Join(l.Dir, "ran-as") // each run of a check program appends its uid
	theirs := filepath.Join(l.Dir, "nobodys")
	writeOwned := func(path string, uid int) {
		t.Helper()
		if err := os.WriteFile(path, []byte("#!/bin/sh\nid -u >> "+ran+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(theirs, 65534, 65534)
	writeOwned(filepath.Join(theirs, "check.sh"), 65534)
	config := func(prog string) {
		n.writeRaw(fmt.Sprintf(`control_socket: %[1]s/trust.sock
state_dir: %[1]s/trust-state
metrics_listen: ""
frr: {verify: false}
services:
  - name: script
    prefixes: [%[2]s]
    interval: 200ms
    fast_interval: 100ms
    rise: 1
    fall: 2
    checks:
      - {type: exec, command: [%[3]s]}
`, l.Dir, anycastV4, prog))
	}

	config(filepath.Join(theirs, "check.sh"))
	out, err := exec.Command(binary, "check-config", "--config", n.config).CombinedOutput()
	want := theirs + " (on the path of " + theirs + "/check.sh) is owned by uid 65534, neither root nor the daemon's user (uid 0)"
	if err == nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "chown root:root "+theirs) {
		t.Errorf("check-config on a program in nobody's directory: %v\n%s", err, out)
	}
	n.startDaemon()
	if _, ok := lab.WaitFor(5*time.Second, n.daemon.Exited); !ok || !strings.Contains(n.daemon.Log(), want) {
		t.Fatalf("the daemon started with an untrusted program:\n%s", n.daemon.Log())
	}
	if _, err := os.Stat(ran); err == nil {
		t.Fatal("the untrusted program ran")
	}

	// Root's program in root's directory runs; then it becomes nobody's.
	prog := filepath.Join(l.Dir, "check.sh")
	writeOwned(prog, 0)
	config(prog)
	n.startDaemon()
	if _, ok := lab.WaitFor(5*time.Second, func() bool { return n.has(anycastV4) }); !ok {
		t.Fatalf("never advertised with root's program:\n%s", n.daemon.Log())
	}
	os.Chown(prog, 65534, 65534)
	changed := time.Now()
	if _, ok := lab.WaitFor(3*time.Second, func() bool { return !n.has(anycastV4) }); !ok {
		t.Fatalf("still advertised after the program became nobody's:\n%s", n.daemon.Log())
	}
	runs := func() []string {
		data, _ := os.ReadFile(ran)
		return strings.Fields(string(data))
	}
	before := len(runs())
	waitLog(t, n.daemon, time.Second, `msg="service down" check="exec `+prog+`" error="not run: `+prog+` is owned by uid 65534`)
	// Five more failing rounds: none of them may have run the program.
	var st status.Document
	if _, ok := lab.WaitFor(5*time.Second, func() bool {
		// The configuration names an untrusted program now: status still
		// finds the daemon's socket through it.
		out, err := exec.Command(binary, "status", "--json", "--config", n.config).Output()
		return err == nil && json.Unmarshal(out, &st) == nil && len(st.Services) == 1 && st.Services[0].Fails >= fall+5
	}); !ok {
		t.Fatalf("status never showed five more failing rounds: %+v\n%s", st.Services, n.daemon.Log())
	}
	if c := st.Services[0].Checks[0]; c.Reason != "untrusted" || st.Services[0].State != "down" {
		t.Errorf("status after the chown: %s, check %+v", st.Services[0].State, c)
	}
	if got := runs(); len(got) != before || strings.Join(got, "") != strings.Repeat("0", len(got)) {
		t.Errorf("runs %s after the chown: %v (had %d)", time.Since(changed).Round(time.Millisecond), got, before)
	}
	out, _ = exec.Command(binary, "doctor", "--json", "--config", n.config).Output()
	if !strings.Contains(string(out), `"check": "untrusted-program"`) || !strings.Contains(string(out), `"object": "`+prog+`"`) {
		t.Errorf("doctor does not report the program:\n%s", out)
	}
}
