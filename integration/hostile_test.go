//go:build integration

package integration

import (
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/control"
	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
)

// Issue "Hostile local users and careless operators": the process-level
// rows. Each daemon runs in a namespace of its own with one healthy
// service.

func healthyNode(t *testing.T, role string, wrapper ...string) *node {
	t.Helper()
	n := newNode(t, newLab(t), role)
	n.startDNS()
	p, err := n.ns.Start("anycast-watchdog", append(wrapper, binary, "run", "--config", n.config)...)
	if err != nil {
		t.Fatal(err)
	}
	n.daemon = p
	n.waitBoth(true, interval+rise*fastInterval+2*time.Second, "healthy service advertised")
	return n
}

// waitServing waits until the control socket at sock answers status.
func waitServing(t *testing.T, sock, when string) {
	t.Helper()
	if _, ok := lab.WaitFor(10*time.Second, func() bool {
		_, err := control.Do(sock, control.Request{Command: control.CmdStatus})
		return err == nil
	}); !ok {
		t.Fatal("the control socket does not serve " + when)
	}
}

func (n *node) socket(role string) string { return filepath.Join(filepath.Dir(n.config), role+".sock") }

// A second daemon in the same namespace is refused even with its own
// control socket and state directory: two daemons never fight over lo.
func TestSecondDaemonIsRefused(t *testing.T) {
	n := healthyNode(t, "first")
	second := filepath.Join(filepath.Dir(n.config), "second.yaml")
	c := lab.WatchdogConfig{OnExit: "keep", Dir: filepath.Dir(n.config), Name: "second",
		Interval: interval, FastInterval: fastInterval, Rise: rise, Fall: fall}
	if err := c.Write(second); err != nil {
		t.Fatal(err)
	}
	p, err := n.ns.Start("second-watchdog", binary, "run", "--config", second)
	if err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait(10 * time.Second)
	if err != nil || code != 1 || !strings.Contains(p.Log(), `interface lo: another anycast-watchdog manages it in this network namespace`) {
		t.Fatalf("second daemon: exit %d, %v; log:\n%s", code, err, p.Log())
	}
	if n.daemon.Exited() || !n.has(anycastV4) {
		t.Errorf("the first daemon suffered: exited %v, advertised %v", n.daemon.Exited(), n.has(anycastV4))
	}
	t.Logf("second daemon refused: %s", strings.TrimSpace(p.Log()))
}

// A flood of huge requests and of idle connections leaves the daemon's
// memory bounded, its checks on time, and its socket serving afterwards.
func TestControlFloodIsBounded(t *testing.T) {
	n := healthyNode(t, "flooded")
	sock := n.socket("flooded")
	_, before := memory(t, n.daemon.PID())

	// 50 clients each try to send 20 MB of spaces without a newline.
	var wg sync.WaitGroup
	chunk := []byte(strings.Repeat(" ", 1<<16))
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("unix", sock)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			for sent := 0; sent < 20<<20; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					return // the daemon stopped reading and closed
				}
			}
			io.Copy(io.Discard, c)
		}()
	}
	wg.Wait()
	// 200 idle connections: at most 32 are held, the rest told busy.
	var idle []net.Conn
	busy := 0
	for i := 0; i < 200; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			continue
		}
		idle = append(idle, c)
	}
	time.Sleep(200 * time.Millisecond)
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		var resp control.Response
		if json.NewDecoder(c).Decode(&resp) == nil && strings.HasPrefix(resp.Error, "busy") {
			busy++
		}
	}
	_, after := memory(t, n.daemon.PID())
	for _, c := range idle {
		c.Close()
	}
	if grew := after - before; grew > 16<<10 {
		t.Errorf("peak RSS grew by %d KiB under the flood (from %d KiB), want at most 16 MiB", grew, before)
	}
	if busy < 200-control.MaxConnections-10 {
		t.Errorf("%d of 200 idle connections told busy, want about %d", busy, 200-control.MaxConnections)
	}
	waitServing(t, sock, "after the flood")
	log := n.daemon.Log()
	if strings.Contains(log, `msg="service down"`) || strings.Contains(log, `msg="service falling"`) || n.daemon.Exited() {
		t.Errorf("the healthy service suffered from the flood:\n%s", log)
	}
	warnings := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=warning") && strings.Contains(line, "control socket:") {
			warnings++
		}
	}
	if warnings > 3 {
		t.Errorf("%d control socket warnings for a flood of under a second, want one a second at most:\n%s", warnings, log)
	}
	t.Logf("peak RSS %d KiB before, %d KiB after 50 × 20 MB requests and 200 idle connections; %d told busy; %d warning lines",
		before, after, busy, warnings)
}

// With few descriptors (nofile 128) and 130 idle connections, as the probe
// that found the defect did: the checks keep their descriptors, the daemon
// keeps serving, and nothing is left behind.
func TestIdleConnectionsCannotExhaustDescriptors(t *testing.T) {
	n := healthyNode(t, "fds", "prlimit", "--nofile=128")
	sock := n.socket("fds")
	var idle []net.Conn
	for i := 0; i < 130; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			idle = append(idle, c)
		}
	}
	time.Sleep(time.Second) // a few rounds of checks with the connections held
	fds := countFDs(t, n.daemon.PID())
	for _, c := range idle {
		c.Close()
	}
	waitServing(t, sock, "after the idle connections left")
	log := n.daemon.Log()
	if strings.Contains(log, "too many open files") || strings.Contains(log, `msg="service down"`) {
		t.Errorf("descriptors ran out:\n%s", log)
	}
	if fds > 64 {
		t.Errorf("%d descriptors open with 130 idle clients, want the connection cap to bound them", fds)
	}
	t.Logf("%d descriptors open in the daemon with 130 idle clients (nofile 128)", fds)
}
