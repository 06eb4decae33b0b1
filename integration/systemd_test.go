//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// rootfsCache keeps the debootstrapped Debian 12 between runs on a machine.
const rootfsCache = "/var/cache/anycast-watchdog-tests"

// buildDeb builds the package at version with a static binary reporting
// binaryVersion, as `make deb` does.
func buildDeb(t *testing.T, dir, version, binaryVersion string) string {
	t.Helper()
	bin := filepath.Join(dir, "anycast-watchdog-"+version)
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+binaryVersion, "-o", bin, "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	deb := filepath.Join(dir, "anycast-watchdog_"+version+"_amd64.deb")
	if out, err := exec.Command("../packaging/deb/build.sh", version, bin, deb).CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v: %s", err, out)
	}
	return deb
}

// debian is a booted Debian (lab.Bookworm or lab.Trixie) in systemd-nspawn
// with frr.service running ospfd (the anycast range on lo covered) and the
// packages given copied to /root.
type debian struct {
	t    *testing.T
	c    *lab.Container
	root string
}

// suites are the Debian releases the package is proven on, and the FRR
// each must bring (docs/operations.md's platform table says so).
var (
	suites   = []string{lab.Bookworm, lab.Trixie}
	suiteFRR = map[string]string{lab.Bookworm: "8.4.", lab.Trixie: "10.3"}
)

// bootDebian boots a fresh copy of the suite's cached root file system;
// its cleanup shuts the container down.
func bootDebian(t *testing.T, dir, suite string, debs ...string) *debian {
	t.Helper()
	for _, prog := range []string{"systemd-nspawn", "debootstrap", "nsenter", "dpkg-deb", "systemd-analyze"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is missing: .ci/run installs it (systemd-container debootstrap util-linux dpkg systemd)", prog)
		}
	}
	start := time.Now()
	root := filepath.Join(dir, "root")
	if err := lab.Rootfs(rootfsCache, root, suite); err != nil {
		t.Fatal(err)
	}
	for _, deb := range debs {
		if out, err := exec.Command("cp", deb, filepath.Join(root, "root")).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	// FRR: ospfd on, the anycast range on lo covered.
	daemons := filepath.Join(root, "etc/frr/daemons")
	raw, err := os.ReadFile(daemons)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(daemons, []byte(strings.Replace(string(raw), "ospfd=no", "ospfd=yes", 1)), 0o644)
	os.WriteFile(filepath.Join(root, "etc/frr/frr.conf"), []byte(`frr defaults traditional
hostname awct
interface lo
 ip ospf passive
!
router ospf
 ospf router-id 203.0.113.1
 network 192.0.2.0/24 area 0
!
`), 0o640)
	t.Logf("rootfs ready after %s", time.Since(start).Round(time.Second))
	c, err := lab.Boot(root, fmt.Sprintf("aw%d%s", os.Getpid()%100000, suite[:1]), filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(30 * time.Second) })
	debianVersion := strings.TrimSpace(mustExec(t, c, "cat", "/etc/debian_version"))
	frrVersion := strings.TrimSpace(mustExec(t, c, "dpkg-query", "-W", "-f=${Version}", "frr"))
	if want := suiteFRR[suite]; !strings.HasPrefix(frrVersion, want) {
		t.Fatalf("%s has frr %s, want %s*: the platform table would be wrong", suite, frrVersion, want)
	}
	t.Logf("%s booted after %s: Debian %s, frr %s", suite, time.Since(start).Round(time.Second), debianVersion, frrVersion)
	return &debian{t: t, c: c, root: root}
}

func mustExec(t *testing.T, c *lab.Container, argv ...string) string {
	t.Helper()
	out, err := c.Exec(argv...)
	if err != nil {
		t.Fatalf("%s: %v:\n%s", strings.Join(argv, " "), err, out)
	}
	return out
}

// run runs argv in the container and fails the test if it fails.
func (d *debian) run(argv ...string) string {
	d.t.Helper()
	return mustExec(d.t, d.c, argv...)
}

// show is a property of a unit, from systemctl show.
func (d *debian) show(unit, prop string) string {
	d.t.Helper()
	return strings.TrimSpace(d.run("systemctl", "show", "-p", prop, "--value", unit))
}

