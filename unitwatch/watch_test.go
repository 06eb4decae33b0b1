package unitwatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// fakeBus is systemd on a bus the test controls: units with states, the
// signals it sends, and a connection the test can cut.
type fakeBus struct {
	mu       sync.Mutex
	units    map[string]status.Unit
	results  map[string]string
	reads    int
	hang     bool // Result never answers
	changes  chan Change
	overflow chan struct{}
	lost     chan struct{}
	closed   bool
}

func (b *fakeBus) Unit(_ context.Context, name string) (status.Unit, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads++
	if isLost(b) {
		return status.Unit{}, errors.New("connection closed")
	}
	if strings.Contains(name, "bad") {
		return status.Unit{}, errors.New("Unit name bad is not valid")
	}
	u, ok := b.units[name]
	if !ok {
		return status.Unit{Name: name, LoadState: "not-found", ActiveState: "inactive", SubState: "dead", Watched: true}, nil
	}
	u.Name, u.Watched = name, true
	return u, nil
}

func (b *fakeBus) Result(ctx context.Context, name string) (string, error) {
	b.mu.Lock()
	hang := b.hang
	b.mu.Unlock()
	if hang {
		<-ctx.Done()
		return "", ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.results[name], nil
}

func (b *fakeBus) Changes() <-chan Change    { return b.changes }
func (b *fakeBus) Overflow() <-chan struct{} { return b.overflow }
func (b *fakeBus) Lost() <-chan struct{}     { return b.lost }
func (b *fakeBus) Close()                    { b.mu.Lock(); b.closed = true; b.mu.Unlock() }

// systemd is the fake's side: the units' states, kept across connections.
type systemd struct {
	mu      sync.Mutex
	units   map[string]status.Unit
	results map[string]string
	bus     *fakeBus
	dials   int
	refuse  error // the next dials fail with it
}

func (s *systemd) dial(context.Context) (Bus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dials++
	if s.refuse != nil {
		return nil, s.refuse
	}
	s.bus = &fakeBus{units: s.units, results: s.results, changes: make(chan Change, 16), overflow: make(chan struct{}, 1), lost: make(chan struct{})}
	return s.bus, nil
}

// set changes a unit's state and signals it, as systemd does.
func (s *systemd) set(name, active, sub, result string) {
	s.mu.Lock()
	u := s.units[name]
	u.LoadState, u.ActiveState, u.SubState = "loaded", active, sub
	s.units[name], s.results[name] = u, result
	bus := s.bus
	s.mu.Unlock()
	if bus != nil && !isLost(bus) {
		bus.changes <- Change{Unit: name, ActiveState: active, SubState: sub}
	}
}

// cut ends the connection, as the D-Bus daemon restarting does.
func (s *systemd) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.bus.lost)
}

type told struct {
	mu    sync.Mutex
	units []status.Unit
}

func (t *told) notify(u status.Unit) { t.mu.Lock(); t.units = append(t.units, u); t.mu.Unlock() }

// last is the last state told of name.
func (t *told) last(name string) status.Unit {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.units) - 1; i >= 0; i-- {
		if t.units[i].Name == name {
			return t.units[i]
		}
	}
	return status.Unit{}
}

func (t *told) count() int { t.mu.Lock(); defer t.mu.Unlock(); return len(t.units) }

func start(t *testing.T, names ...string) (*systemd, *Watcher, *told, *logtest.Hook) {
	sd := &systemd{units: map[string]status.Unit{
		"unbound.service": {LoadState: "loaded", ActiveState: "active", SubState: "running"},
		"dnsdist.service": {LoadState: "loaded", ActiveState: "active", SubState: "running"},
	}, results: map[string]string{}}
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	tl := &told{}
	w := New(sd.dial, log, tl.notify)
	w.Watch(names)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	synctest.Wait()
	return sd, w, tl, hook
}

func messages(h *logtest.Hook) string {
	var b strings.Builder
	for _, e := range h.AllEntries() {
		fmt.Fprintf(&b, "%s: %s\n", e.Level, e.Message)
	}
	return b.String()
}

