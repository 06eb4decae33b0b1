package advertise

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// fakeInterface is an interface in memory that records every change.
type fakeInterface struct {
	mu      sync.Mutex
	present map[netip.Prefix]bool
	changes []string // "add P" / "del P", in order
	fail    error    // when set, Add and Del fail with it
	showErr error
	hang    chan struct{} // when set, Add and Del block until it is closed or their deadline
	// As a last-resort interface: its name, and Ensure's error.
	name      string
	ensureErr error
}

func (f *fakeInterface) Name() string { return f.name }

func (f *fakeInterface) Ensure(context.Context) (string, error) { return "", f.ensureErr }

func newFakeInterface(present ...string) *fakeInterface {
	f := &fakeInterface{present: map[netip.Prefix]bool{}}
	for _, p := range present {
		f.present[netip.MustParsePrefix(p)] = true
	}
	return f
}

func (f *fakeInterface) Show(context.Context) (ifaddr.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.showErr != nil {
		return ifaddr.Link{}, f.showErr
	}
	l := ifaddr.Link{Name: "lo", Up: true}
	for p, ok := range f.present {
		if ok {
			l.Prefixes = append(l.Prefixes, p)
		}
	}
	return l, nil
}

func (f *fakeInterface) change(ctx context.Context, op string, p netip.Prefix, to bool) error {
	f.mu.Lock()
	hang := f.hang
	f.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return fmt.Errorf("ip addr %s %s: %w", op, p, ctx.Err())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.present[p] = to
	f.changes = append(f.changes, op+" "+p.String())
	return nil
}

func (f *fakeInterface) Add(ctx context.Context, p netip.Prefix) error {
	return f.change(ctx, "add", p, true)
}

func (f *fakeInterface) Del(ctx context.Context, p netip.Prefix) error {
	return f.change(ctx, "del", p, false)
}

// byHand changes the interface behind the daemon's back.
func (f *fakeInterface) byHand(p string, present bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.present[netip.MustParsePrefix(p)] = present
}

func (f *fakeInterface) has(p string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.present[netip.MustParsePrefix(p)]
}

func (f *fakeInterface) history() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.changes...)
}

func (f *fakeInterface) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// switchCheck passes or fails as told, and counts overlapping runs.
type switchCheck struct {
	healthy  atomic.Bool
	delay    time.Duration
	wedged   atomic.Bool // ignores its context: a buggy probe that hangs
	starved  atomic.Bool // cannot start: the daemon's exec checks are all busy
	running  atomic.Int32
	overlaps atomic.Int32
	runs     atomic.Int32
	closes   atomic.Int32 // by loops that ended
}

func (c *switchCheck) Close() error {
	c.closes.Add(1)
	return nil
}

func (c *switchCheck) Check(ctx context.Context) error {
	if c.running.Add(1) > 1 {
		c.overlaps.Add(1)
	}
	defer c.running.Add(-1)
	c.runs.Add(1)
	for c.wedged.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	if c.delay > 0 {
		select {
		case <-time.After(c.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if c.starved.Load() {
		return &checker.Starved{Running: 8, Waited: time.Millisecond}
	}
	if !c.healthy.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// manualClock moves only when a test moves it. Its timers fire when it
// reaches them; waiting counts the timers neither fired nor stopped, that
// is the goroutines blocked on it, since every wait in the package stops
// its timer when it ends another way.
type manualClock struct {
	mu       sync.Mutex
	now      time.Time
	wallStep time.Duration
	timers   map[*manualTimer]bool
}

type manualTimer struct {
	clock *manualClock
	at    time.Time
	ch    chan time.Time
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC), timers: map[*manualTimer]bool{}}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Wall is Now moved by every wall-clock step so far.
func (c *manualClock) Wall() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now.Add(c.wallStep)
}

func (c *manualClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{clock: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
	} else {
		c.timers[t] = true
	}
	return t
}

func (t *manualTimer) C() <-chan time.Time { return t.ch }

func (t *manualTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.clock.timers[t]
	delete(t.clock.timers, t)
	return was
}

func (c *manualClock) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// advance moves the clock by d and fires every timer due by then.
func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireDue()
}

// fireNext moves the clock to its earliest timer and fires every timer due
// then; false when no timer is set.
func (c *manualClock) fireNext() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for t := range c.timers {
		if next.IsZero() || t.at.Before(next) {
			next = t.at
		}
	}
	if next.IsZero() {
		return false
	}
	if next.After(c.now) {
		c.now = next
	}
	c.fireDue()
	return true
}