// journal is a unit's journal, messages only.
func (d *debian) journal(unit string) string {
	out, _ := d.c.Exec("journalctl", "-u", unit, "--no-pager", "-o", "cat")
	return out
}

// The package in a booted Debian 12 (FRR 8.4) and Debian 13 (FRR 10.3)
// with frr.service running ospfd.
func TestPackageUnderSystemd(t *testing.T) {
	dir := t.TempDir()
	debV1 := buildDeb(t, dir, "0.1.0-1", "0.1.0")
	debV2 := buildDeb(t, dir, "0.1.0-2", "0.1.0+upgrade")
	for _, suite := range suites {
		t.Run(suite, func(t *testing.T) { packageUnderSystemd(t, suite, debV1, debV2) })
	}
}

func packageUnderSystemd(t *testing.T, suite, debV1, debV2 string) {
	start := time.Now()
	box := bootDebian(t, t.TempDir(), suite, debV1, debV2)
	c, root, run := box.c, box.root, box.run
	show := func(prop string) string { return box.show("anycast-watchdog", prop) }
	journal := func() string { return box.journal("anycast-watchdog") }

	// 1. Install: the unit becomes active, which for Type=notify means
	// READY=1 arrived; status answers.
	run("dpkg", "-i", "/root/"+filepath.Base(debV1))
	if _, ok := lab.WaitFor(20*time.Second, func() bool { return show("ActiveState") == "active" }); !ok {
		t.Fatalf("not active: %s/%s\n%s", show("ActiveState"), show("SubState"), journal())
	}
	if out := run("anycast-watchdog", "status"); !strings.Contains(out, "no services configured; managing no address") {
		t.Errorf("status after install:\n%s", out)
	}
	if out, _ := c.Exec("systemd-analyze", "verify", "/usr/lib/systemd/system/anycast-watchdog.service"); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify of the installed unit said:\n%s", out)
	}
	if out := show("StatusText"); !strings.Contains(out, "no services configured") {
		t.Errorf("STATUS= %q", out)
	}

	// 2. A service whose check passes (ospfd's vty port) is advertised.
	configPath := filepath.Join(root, "etc/anycast-watchdog/config.yaml")
	config := `interface: lo
on_exit: keep
services:
  - name: ospf
    prefixes: [192.0.2.53/32]
    interval: 500ms
    fast_interval: 100ms
    rise: 2
    fall: 2
    checks:
      - type: tcp
        address: 127.0.0.1:2604
  # Passes only if a check runs with no capability at all, while ip still
  # gets CAP_NET_ADMIN to add the address.
  - name: nocaps
    prefixes: [192.0.2.54/32]
    interval: 500ms
    fast_interval: 100ms
    rise: 2
    checks:
      - type: exec
        command: [/bin/sh, -c, "grep -q '^CapEff:[[:space:]]*0000000000000000$' /proc/self/status"]
`
	os.WriteFile(configPath, []byte(config), 0o644)
	run("systemctl", "reload", "anycast-watchdog")
	var st status.Document
	if _, ok := lab.WaitFor(20*time.Second, func() bool {
		out, err := c.Exec("anycast-watchdog", "status", "--json")
		st = status.Document{}
		return err == nil && json.Unmarshal([]byte(out), &st) == nil && len(st.Services) == 2 &&
			st.Services[0].Prefixes[0].Present && st.Services[0].Prefixes[0].Advertised == "yes" &&
			st.Services[1].State == "up" && st.Services[1].Prefixes[0].Present
	}); !ok {
		t.Fatalf("never present and advertised: %+v\n%s", st, journal())
	}
	t.Log("advertised, confirmed by vtysh under the unit's hardening; an exec check saw CapEff 0 while ip added the address")

	// 2b. The control socket: any user reads status; only root and members
	// of group anycast-watchdog change anything. Real users, made in the
	// container: alice is in the group, bob is not.
	run("useradd", "--no-create-home", "bob")
	run("useradd", "--no-create-home", "--groups", "anycast-watchdog", "alice")
	as := func(who string, argv ...string) (string, error) {
		return c.Exec(append([]string{"setpriv", "--reuid", who, "--regid", who, "--init-groups", "anycast-watchdog"}, argv...)...)
	}
	if out, err := as("bob", "status"); err != nil || !strings.Contains(out, "nocaps") {
		t.Errorf("bob's status: %v:\n%s", err, out)
	}
	for _, cmd := range [][]string{{"drain", "nocaps"}, {"check", "nocaps"}, {"reload"}} {
		out, err := as("bob", cmd...)
		if err == nil || !strings.Contains(out, "permission denied: "+cmd[0]+" needs root or membership of group anycast-watchdog") {
			t.Errorf("bob's %s was not refused: %v:\n%s", cmd[0], err, out)
		}
	}
	if out, err := as("alice", "check", "nocaps"); err != nil || !strings.Contains(out, "pass") {
		t.Errorf("alice's check: %v:\n%s", err, out)
	}
	if out, err := as("alice", "drain", "nocaps", "--reason", "access test", "--force"); err != nil || !strings.Contains(out, "drained") {
		t.Errorf("alice's drain: %v:\n%s", err, out)
	}
	if out, err := as("alice", "undrain", "nocaps"); err != nil || !strings.Contains(out, "undrained") {
		t.Errorf("alice's undrain: %v:\n%s", err, out)
	}
	if j := journal(); !strings.Contains(j, `msg="control socket: request refused: not root and not in the daemon's group" by="uid 1000 (bob)`) ||
		!strings.Contains(j, `msg="service drained: withdrawn whatever its checks say" by="uid 1001 (alice)`) {
		t.Errorf("journal does not say who was refused and who drained:\n%s", j)
	}

	// 2c. user: on an exec check. The packaged unit cannot switch users, so
	// the daemon refuses the key on reload; with the drop-in that docs/operations.md
	// gives, the check runs as nobody with no capability.
	os.WriteFile(configPath, []byte(config+`  - name: asnobody
    prefixes: [192.0.2.55/32]
    interval: 500ms
    fast_interval: 100ms
    rise: 2
    checks:
      - type: exec
        user: nobody
        command: [/bin/sh, -c, 'test "$(id -u)" = 65534 && grep -q "^CapEff:[[:space:]]*0000000000000000$" /proc/self/status']
`), 0o644)
	if out, err := c.Exec("anycast-watchdog", "reload"); err == nil || !strings.Contains(out, "without CAP_SETUID and CAP_SETGID") {
		t.Errorf("reload with user: under the packaged unit: %v:\n%s", err, out)
	}
	dropin := filepath.Join(root, "etc/systemd/system/anycast-watchdog.service.d")
	os.MkdirAll(dropin, 0o755)
	os.WriteFile(filepath.Join(dropin, "user.conf"), []byte(`[Service]
AmbientCapabilities=CAP_NET_ADMIN CAP_SETUID CAP_SETGID
CapabilityBoundingSet=CAP_NET_ADMIN CAP_SETUID CAP_SETGID
SystemCallFilter=@setuid
`), 0o644)
	run("systemctl", "daemon-reload")
	run("systemctl", "restart", "anycast-watchdog")
	if _, ok := lab.WaitFor(20*time.Second, func() bool {
		out, err := c.Exec("anycast-watchdog", "status", "--json")
		st = status.Document{}
		return err == nil && json.Unmarshal([]byte(out), &st) == nil && len(st.Services) == 3 &&
			st.Services[2].State == "up" && st.Services[2].Prefixes[0].Present
	}); !ok {
		t.Fatalf("the check run as nobody never passed under the drop-in: %+v\n%s", st, journal())
	}
	t.Log("user: refused by the packaged unit; with docs/operations.md's drop-in an exec check ran as nobody with CapEff 0")

	// Every change from here on must keep the address: watch it.
	stop := make(chan struct{})
	defer close(stop)
	events, err := c.Monitor(stop)
	if err != nil {
		t.Fatal(err)
	}
	noWithdrawal := func(step string) {
		t.Helper()
		for {
			select {
			case line := <-events:
				if strings.Contains(line, "Deleted") && strings.Contains(line, "192.0.2.53") {
					t.Fatalf("%s: the healthy address was removed: %s", step, line)
				}
			default:
				if out := run("ip", "-br", "addr", "show", "dev", "lo"); !strings.Contains(out, "192.0.2.53/32") {
					t.Fatalf("%s: address missing: %s", step, out)
				}
				return
			}
		}
	}

	// 3. A frozen daemon stops pinging; systemd kills and restarts it.
	restarts, pid := show("NRestarts"), show("MainPID")
	run("kill", "-STOP", pid)
	if _, ok := lab.WaitFor(30*time.Second, func() bool {
		return show("NRestarts") != restarts && show("ActiveState") == "active" && show("MainPID") != pid
	}); !ok {
		t.Fatalf("not restarted by the watchdog: NRestarts %s, %s\n%s", show("NRestarts"), show("ActiveState"), journal())
	}
	if j := journal(); !strings.Contains(j, "Watchdog timeout") {
		t.Errorf("journal does not show the watchdog:\n%s", j)
	}
	time.Sleep(time.Second)
	noWithdrawal("watchdog restart")
	t.Logf("watchdog restart after %s", time.Since(start).Round(time.Second))

	// 4. An upgrade restarts the daemon without withdrawing the address.
	run("dpkg", "-i", "--force-confold", "/root/"+filepath.Base(debV2))
	if _, ok := lab.WaitFor(20*time.Second, func() bool {
		out, _ := c.Exec("anycast-watchdog", "status")
		return show("ActiveState") == "active" && strings.Contains(out, "anycast-watchdog 0.1.0+upgrade")
	}); !ok {
		t.Fatalf("upgrade did not take: %s\n%s", show("ActiveState"), journal())
	}
	time.Sleep(time.Second)
	noWithdrawal("upgrade")

	// 5. Remove stops it and keeps the configuration; purge removes it.
	run("dpkg", "-r", "anycast-watchdog")
	if s := show("ActiveState"); s == "active" {
		t.Errorf("still %s after dpkg -r", s)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/anycast-watchdog/config.yaml")); err != nil {
		t.Errorf("dpkg -r removed the configuration: %v", err)
	}
	run("dpkg", "-P", "anycast-watchdog")
	for _, p := range []string{"etc/anycast-watchdog", "var/lib/anycast-watchdog", "usr/sbin/anycast-watchdog"} {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("dpkg -P left /%s (%v)", p, err)
		}
	}
	t.Logf("systemd tier took %s", time.Since(start).Round(time.Second))
}

