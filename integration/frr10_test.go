//go:build integration

package integration

import (
	"cmp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
)

// frr10Tests are the lab tests that also run on Debian 13's FRR 10.3
// (TestLabOnFRR10): the router following health, a restart without a
// blip, failing open with every node failing, a drain through last resort,
// BGP, doctor's findings and the hostile local user. The 16-node fleet and
// the rest stay on the host's FRR 8.4, for CI's time.
const frr10Tests = "^(TestRouterFollowsServiceHealth|TestRouterKeepsNodeAcrossWatchdogRestart|TestFailOpenWhenEveryNodeFails|" +
	"TestDrainThroughLastResort|TestBGP|TestDoctorFindsEachMistake|TestSecondDaemonIsRefused|TestControlFloodIsBounded|" +
	"TestIdleConnectionsCannotExhaustDescriptors|TestPrefixSuppression)$"

// The lab tests of frr10Tests run again inside a Debian 13 root, on its
// FRR 10.3 (with mgmtd) and its ip and dnsmasq: this test binary and the
// daemon are built here, the root is chrooted into in a private mount
// namespace (lab.RunInRoot), and the run passes when every one passes.
// AW_FRR10_RUN, a -test.run pattern, runs other tests there instead.
func TestLabOnFRR10(t *testing.T) {
	if os.Getenv("AW_BINARY") != "" {
		t.Skip("already inside another Debian's root")
	}
	start := time.Now()
	root, bin, repo := frr10Root(t)
	frr, _ := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	t.Logf("Debian 13 root ready after %s (frr %s)", time.Since(start).Round(time.Second), packageVersion(string(frr), "frr"))
	out, err := lab.RunInRoot(root, map[string]string{repo: "/src", bin: "/tmp/aw"}, []string{"AW_BINARY=/tmp/aw/anycast-watchdog", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		"sh", "-c", `cd /src/integration && exec /tmp/aw/integration.test -test.v -test.count=1 -test.timeout=20m -test.run "$0"`, cmp.Or(os.Getenv("AW_FRR10_RUN"), frr10Tests))
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--- ") || strings.Contains(line, "_test.go:") {
			t.Log(line)
		}
	}
	if err != nil {
		t.Fatalf("the lab on FRR 10.3: %v\n%s", err, tailLines(string(out), 200))
	}
	if os.Getenv("AW_FRR10_RUN") == "" && !strings.Contains(string(out), "--- PASS: TestBGP") {
		t.Fatalf("the lab on FRR 10.3 ran nothing:\n%s", tailLines(string(out), 50))
	}
	t.Logf("the lab on FRR 10.3 took %s", time.Since(start).Round(time.Second))
}

// frr10Root makes a fresh Debian 13 root for the test (the booted tests'
// cached one) and builds, on the host, this test binary and the daemon
// into bin, to be bound at /tmp/aw in the root (tests that run the daemon
// as nobody need it under the temporary directory); repo is the source
// tree, to be bound at /src.
func frr10Root(t *testing.T) (root, bin, repo string) {
	t.Helper()
	dir := t.TempDir()
	root, bin = filepath.Join(dir, "root"), filepath.Join(dir, "aw")
	if err := lab.Rootfs(rootfsCache, root, lab.Trixie); err != nil {
		t.Fatal(err)
	}
	for argv, what := range map[*exec.Cmd]string{
		exec.Command("go", "test", "-c", "-tags", "integration", "-o", filepath.Join(bin, "integration.test"), "."): "the test binary",
		exec.Command("go", "build", "-o", filepath.Join(bin, "anycast-watchdog"), ".."):                             "the daemon",
	} {
		argv.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := argv.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", what, err, out)
		}
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root, bin, repo
}

// packageVersion is a package's Version in a dpkg status file.
func packageVersion(status, pkg string) string {
	for _, stanza := range strings.Split(status, "\n\n") {
		if strings.HasPrefix(stanza, "Package: "+pkg+"\n") {
			for _, line := range strings.Split(stanza, "\n") {
				if v, ok := strings.CutPrefix(line, "Version: "); ok {
					return v
				}
			}
		}
	}
	return "unknown"
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
