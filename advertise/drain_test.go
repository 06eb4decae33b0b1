package advertise

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDrainExpired(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		until time.Time
		now   time.Time
		want  bool
	}{
		{"no expiry", time.Time{}, t0.Add(1000 * time.Hour), false},
		{"before", t0.Add(time.Hour), t0.Add(59 * time.Minute), false},
		{"at", t0.Add(time.Hour), t0.Add(time.Hour), true},
		{"after", t0.Add(time.Hour), t0.Add(2 * time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Drain{Until: tt.until}).Expired(tt.now); got != tt.want {
				t.Errorf("Expired = %v", got)
			}
		})
	}
}

func TestDrainWithdrawsAndPersistsAcrossRestart(t *testing.T) {
	stateDir := t.TempDir()
	iface := newFakeInterface("192.0.2.53/32")
	w := newWorld(t, iface, map[string]bool{"dns": true})
	c := cfgOf(service("dns", "192.0.2.53/32"))
	c.StateDir = stateDir
	w.start(c)

	done, err := w.sup.Drain(context.Background(), []string{"dns"}, "kernel upgrade", "uid 0 (root)", time.Time{})
	if err != nil || len(done) != 1 {
		t.Fatalf("Drain = %v, %v", done, err)
	}
	if iface.has("192.0.2.53/32") {
		t.Fatal("a drained service is still advertised")
	}
	// Checks keep running and are shown while drained.
	before := w.sup.Status()[0].Rounds
	w.eventually("more rounds", func() bool { return w.sup.Status()[0].Rounds > before+2 })
	st := w.sup.Status()[0]
	if st.Drain == nil || st.Drain.Reason != "kernel upgrade" || st.Drain.By != "uid 0 (root)" || st.Checks[0].Consecutive < 3 {
		t.Errorf("status while drained: %+v", st)
	}
	var saved map[string]Drain
	raw, _ := os.ReadFile(filepath.Join(stateDir, "drains.json"))
	if json.Unmarshal(raw, &saved) != nil || saved["dns"].Reason != "kernel upgrade" {
		t.Errorf("drains.json: %s", raw)
	}
	if !strings.Contains(w.logText(), `level=warning msg="service drained: withdrawn whatever its checks say" by="uid 0 (root)" reason="kernel upgrade" service=dns`) {
		t.Errorf("no drain log line:\n%s", w.logText())
	}
	w.sup.Stop(context.Background(), "keep")

	// A new daemon on the same state dir: still drained, never advertised.
	w2 := newWorld(t, iface, map[string]bool{"dns": true})
	c2 := cfgOf(service("dns", "192.0.2.53/32"))
	c2.StateDir = stateDir
	w2.start(c2)
	for i := 0; i < 5; i++ {
		<-w2.rounds
	}
	if iface.has("192.0.2.53/32") || w2.sup.Status()[0].Drain == nil {
		t.Fatalf("drain lost across restart: %+v", w2.sup.Status()[0])
	}

	// Undrain: it must rise again.
	if _, err := w2.sup.Undrain(context.Background(), nil, "uid 1000 (alice)"); err != nil {
		t.Fatal(err)
	}
	if st := w2.state("dns"); st != Down {
		t.Errorf("state right after undrain: %s, want down (must rise)", st)
	}
	w2.eventually("re-advertised after rise", func() bool { return iface.has("192.0.2.53/32") })
	if st := w2.sup.Status()[0]; st.Drain != nil || st.State != Up {
		t.Errorf("after undrain: %+v", st)
	}
	raw, _ = os.ReadFile(filepath.Join(stateDir, "drains.json"))
	if strings.Contains(string(raw), "dns") {
		t.Errorf("undrained service still saved: %s", raw)
	}
}

func TestTimedDrainExpires(t *testing.T) {
	iface := newFakeInterface("192.0.2.53/32")
	w := newWorld(t, iface, map[string]bool{"dns": true})
	w.start(cfgOf(service("dns", "192.0.2.53/32")))
	if _, err := w.sup.Drain(context.Background(), nil, "short maintenance", "uid 0 (root)", time.Now().Add(150*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if iface.has("192.0.2.53/32") {
		t.Fatal("still advertised")
	}
	w.eventually("the drain expires and the service rises", func() bool { return iface.has("192.0.2.53/32") })
	if !strings.Contains(w.logText(), `msg="service undrained: drain expired; it must rise again" by=expiry service=dns`) {
		t.Errorf("no expiry log line:\n%s", w.logText())
	}
}

func TestDrainRefusalsChangeNothing(t *testing.T) {
	iface := newFakeInterface("192.0.2.53/32")
	w := newWorld(t, iface, map[string]bool{"dns": true})
	c := cfgOf(service("dns", "192.0.2.53/32"))
	c.StateDir = filepath.Join(t.TempDir(), "state")
	w.start(c)
	// The state dir becomes a regular file: saving fails, even for root.
	if err := os.WriteFile(c.StateDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	if _, err := w.sup.Drain(context.Background(), []string{"dns", "nope"}, "x", "root", time.Time{}); err == nil ||
		err.Error() != "no such service: nope" {
		t.Errorf("drain of an unknown service: %v", err)
	}
	if _, err := w.sup.Drain(context.Background(), []string{"dns"}, "x", "root", time.Time{}); err == nil ||
		!strings.Contains(err.Error(), "save drains") {
		t.Errorf("drain that cannot be saved: %v", err)
	}
	if !iface.has("192.0.2.53/32") || w.sup.Status()[0].Drain != nil {
		t.Errorf("a refused drain changed something: %+v", w.sup.Status()[0])
	}
	// Undraining all with nothing drained touches nothing, not even the file.
	if done, err := w.sup.Undrain(context.Background(), nil, "root"); err != nil || len(done) != 0 {
		t.Errorf("undrain of all with nothing drained = %v, %v; want nothing and no error", done, err)
	}
}

func TestCorruptDrainFileRefusesStart(t *testing.T) {
	stateDir := t.TempDir()
	os.WriteFile(filepath.Join(stateDir, "drains.json"), []byte("{not json"), 0o640)
	w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true})
	c := withChecks(cfgOf(service("dns", "192.0.2.53/32")))
	c.StateDir = stateDir
	err := w.sup.Start(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "drains.json") || !strings.Contains(err.Error(), "no drained service is put back") {
		t.Errorf("Start = %v", err)
	}
}

// jumpClock's Now moves only when told; its timers fire quickly, in real
// time, so the loops keep running.
type jumpClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *jumpClock) Wall() time.Time { return c.Now() }

func (c *jumpClock) After(time.Duration) <-chan time.Time { return time.After(2 * time.Millisecond) }

func (c *jumpClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestDrainExpiryFollowsTheClock(t *testing.T) {
	iface := newFakeInterface("192.0.2.53/32")
	w := newWorld(t, iface, map[string]bool{"dns": true})
	clock := &jumpClock{now: time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)}
	w.sup.opts.Clock, w.sup.addrs.clock, w.sup.verify.clock = clock, clock, clock
	w.start(cfgOf(service("dns", "192.0.2.53/32")))

	if _, err := w.sup.Drain(context.Background(), []string{"dns"}, "maintenance", "root", clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	clock.advance(59 * time.Minute)
	for i := 0; i < 20; i++ { // many reconcile ticks
		<-w.rounds
	}
	if iface.has("192.0.2.53/32") || w.sup.Status()[0].Drain == nil {
		t.Fatal("the drain ended before its time")
	}
	clock.advance(time.Minute)
	w.eventually("the drain ends at its time and the service rises", func() bool { return iface.has("192.0.2.53/32") })
}