// stepWall moves the wall clock only, as NTP or date -s would.
func (c *manualClock) stepWall(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wallStep += d
}

func (c *manualClock) fireDue() {
	for t := range c.timers {
		if !t.at.After(c.now) {
			delete(c.timers, t)
			t.ch <- c.now
		}
	}
}

// world is a supervisor wired to fakes and driven by a manual clock, with
// its log captured.
type world struct {
	t      *testing.T
	clock  *manualClock
	iface  *fakeInterface
	checks map[string]*switchCheck // by service name
	sup    *Supervisor
	logs   *logtest.Hook
	rounds chan Round
	// hung is how many of the goroutines that wait on the clock a test
	// has hung on purpose (a vtysh that never answers, say).
	hung int
}

func service(name string, prefixes ...string) config.Service {
	s := config.Service{Name: name, Interval: 20 * time.Millisecond, FastInterval: 5 * time.Millisecond,
		Timeout: 15 * time.Millisecond, Rise: 3, Fall: 2,
		Checks: []config.Check{{Type: "tcp", Address: "127.0.0.1:1", Timeout: 15 * time.Millisecond}}}
	for _, p := range prefixes {
		s.Prefixes = append(s.Prefixes, netip.MustParsePrefix(p))
	}
	return s
}

func cfgOf(services ...config.Service) *config.Config {
	for i := range services {
		services[i].FailOpen = true
	}
	return &config.Config{Interface: "lo", OnExit: config.OnExitKeep, Services: services,
		FRR: config.FRR{Timeout: 2 * time.Second, FleetInterval: 5 * time.Second, LastResortMetric: 65535}}
}

func newWorld(t *testing.T, iface *fakeInterface, healthy map[string]bool) *world {
	return newWorldWith(t, iface, healthy, nil)
}

// newWorldWith is newWorld with a read-back (nil: none).
func newWorldWith(t *testing.T, iface *fakeInterface, healthy map[string]bool, rb ReadBack) *world {
	return newFailOpenWorld(t, iface, nil, healthy, rb)
}

// newFailOpenWorld is newWorldWith with a last-resort interface (nil: none).
func newFailOpenWorld(t *testing.T, iface, lastResort *fakeInterface, healthy map[string]bool, rb ReadBack) *world {
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	w := &world{t: t, clock: newManualClock(), iface: iface, checks: map[string]*switchCheck{}, logs: hook, rounds: make(chan Round, 1000)}
	for name, ok := range healthy {
		w.checks[name] = &switchCheck{}
		w.checks[name].healthy.Store(ok)
	}
	opts := Options{
		Clock: w.clock,
		Log:   logger,
		// Each service's checks are the switch of the same name; the
		// check's address only carries the service name through.
		NewChecker: func(c config.Check) (checker.Checker, error) {
			sw, ok := w.checks[c.Address]
			if !ok {
				return nil, fmt.Errorf("no fake check for %q", c.Address)
			}
			return sw, nil
		},
		OnRound: func(r Round) {
			select {
			case w.rounds <- r:
			default:
			}
		},
	}
	if rb != nil {
		opts.ReadBack = func(config.FRR) ReadBack { return rb }
	}
	if lastResort != nil {
		lastResort.name = "anycast-lr"
		opts.LastResort = lastResort
	}
	w.sup = New(iface, "lo", opts)
	return w
}

