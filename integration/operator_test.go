//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// cli runs an anycast-watchdog client command against node's daemon.
func cli(t *testing.T, n *lab.Node, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(binary, append(args, "--socket", n.Socket())...).CombinedOutput()
	return string(out), err
}

func statusOf(t *testing.T, n *lab.Node) status.Service {
	t.Helper()
	st, err := tryStatus(t, n)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func tryStatus(t *testing.T, n *lab.Node) (status.Service, error) {
	st, err := fullStatus(t, n)
	if err == nil && len(st.Services) != 1 {
		err = fmt.Errorf("status --json: %d services, want 1", len(st.Services))
	}
	if err != nil {
		return status.Service{}, err
	}
	return st.Services[0], nil
}

// fullStatus is node's `status --json`.
func fullStatus(t *testing.T, n *lab.Node) (status.Document, error) {
	out, err := cli(t, n, "status", "--json")
	if err != nil {
		return status.Document{}, fmt.Errorf("status: %v: %s", err, out)
	}
	var st status.Document
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return status.Document{}, fmt.Errorf("status --json: %v: %s", err, out)
	}
	return st, nil
}

// advertised waits until node's status shows want for both prefixes.
func waitAdvertised(t *testing.T, n *lab.Node, state status.State, want status.Advertised) {
	t.Helper()
	var last status.Service
	var err error
	if _, ok := lab.WaitFor(10*time.Second, func() bool {
		last, err = tryStatus(t, n)
		return err == nil && last.State == state && last.Prefixes[0].Advertised == want && last.Prefixes[1].Advertised == want
	}); !ok {
		t.Fatalf("status never showed %s with advertised %s: %+v (%v)", state, want, last, err)
	}
}

func TestDrainSurvivesRestartAndExpires(t *testing.T) {
	a := newAnycastLab(t, lab.AnycastOptions{MinArrival0: true})
	waitRoutes(t, a, both(a), 10*time.Second, "both nodes advertised")
	n1, n2 := a.Nodes[0], a.Nodes[1]
	waitAdvertised(t, n1, "up", "yes")

	out, err := cli(t, n1, "drain", "dns", "--reason", "kernel upgrade", "--for", "8s")
	if err != nil || !strings.Contains(out, "drained (withdrawn; checks keep running): dns; until") {
		t.Fatalf("drain: %v: %s", err, out)
	}
	waitRoutes(t, a, []string{n2.RouterDev}, 2*time.Second, "router loses the drained node")
	waitAdvertised(t, n1, "drained", "no")
	st := statusOf(t, n1)
	if st.Drain == nil || st.Drain.Reason != "kernel upgrade" || !strings.HasPrefix(st.Drain.By, "uid 0") || st.Drain.Until.IsZero() {
		t.Errorf("drain in status: %+v", st.Drain)
	}
	waitLog(t, n1.Watchdog, time.Second, `msg="service drained: withdrawn whatever its checks say" by="uid 0`)

	// Restart the daemon: it stays drained, the router never gets it back.
	n1.Watchdog.Signal(syscall.SIGTERM)
	if _, err := n1.Watchdog.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n1.StartWatchdog(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * labInterval)
	if !routesVia(t, a, lab.AnycastV4, []string{n2.RouterDev}) || !routesVia(t, a, lab.AnycastV6, []string{n2.RouterDev}) {
		v4, v6 := a.Routes()
		t.Fatalf("a restart un-drained the node: router v4 %v v6 %v", v4, v6)
	}
	waitAdvertised(t, n1, "drained", "no")

	// The drain expires: the node rises and returns.
	waitRoutes(t, a, both(a), 15*time.Second, "node 1 returns after the drain expires")
	waitLog(t, n1.Watchdog, time.Second, `msg="service undrained: drain expired; it must rise again" by=expiry`)
	waitAdvertised(t, n1, "up", "yes")
}

func TestClientCommandsAgainstTheDaemon(t *testing.T) {
	a := newAnycastLab(t, lab.AnycastOptions{})
	n1 := a.Nodes[0]
	waitAdvertised(t, n1, "up", "yes")

	out, err := cli(t, n1, "check", "dns")
	if err != nil || !strings.Contains(out, "dns 127.0.0.1:53 health.example./A udp  pass") {
		t.Errorf("check: %v: %s", err, out)
	}
	out, err = cli(t, n1, "status")
	if err != nil || !strings.Contains(out, "FRR read-back: ospfd ok · ospf6d ok") || !strings.Contains(out, "192.0.2.53/32     dns      yes     lo  yes") {
		t.Errorf("status table: %v:\n%s", err, out)
	}
	out, err = cli(t, n1, "undrain", "nope")
	if err == nil || !strings.Contains(out, "no such service: nope") {
		t.Errorf("undrain of an unknown service: %v: %s", err, out)
	}
	// A failed reload is visible in status.
	n1.WriteConfig("not a valid on_exit")
	out, err = cli(t, n1, "reload")
	if err == nil || !strings.Contains(out, "reload failed; the running configuration stays") {
		t.Errorf("bad reload: %v: %s", err, out)
	}
	out, _ = cli(t, n1, "status")
	if !strings.Contains(out, "LAST RELOAD FAILED") {
		t.Errorf("status does not show the failed reload:\n%s", out)
	}
	n1.Watchdog.Signal(syscall.SIGTERM)
	n1.Watchdog.Wait(5 * time.Second)
	out, err = cli(t, n1, "status")
	if err == nil || !strings.Contains(out, "anycast-watchdog is not running") {
		t.Errorf("status of a stopped daemon: %v: %s", err, out)
	}
}
