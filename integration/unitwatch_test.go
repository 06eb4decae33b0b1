//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// The packaged daemon watches dnsmasq.service in a booted Debian 12 and 13. Its
// check runs every 10 s, so only the unit's event can explain a fast
// withdrawal: dnsmasq killed (SIGKILL from outside, as a crash or the OOM
// killer does) takes 192.0.2.53 off lo within milliseconds, the log names
// the unit; started again, the address is back after rise passing rounds
// at the fast interval; 20 trials. Then the system bus restarts: nothing
// is withdrawn, the watch comes back. A unit systemd does not know is a
// check-config warning, a doctor finding and a status line. Last, the
// daemon's idle CPU with ten watched units against none (logged).
func TestUnitWatchUnderSystemd(t *testing.T) {
	deb := buildDeb(t, t.TempDir(), "0.1.0-1", "0.1.0")
	for _, suite := range suites {
		t.Run(suite, func(t *testing.T) { unitWatchUnderSystemd(t, suite, deb) })
	}
}

func unitWatchUnderSystemd(t *testing.T, suite, deb string) {
	box := bootDebian(t, t.TempDir(), suite, deb)
	run := box.run
	os.WriteFile(filepath.Join(box.root, "etc/dnsmasq.d/health.conf"), []byte(
		"listen-address=127.0.0.1\nbind-interfaces\nno-resolv\naddress=/health.example/198.51.100.99\n"), 0o644)
	run("systemctl", "restart", "dnsmasq")
	run("dpkg", "-i", "/root/"+filepath.Base(deb))
	config := `interface: lo
on_exit: keep
services:
  - name: dns
    prefixes: [192.0.2.53/32]
    interval: 10s
    fast_interval: 100ms
    rise: 2
    fall: 2
    units: [dnsmasq.service]
    # 20 crashes in a minute would damp it: here each is a trial.
    damping: {mode: off}
    checks:
      - {type: dns, server: 127.0.0.1, query: health.example., answer_contains: 198.51.100.99}
  - name: typo
    prefixes: [192.0.2.54/32]
    units: [dnsmaq.service]
    checks:
      - {type: dns, server: 127.0.0.1, query: health.example., answer_contains: 198.51.100.99}
`
	os.WriteFile(filepath.Join(box.root, "etc/anycast-watchdog/config.yaml"), []byte(config), 0o644)
	if out, err := box.c.Exec("anycast-watchdog", "check-config"); err != nil ||
		!strings.Contains(out, "warning: /etc/anycast-watchdog/config.yaml: services[1].units[0]: dnsmaq.service: systemd has it not-found; it takes nothing out until systemd loads it") {
		t.Errorf("check-config on a unit systemd does not know: %v:\n%s", err, out)
	}
	run("systemctl", "restart", "anycast-watchdog")
	statusOf := func() (status.Document, error) {
		var st status.Document
		out, err := box.c.Exec("anycast-watchdog", "status", "--json")
		if err == nil {
			err = json.Unmarshal([]byte(out), &st)
		}
		return st, err
	}
	var st status.Document
	if _, ok := lab.WaitFor(20*time.Second, func() bool {
		var err error
		st, err = statusOf()
		return err == nil && len(st.Services) == 2 && st.Services[0].State == status.Up && st.Services[1].State == status.Up && len(st.Services[0].Units) == 1 &&
			st.Services[0].Units[0].Watched && st.UnitWatch != nil && st.UnitWatch.Up
	}); !ok {
		t.Fatalf("dns never up with its unit watched: %+v\n%s", st, box.journal("anycast-watchdog"))
	}
	t.Logf("the system bus is reachable under the packaged unit's hardening (User=anycast-watchdog): %+v", st.Services[0].Units[0])
	if u := st.Services[1].Units[0]; u.LoadState != "not-found" || u.Stopped() || st.Services[1].State != status.Up {
		t.Errorf("a unit systemd does not know: %+v, service %s", u, st.Services[1].State)
	}
	if out, _ := box.c.Exec("anycast-watchdog", "doctor"); !strings.Contains(out, "warning dnsmaq.service: systemd has no such unit loaded (not-found): watching it takes nothing out until it is") {
		t.Errorf("doctor does not report the unknown unit:\n%s", out)
	}

	stop := make(chan struct{})
	defer close(stop)
	events, err := box.c.Monitor(stop)
	if err != nil {
		t.Fatal(err)
	}
	// next is the time of the next event on 192.0.2.53 ("Deleted" or
	// not), within d.
	next := func(deleted bool, d time.Duration) (time.Time, bool) {
		timeout := time.After(d)
		for {
			select {
			case line := <-events:
				if strings.Contains(line, "192.0.2.53/32") && strings.Contains(line, "Deleted") == deleted {
					return lab.MonitorTime(line)
				}
			case <-timeout:
				return time.Time{}, false
			}
		}
	}
	var removed, restored []time.Duration
	for trial := range 20 {
		pid, err := strconv.Atoi(box.show("dnsmasq", "MainPID"))
		if err != nil || pid == 0 {
			t.Fatalf("trial %d: dnsmasq's MainPID %d: %v", trial, pid, err)
		}
		hostPID, err := box.c.HostPID(pid)
		if err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		if err := syscall.Kill(hostPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		at, ok := next(true, 5*time.Second)
		if !ok {
			t.Fatalf("trial %d: 192.0.2.53 still on lo 5 s after dnsmasq was killed (the check interval is 10 s)\n%s", trial, box.journal("anycast-watchdog"))
		}
		removed = append(removed, at.Sub(killed))
		run("systemctl", "reset-failed", "dnsmasq") // else the sixth start in 10 s is refused (StartLimitBurst)
		started := time.Now()
		if out, err := box.c.Exec("systemctl", "start", "dnsmasq"); err != nil {
			t.Fatalf("trial %d: systemctl start dnsmasq: %v: %s\n%s", trial, err, out, box.journal("dnsmasq"))
		}
		at, ok = next(false, 5*time.Second)
		if !ok {
			t.Fatalf("trial %d: 192.0.2.53 not back 5 s after dnsmasq started again\n%s", trial, box.journal("anycast-watchdog"))
		}
		restored = append(restored, at.Sub(started))
	}
	slices.Sort(removed)
	slices.Sort(restored)
	q := func(ds []time.Duration, p float64) time.Duration {
		return ds[int(p*float64(len(ds)-1)+0.5)].Round(100 * time.Microsecond)
	}
	t.Logf("dnsmasq killed → 192.0.2.53 off lo, 20 trials: p50 %s, p90 %s, max %s", q(removed, 0.5), q(removed, 0.9), removed[len(removed)-1].Round(100*time.Microsecond))
	t.Logf("systemctl start dnsmasq → back on lo (rise 2 at fast_interval 100ms): p50 %s, p90 %s, max %s", q(restored, 0.5), q(restored, 0.9), restored[len(restored)-1].Round(100*time.Microsecond))
	j := box.journal("anycast-watchdog")
	for _, want := range []string{`msg="watched unit stopped: the service is down at once" prefixes=192.0.2.53/32 service=dns unit=dnsmasq.service unit_result="signal KILL" unit_state="failed (failed)"`,
		`reason="unit dnsmasq.service failed (signal KILL)"`,
		`msg="watched unit runs again: the service rises through its checks, from a round now"`} {
		if !strings.Contains(j, want) {
			t.Errorf("the journal lacks %s:\n%s", want, j)
		}
	}

	// The system bus restarts: nothing is withdrawn, the watch comes back.
	run("systemctl", "restart", "dbus")
	if _, ok := lab.WaitFor(20*time.Second, func() bool {
		st, err := statusOf()
		return err == nil && st.UnitWatch != nil && st.UnitWatch.Up && len(st.Services) == 2 && st.Services[0].Units[0].Watched
	}); !ok {
		t.Fatalf("the watch never came back after dbus restarted\n%s", box.journal("anycast-watchdog"))
	}
	if _, deleted := next(true, time.Second); deleted {
		t.Errorf("192.0.2.53 was removed when the bus restarted")
	}
	if out := run("ip", "-br", "addr", "show", "dev", "lo"); !strings.Contains(out, "192.0.2.53/32") {
		t.Errorf("192.0.2.53 gone after the bus restarted: %s", out)
	}
	j = box.journal("anycast-watchdog")
	for _, want := range []string{`msg="unit watch lost: the checks alone decide until the system bus is back"`, `msg="unit watch restored: following the watched units on the system bus again"`} {
		if !strings.Contains(j, want) {
			t.Errorf("the journal lacks %s:\n%s", want, j)
		}
	}

	// Idle CPU with ten watched units against none: no polling, so the
	// figure must not grow with the units.
	os.WriteFile(filepath.Join(box.root, "etc/systemd/system/idle@.service"), []byte("[Service]\nExecStart=/bin/sleep infinity\n"), 0o644)
	run("systemctl", "daemon-reload")
	var idle []string
	for i := range 10 {
		idle = append(idle, fmt.Sprintf("idle@%d.service", i))
	}
	run(append([]string{"systemctl", "start"}, idle...)...)
	cpuWith := func(units []string) time.Duration {
		t.Helper()
		os.WriteFile(filepath.Join(box.root, "etc/anycast-watchdog/config.yaml"), []byte(fmt.Sprintf(`interface: lo
on_exit: keep
services:
  - name: dns
    prefixes: [192.0.2.53/32]
    interval: 10s
    units: [%s]
    checks:
      - {type: dns, server: 127.0.0.1, query: health.example., answer_contains: 198.51.100.99}
`, strings.Join(units, ", "))), 0o644)
		run("anycast-watchdog", "reload")
		time.Sleep(2 * time.Second) // the reload's reads settle
		pid, _ := strconv.Atoi(box.show("anycast-watchdog", "MainPID"))
		hostPID, err := box.c.HostPID(pid)
		if err != nil {
			t.Fatal(err)
		}
		before := lab.ProcessCPU(hostPID)
		time.Sleep(15 * time.Second)
		return lab.ProcessCPU(hostPID) - before
	}
	none, ten := cpuWith(nil), cpuWith(idle)
	t.Logf("idle CPU over 15 s, one service with a 10 s interval: no watched unit %s, ten watched units %s", none.Round(time.Microsecond), ten.Round(time.Microsecond))
}