// withChecks points each service's single check at its switch.
func withChecks(c *config.Config) *config.Config {
	for i := range c.Services {
		c.Services[i].Checks[0].Address = c.Services[i].Name
	}
	return c
}

func (w *world) start(c *config.Config) {
	w.t.Helper()
	if c.StateDir == "" {
		c.StateDir = w.t.TempDir()
	}
	if err := w.sup.Start(context.Background(), withChecks(c)); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { w.sup.Stop(context.Background(), config.OnExitKeep) })
	select {
	case <-w.sup.Ready():
	case <-time.After(5 * time.Second):
		w.t.Fatal("never ready")
	}
	w.settle()
}

// settle waits, in real time, until every goroutine that waits on the clock
// does (each service loop, the reconciler, the verifier, the address
// manager's worker) and the address
// manager has carried out every wish: nothing more happens until the clock
// moves.
func (w *world) settle() {
	w.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.sup.mu.Lock()
		want := len(w.sup.loops) + 3 - w.hung
		w.sup.mu.Unlock()
		w.sup.addrs.mu.Lock()
		idle := w.sup.addrs.gens.done(w.sup.addrs.gens.last())
		w.sup.addrs.mu.Unlock()
		// A verifier that is woken but has not looked yet is not idle.
		verifierIdle := len(w.sup.verify.kick) == 0 || w.hung > 0
		if idle && w.clock.waiting() == want && verifierIdle {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the world did not settle (%d timers set, want %d; address manager idle: %v); log:\n%s",
				w.clock.waiting(), want, idle, w.logText())
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// advance moves the clock by d, fires what is due and settles.
func (w *world) advance(d time.Duration) {
	w.t.Helper()
	w.clock.advance(d)
	w.settle()
}

// until fires the clock's timers one at a time, in order, settling after
// each, until cond holds. It fails after 5000 firings (100 s of the
// default interval) or when nothing is left to fire.
func (w *world) until(what string, cond func() bool) {
	w.t.Helper()
	for i := 0; !cond(); i++ {
		if i == 5000 || !w.clock.fireNext() {
			w.t.Fatalf("never %s (%d timers fired, clock at +%s); changes %v; log:\n%s",
				what, i, w.clock.Now().Sub(newManualClock().Now()), w.iface.history(), w.logText())
		}
		w.settle()
	}
}

// runUnsettled fires the clock's timers one at a time, a millisecond of
// real time apart, until cond holds: for a world that cannot settle because
// a test hangs part of it.
func (w *world) runUnsettled(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("never %s; changes %v; log:\n%s", what, w.iface.history(), w.logText())
		}
		w.clock.fireNext()
		time.Sleep(time.Millisecond)
	}
}

// nextRound runs the world until a service completes a round.
func (w *world) nextRound() Round {
	w.t.Helper()
	var r Round
	w.until("a round", func() bool {
		select {
		case r = <-w.rounds:
			return true
		default:
			return false
		}
	})
	return r
}

// eventually polls cond in real time for what the clock does not drive
// (a check that sleeps in real time, say).
func (w *world) eventually(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting until %s; changes %v; log:\n%s", what, w.iface.history(), w.logText())
		}
		time.Sleep(time.Millisecond)
	}
}

func (w *world) service(name string) status.Service {
	w.t.Helper()
	for _, s := range w.sup.Status() {
		if s.Name == name {
			return s
		}
	}
	w.t.Fatalf("no service %q", name)
	return status.Service{}
}

func (w *world) state(name string) status.State { return w.service(name).State }

func (w *world) logText() string {
	var b strings.Builder
	for _, e := range w.logs.AllEntries() {
		line, _ := (&logrus.TextFormatter{DisableTimestamp: true}).Format(e)
		b.Write(line)
	}
	return b.String()
}

// reload reloads c in the running state directory (which cannot change on
// reload).
func (w *world) reload(c *config.Config) error {
	w.sup.mu.Lock()
	c.StateDir = w.sup.cfg.StateDir
	w.sup.mu.Unlock()
	return w.sup.Reload(context.Background(), c)
}