// Debian 13's lintian passes the amd64 and the arm64 package, run inside
// a Debian 13 root (make lint-deb runs the host's, Debian 12's): trixie's
// checks are newer (it flags files in aliased locations such as /lib).
func TestLintianOnDebian13(t *testing.T) {
	dir := t.TempDir()
	debs := filepath.Join(dir, "debs")
	for _, arch := range []string{"amd64", "arm64"} {
		bin := filepath.Join(dir, arch, "anycast-watchdog")
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=0.1.0", "-o", bin, "..")
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+arch)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v: %s", arch, err, out)
		}
		if out, err := exec.Command("../packaging/deb/build.sh", "0.1.0-1", bin, filepath.Join(debs, "anycast-watchdog_0.1.0-1_"+arch+".deb")).CombinedOutput(); err != nil {
			t.Fatalf("build.sh %s: %v: %s", arch, err, out)
		}
	}
	root := filepath.Join(dir, "root")
	if err := lab.LintianRoot(rootfsCache, root, lab.Trixie); err != nil {
		t.Fatal(err)
	}
	out, err := lab.RunInRoot(root, map[string]string{debs: "/debs"}, []string{"PATH=/usr/bin:/bin"},
		"sh", "-c", "lintian --version && lintian --fail-on error,warning --info /debs/anycast-watchdog_0.1.0-1_amd64.deb /debs/anycast-watchdog_0.1.0-1_arm64.deb")
	if err != nil {
		t.Fatalf("Debian 13's lintian: %v\n%s", err, out)
	}
	t.Logf("Debian 13's %s: no error, no warning on the amd64 and arm64 packages", strings.SplitN(string(out), "\n", 2)[0])
}