// Every change of a watched unit's state is told, with how a stopped
// service ended; other units' signals and changes of nothing are not.
func TestWatcherTellsEveryChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sd, w, tl, _ := start(t, "unbound.service")
		if u := tl.last("unbound.service"); !u.Watched || !u.Active() || u.SubState != "running" {
			t.Fatalf("first read: %+v", u)
		}
		if st := w.Status(); st == nil || !st.Up || st.Units != 1 {
			t.Errorf("Status: %+v", st)
		}
		for _, tt := range []struct {
			active, sub, result string
			want                string
		}{
			{"deactivating", "stop-sigterm", "", "unit unbound.service deactivating (stop-sigterm)"},
			{"failed", "failed", "signal SEGV", "unit unbound.service failed (signal SEGV)"},
			{"activating", "auto-restart", "signal SEGV", "unit unbound.service activating (signal SEGV)"},
			{"activating", "start", "", "unit unbound.service activating (start)"},
			{"active", "running", "", "unit unbound.service active (running)"},
			{"reloading", "reload", "", "unit unbound.service reloading (reload)"},
			{"inactive", "dead", "", "unit unbound.service inactive (dead)"},
		} {
			sd.set("unbound.service", tt.active, tt.sub, tt.result)
			synctest.Wait()
			if u := tl.last("unbound.service"); u.String() != tt.want || !u.Watched {
				t.Errorf("after %s (%s): told %q (%+v), want %q", tt.active, tt.sub, u, u, tt.want)
			}
		}
		n := tl.count()
		sd.set("dnsdist.service", "failed", "failed", "exit status 1") // not watched
		sd.bus.changes <- Change{Unit: "unbound.service", ActiveState: "inactive", SubState: "dead"}
		synctest.Wait()
		if tl.count() != n {
			t.Errorf("told %d more states for an unwatched unit and a change of nothing", tl.count()-n)
		}
	})
}

// The bus lost: every unit is told not watched (so the checks alone
// decide), the outage logged once, the dial retried with backoff; back,
// the units are read again and told watched.
func TestWatcherBusLostAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sd, w, tl, hook := start(t, "unbound.service")
		sd.mu.Lock()
		sd.refuse = errors.New("dial unix /run/dbus/system_bus_socket: connect: no such file or directory")
		sd.mu.Unlock()
		sd.cut()
		synctest.Wait()
		if u := tl.last("unbound.service"); u.Watched || !strings.Contains(u.Error, "the system bus connection was lost") {
			t.Fatalf("after the bus was lost: %+v", u)
		}
		if st := w.Status(); st.Up || st.Error == "" {
			t.Errorf("Status while lost: %+v", st)
		}
		// Retries back off: 100 ms, 200, 400, … up to 30 s.
		dialsAt := func(d time.Duration) int {
			time.Sleep(d)
			synctest.Wait()
			sd.mu.Lock()
			defer sd.mu.Unlock()
			return sd.dials
		}
		first := dialsAt(0)
		if got := dialsAt(time.Minute) - first; got < 8 || got > 10 {
			t.Errorf("%d dials in the first minute of the outage, want 8 to 10 (backoff)", got)
		}
		if got := dialsAt(2*time.Minute) - first; got > 14 {
			t.Errorf("%d dials in three minutes, want the backoff to hold at 30 s", got)
		}
		if n := strings.Count(messages(hook), "warning: unit watch lost"); n != 1 {
			t.Errorf("the outage logged %d times at warning:\n%s", n, messages(hook))
		}
		// The unit failed meanwhile; back on the bus, it is read and told.
		sd.mu.Lock()
		sd.refuse = nil
		sd.units["unbound.service"] = status.Unit{LoadState: "loaded", ActiveState: "failed", SubState: "failed"}
		sd.mu.Unlock()
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if u := tl.last("unbound.service"); !u.Watched || u.ActiveState != "failed" || u.Error != "" {
			t.Errorf("back on the bus: %+v", u)
		}
		if !strings.Contains(messages(hook), "info: unit watch restored") {
			t.Errorf("the watch's return was not logged:\n%s", messages(hook))
		}
	})
}

