package advertise

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

func TestDrainWithdrawsAndPersistsAcrossRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stateDir := t.TempDir()
		iface := newFakeInterface("192.0.2.53/32")
		w := newWorld(t, iface, map[string]bool{"dns": true})
		c := cfgOf(service("dns", "192.0.2.53/32"))
		c.StateDir = stateDir
		w.start(c)

		done, err := w.sup.Drain(context.Background(), []string{"dns"}, "kernel upgrade", "uid 0 (root)", time.Time{}, true)
		if err != nil || len(done) != 1 {
			t.Fatalf("Drain = %v, %v", done, err)
		}
		if iface.has("192.0.2.53/32") {
			t.Fatal("a drained service is still advertised")
		}
		// Checks keep running and are shown while drained.
		for i := 0; i < 3; i++ {
			w.nextRound()
		}
		st := w.sup.Status()[0]
		if st.State != status.Drained || st.Drain == nil || st.Drain.Reason != "kernel upgrade" || st.Drain.By != "uid 0 (root)" || st.Checks[0].Consecutive < 3 {
			t.Errorf("status while drained: %+v", st)
		}
		var saved map[string]status.Drain
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
			w2.nextRound()
		}
		if iface.has("192.0.2.53/32") || w2.sup.Status()[0].Drain == nil {
			t.Fatalf("drain lost across restart: %+v", w2.sup.Status()[0])
		}

		// Undrain: it must rise again.
		if _, err := w2.sup.Undrain(context.Background(), nil, "uid 1000 (alice)"); err != nil {
			t.Fatal(err)
		}
		if st := w2.state("dns"); st != status.Down {
			t.Errorf("state right after undrain: %s, want down (must rise)", st)
		}
		w2.until("re-advertised after rise", func() bool { return iface.has("192.0.2.53/32") })
		if st := w2.sup.Status()[0]; st.Drain != nil || st.State != status.Up {
			t.Errorf("after undrain: %+v", st)
		}
		raw, _ = os.ReadFile(filepath.Join(stateDir, "drains.json"))
		if strings.Contains(string(raw), "dns") {
			t.Errorf("undrained service still saved: %s", raw)
		}
	})
}

func TestTimedDrainExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iface := newFakeInterface("192.0.2.53/32")
		w := newWorld(t, iface, map[string]bool{"dns": true})
		w.start(cfgOf(service("dns", "192.0.2.53/32")))
		if _, err := w.sup.Drain(context.Background(), nil, "short maintenance", "uid 0 (root)", w.clock.Now().Add(150*time.Millisecond), true); err != nil {
			t.Fatal(err)
		}
		if iface.has("192.0.2.53/32") {
			t.Fatal("still advertised")
		}
		w.until("the drain expires and the service rises", func() bool { return iface.has("192.0.2.53/32") })
		if !strings.Contains(w.logText(), `msg="service undrained: drain expired; it must rise again" by=expiry service=dns`) {
			t.Errorf("no expiry log line:\n%s", w.logText())
		}
	})
}

func TestDrainRefusalsChangeNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, iface, c := startWithOwnStateDir(t)
		// The state dir becomes a regular file: saving fails, even for root.
		if err := os.WriteFile(c.StateDir, nil, 0o644); err != nil {
			t.Fatal(err)
		}

		if _, err := w.sup.Drain(context.Background(), []string{"dns", "nope"}, "x", "root", time.Time{}, true); err == nil ||
			err.Error() != "no such service: nope" {
			t.Errorf("drain of an unknown service: %v", err)
		}
		if _, err := w.sup.Drain(context.Background(), []string{"dns"}, "x", "root", time.Time{}, true); err == nil ||
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
	})
}

func TestCorruptDrainFileRefusesStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stateDir := t.TempDir()
		os.WriteFile(filepath.Join(stateDir, "drains.json"), []byte("{not json"), 0o640)
		w := newWorld(t, newFakeInterface("192.0.2.53/32"), map[string]bool{"dns": true})
		c := withChecks(cfgOf(service("dns", "192.0.2.53/32")))
		c.StateDir = stateDir
		err := w.sup.Start(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), "drains.json") || !strings.Contains(err.Error(), "no drained service is put back") {
			t.Errorf("Start = %v", err)
		}
	})
}

// A timed drain ends when the monotonic clock reaches it, however far the
// clock jumps in one go (a suspended VM, say), and not before.
func TestDrainExpiryFollowsTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iface := newFakeInterface("192.0.2.53/32")
		w := newWorld(t, iface, map[string]bool{"dns": true})
		w.start(cfgOf(service("dns", "192.0.2.53/32")))

		if _, err := w.sup.Drain(context.Background(), []string{"dns"}, "maintenance", "root", w.clock.Now().Add(time.Hour), true); err != nil {
			t.Fatal(err)
		}
		w.advance(59 * time.Minute)
		for i := 0; i < 20; i++ { // many reconcile ticks
			w.nextRound()
		}
		if iface.has("192.0.2.53/32") || w.sup.Status()[0].Drain == nil {
			t.Fatal("the drain ended before its time")
		}
		w.advance(time.Minute)
		w.until("the drain ends at its time and the service rises", func() bool { return iface.has("192.0.2.53/32") })
	})
}

