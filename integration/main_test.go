//go:build integration

// The integration tier: run as root with `go test -tags integration ./integration/`.
// Every test builds its own namespaces and tears them down, also on failure.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
)

// binary is the anycast-watchdog built once for the whole tier.
var binary string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("integration tests need root; skipping")
		os.Exit(0)
	}
	if binary = os.Getenv("AW_BINARY"); binary != "" {
		// Built by the caller: the tier runs inside another Debian's root
		// (TestLabOnFRR10), which has no Go.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "aw-integration-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "anycast-watchdog")
	build := exec.Command("go", "build", "-o", binary, "..")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Println("cannot build anycast-watchdog:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newLab returns a lab torn down when the test ends, pass or fail.
func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	for _, prog := range []string{"ip", "dnsmasq"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is missing: .ci/run installs it (apt-get install -y iproute2 dnsmasq-base)", prog)
		}
	}
	l, err := lab.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// nsName is unique per test and process, and short enough for FRR paths.
func nsName(t *testing.T, role string) string {
	return fmt.Sprintf("aw%d-%s", os.Getpid()%100000, role)
}