// A unit systemd does not know is told watched and not loaded (status
// shows it; it withdraws nothing); a name the bus refuses is told not
// watched, with why. No unit to watch: no connection.
func TestWatcherUnknownUnitsAndNone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, tl, _ := start(t, "nosuch.service", "bad.service")
		if u := tl.last("nosuch.service"); !u.Watched || u.LoadState != "not-found" || u.Stopped() || u.String() != "unit nosuch.service not-found" {
			t.Errorf("unknown unit: %+v (%s)", u, u)
		}
		if u := tl.last("bad.service"); u.Watched || !strings.Contains(u.Error, "not valid") {
			t.Errorf("refused name: %+v", u)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		sd, w, _, _ := start(t)
		dials := func() int { sd.mu.Lock(); defer sd.mu.Unlock(); return sd.dials }
		if dials() != 0 || w.Status() != nil {
			t.Errorf("no units: %d dials, status %+v", dials(), w.Status())
		}
		w.Watch([]string{"unbound.service"})
		synctest.Wait()
		if dials() != 1 {
			t.Errorf("a unit to watch: %d dials", dials())
		}
	})
}

// Watch again (a reload): every unit is read and told again, one no
// longer named is forgotten; dropped signals make it read them all again.
func TestWatcherRereads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sd, _, _, _ := start(t, "unbound.service", "dnsdist.service")
		sd.mu.Lock()
		reads := sd.bus.reads
		sd.mu.Unlock()
		sd.bus.overflow <- struct{}{}
		synctest.Wait()
		sd.mu.Lock()
		if got := sd.bus.reads - reads; got != 2 {
			t.Errorf("after an overflow %d reads, want 2", got)
		}
		sd.mu.Unlock()
	})
	synctest.Test(t, func(t *testing.T) {
		sd, w, tl, _ := start(t, "unbound.service", "dnsdist.service")
		w.Watch([]string{"unbound.service"})
		synctest.Wait()
		n := tl.count()
		sd.set("dnsdist.service", "failed", "failed", "")
		synctest.Wait()
		if tl.count() != n || w.Status().Units != 1 {
			t.Errorf("a unit no longer watched was told: %d → %d", n, tl.count())
		}
	})
}

// A bus that stops answering while a stopped unit's result is read: the
// stop is told without it, after callTimeout, and the watcher goes on.
func TestWatcherHungResultRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sd, _, tl, _ := start(t, "unbound.service")
		sd.bus.mu.Lock()
		sd.bus.hang = true
		sd.bus.mu.Unlock()
		sd.set("unbound.service", "failed", "failed", "signal SEGV")
		synctest.Wait()
		if u := tl.last("unbound.service"); !u.Active() {
			t.Fatalf("told before the read of its result ended: %+v", u)
		}
		time.Sleep(callTimeout)
		synctest.Wait()
		if u := tl.last("unbound.service"); !u.Stopped() || u.Result != "" {
			t.Errorf("callTimeout after a hung read of the result: %+v", u)
		}
		sd.set("unbound.service", "active", "running", "")
		synctest.Wait()
		if u := tl.last("unbound.service"); !u.Active() {
			t.Errorf("the watcher stopped after a hung read: %+v", u)
		}
	})
}

func TestResultText(t *testing.T) {
	for _, tt := range []struct {
		result   string
		code, st int32
		want     string
	}{
		{"success", cldExited, 0, ""},
		{"", 0, 0, ""},
		{"exit-code", cldExited, 1, "exit status 1"},
		{"signal", cldKilled, 9, "signal KILL"},
		{"signal", cldKilled, 11, "signal SEGV"},
		{"core-dump", cldDumped, 11, "signal SEGV, core dumped"},
		{"oom-kill", cldKilled, 9, "oom-kill, signal KILL"},
		{"timeout", cldKilled, 15, "timeout, signal TERM"},
		{"watchdog", cldKilled, 6, "watchdog, signal ABRT"},
		{"start-limit-hit", cldExited, 1, "start-limit-hit"},
	} {
		if got := resultText(tt.result, tt.code, tt.st); got != tt.want {
			t.Errorf("resultText(%q, %d, %d) = %q, want %q", tt.result, tt.code, tt.st, got, tt.want)
		}
	}
}
