//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
)

// TestCaptureLSDB writes the frr package's LSDB fixtures, as this
// machine's FRR answers the daemon's own reads (frr.Client.LSDB, its
// commands recorded), into $AW_CAPTURE_DIR; it runs only when that is set
// (make capture-frr10 sets it, inside the Debian 13 root). Three nodes and
// a router, no daemon: node 1 with the anycast prefixes on lo, node 2 on
// its last-resort interface, node 3 with neither ("mixed", read on node 3;
// "self-primary", read on node 1), then node 1 at last resort too
// ("all-last-resort", read on node 3); and each node's own LSAs alone
// (frr.Self: "own-primary", "own-last-resort", "own-none", read on nodes
// 1, 2 and 3 in the first state). The 8.4.4 fixtures are the same states.
func TestCaptureLSDB(t *testing.T) {
	out := os.Getenv("AW_CAPTURE_DIR")
	if out == "" {
		t.Skip("AW_CAPTURE_DIR is not set: fixtures are captured on demand (make capture-frr10)")
	}
	a := buildAnycastLab(t, lab.AnycastOptions{Nodes: 3, MinArrival0: true, LastResort: true})
	n1, n2, n3 := a.Nodes[0], a.Nodes[1], a.Nodes[2]
	move := func(n *lab.Node, from, to string) {
		t.Helper()
		for _, p := range []netip.Prefix{lab.AnycastV4, lab.AnycastV6} {
			if from != "" {
				if _, err := n.NS.Run("ip", "addr", "del", p.String(), "dev", from); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := n.NS.Run("ip", "addr", "add", p.String(), "dev", to); err != nil {
				t.Fatal(err)
			}
		}
	}
	move(n1, "", "lo")
	move(n2, "", lab.LastResortDev)
	// capture waits until n's read of fam shows the anycast prefix
	// advertised at want (router ID → metric class), then writes the raw
	// answer to name.
	capture := func(n *lab.Node, fam frr.Family, scope frr.Scope, name string, want map[string]bool) {
		t.Helper()
		var mu sync.Mutex
		var raw []byte
		rec := func(ctx context.Context, argv ...string) ([]byte, error) {
			b, err := command.Run(ctx, argv...)
			mu.Lock()
			raw = b
			mu.Unlock()
			return b, err
		}
		client := frr.New(func(ctx context.Context, argv ...string) ([]byte, error) {
			return rec(ctx, append([]string{"ip", "netns", "exec", n.NS.Name}, argv...)...)
		}, "vtysh", n.NS.Name, 5*time.Second)
		p := lab.AnycastV4
		if fam == frr.IPv6 {
			p = lab.AnycastV6
		}
		var got map[string]bool
		if _, ok := lab.WaitFor(30*time.Second, func() bool {
			fleet, err := client.LSDB(context.Background(), fam, scope)
			if err != nil {
				return false
			}
			got = map[string]bool{}
			for _, adv := range fleet.Prefixes[p] {
				got[adv.RouterID] = adv.Metric >= 65535
			}
			return fmt.Sprint(got) == fmt.Sprint(want)
		}); !ok {
			t.Fatalf("%s: %s's LSDB shows %v for %s, want %v (router ID → at last resort)", name, n.NS.Name, got, p, want)
		}
		mu.Lock()
		defer mu.Unlock()
		if err := os.WriteFile(filepath.Join(out, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes from %s", name, len(raw), n.NS.Name)
	}
	mixed := map[string]bool{"203.0.113.1": false, "203.0.113.2": true}
	for _, fam := range frr.Families() {
		prefix := map[frr.Family]string{frr.IPv4: "ospf", frr.IPv6: "ospf6"}[fam]
		capture(n3, fam, frr.Area, prefix+"-lsdb-mixed.json", mixed)
		capture(n1, fam, frr.Area, prefix+"-lsdb-self-primary.json", mixed)
		capture(n1, fam, frr.Self, prefix+"-lsdb-own-primary.json", map[string]bool{"203.0.113.1": false})
		capture(n2, fam, frr.Self, prefix+"-lsdb-own-last-resort.json", map[string]bool{"203.0.113.2": true})
		capture(n3, fam, frr.Self, prefix+"-lsdb-own-none.json", map[string]bool{})
	}
	move(n1, "lo", lab.LastResortDev)
	for _, fam := range frr.Families() {
		prefix := map[frr.Family]string{frr.IPv4: "ospf", frr.IPv6: "ospf6"}[fam]
		capture(n3, fam, frr.Area, prefix+"-lsdb-all-last-resort.json", map[string]bool{"203.0.113.1": true, "203.0.113.2": true})
	}
	files, _ := os.ReadDir(out)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	slices.Sort(names)
	t.Logf("captured into %s: %s", out, strings.Join(names, " "))
}

// TestCaptureFRR10 captures the frr package's fixtures from Debian 13's
// FRR 10.3 into $AW_CAPTURE_FRR10 and doctor's into $AW_CAPTURE_DOCTOR_FRR10
// (it runs only when the first is set: make capture-frr10):
// TestCaptureLSDB, frr/testdata/capture-bgp.sh and
// doctor/testdata/capture.sh, run in the Debian 13 root as TestLabOnFRR10
// runs the lab. bgp's recipe running-config is doctor's.
func TestCaptureFRR10(t *testing.T) {
	out := os.Getenv("AW_CAPTURE_FRR10")
	if out == "" || os.Getenv("AW_BINARY") != "" {
		t.Skip("AW_CAPTURE_FRR10 is not set: fixtures are captured on demand (make capture-frr10)")
	}
	out, err := filepath.Abs(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	doctorOut, err := filepath.Abs(os.Getenv("AW_CAPTURE_DOCTOR_FRR10"))
	if err != nil || os.Getenv("AW_CAPTURE_DOCTOR_FRR10") == "" {
		t.Fatal("AW_CAPTURE_DOCTOR_FRR10 names no directory")
	}
	if err := os.MkdirAll(doctorOut, 0o755); err != nil {
		t.Fatal(err)
	}
	root, bin, repo := frr10Root(t)
	binds := map[string]string{repo: "/src", bin: "/tmp/aw", out: "/out", doctorOut: "/out-doctor"}
	env := []string{"AW_BINARY=/tmp/aw/anycast-watchdog", "AW_CAPTURE_DIR=/out", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if b, err := lab.RunInRoot(root, binds, env, "sh", "-c",
		`cd /src/integration && /tmp/aw/integration.test -test.v -test.count=1 -test.run '^TestCaptureLSDB$' &&
		 bash /src/frr/testdata/capture-bgp.sh /out && mv /out/running-config-bgpd-recipe.txt /out-doctor/ &&
		 bash /src/doctor/testdata/capture.sh /out-doctor`); err != nil {
		t.Fatalf("capture in the Debian 13 root: %v\n%s", err, tailLines(string(b), 80))
	} else {
		t.Log(tailLines(string(b), 20))
	}
}