// A drain saved for a service that is no longer configured is dropped at
// start (and from the file): it must not block undrain --all, nor come
// back with a future service of that name.
func TestDrainOfAServiceNoLongerConfiguredIsDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stateDir := t.TempDir()
		os.WriteFile(filepath.Join(stateDir, "drains.json"),
			[]byte(`{"oldsvc": {"reason": "old", "by": "root", "since": "2026-11-23T03:00:00Z"}, "dns": {"reason": "now", "by": "root", "since": "2026-11-23T03:00:00Z"}}`), 0o640)
		iface := newFakeInterface()
		w := newWorld(t, iface, map[string]bool{"dns": true})
		c := cfgOf(service("dns", "192.0.2.53/32"))
		c.StateDir = stateDir
		w.start(c)
		if !strings.Contains(w.logText(), `msg="dropping drains of services no longer in the configuration" services=oldsvc`) {
			t.Errorf("no log line for the dropped drain:\n%s", w.logText())
		}
		done, err := w.sup.Undrain(context.Background(), nil, "root")
		if err != nil || !reflect.DeepEqual(done, []string{"dns"}) {
			t.Errorf("undrain --all = %v, %v; want [dns]", done, err)
		}
		if raw, _ := os.ReadFile(filepath.Join(stateDir, "drains.json")); strings.Contains(string(raw), "oldsvc") || strings.Contains(string(raw), "dns") {
			t.Errorf("drains.json still holds a drain: %s", raw)
		}
	})
}

// undrain names only what it undrained; an unknown name changes nothing.
func TestUndrainOfAServiceNotDrained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newFakeInterface("192.0.2.53/32", "203.0.113.80/32"), map[string]bool{"dns": true, "web": true})
		w.start(cfgOf(service("dns", "192.0.2.53/32"), service("web", "203.0.113.80/32")))
		if _, err := w.sup.Drain(context.Background(), []string{"web"}, "x", "root", time.Time{}, true); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			names   []string
			want    []string
			wantErr string
		}{
			{[]string{"dns"}, nil, ""},
			{[]string{"dns", "nope"}, nil, "no such service: nope"},
			{[]string{"dns", "web"}, []string{"web"}, ""},
			{nil, nil, ""},
		} {
			done, err := w.sup.Undrain(context.Background(), tt.names, "root")
			if !reflect.DeepEqual(done, tt.want) || (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("Undrain(%v) = %v, %v; want %v, %q", tt.names, done, err, tt.want, tt.wantErr)
			}
		}
		if st := w.state("dns"); st != status.Up {
			t.Errorf("undraining a service that was not drained changed it: %s", st)
		}
	})
}

// A drains file larger than the daemon ever writes is refused, not read
// whole.
func TestOversizedDrainFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	big := `{"dns": {"reason": "` + strings.Repeat("x", maxStateFile) + `"}}`
	os.WriteFile(filepath.Join(dir, "drains.json"), []byte(big), 0o640)
	if _, err := newDrainFile(dir).load(); err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Errorf("load = %v", err)
	}
}

// A timed drain ends at its time even while state_dir cannot be written:
// the failure is logged once, not every tick.
func TestTimedDrainExpiresWhileStateDirIsUnwritable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, iface, c := startWithOwnStateDir(t)
		if _, err := w.sup.Drain(context.Background(), []string{"dns"}, "short", "root", w.clock.Now().Add(time.Second), true); err != nil {
			t.Fatal(err)
		}
		// The state dir becomes a regular file: saving fails, even for root.
		os.RemoveAll(c.StateDir)
		if err := os.WriteFile(c.StateDir, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		w.until("the drain ends and the service rises", func() bool { return iface.has("192.0.2.53/32") })
		w.advance(10 * time.Second) // a hundred reconcile ticks
		if n := strings.Count(w.logText(), "cannot save drains; the expired drains end anyway"); n != 1 {
			t.Errorf("the save failure was logged %d times, want once:\n%s", n, w.logText())
		}
		if st := w.service("dns"); st.Drain != nil || st.State != status.Up {
			t.Errorf("after the expiry: %s, drain %+v", st.State, st.Drain)
		}
	})
}

// startWithOwnStateDir starts a healthy dns in a state_dir of its own, which
// a test may then make unwritable.
func startWithOwnStateDir(t *testing.T) (*world, *fakeInterface, *config.Config) {
	iface := newFakeInterface("192.0.2.53/32")
	w := newWorld(t, iface, map[string]bool{"dns": true})
	c := cfgOf(service("dns", "192.0.2.53/32"))
	c.StateDir = filepath.Join(t.TempDir(), "state")
	w.start(c)
	return w, iface, c
}
