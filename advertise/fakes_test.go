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
	"testing/synctest"
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
	shows     int      // Show calls
	watchers  []func() // watchedInterface's: told of every change by hand
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
	f.shows++
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

// byHand changes the interface behind the daemon's back; its watchers are
// told.
func (f *fakeInterface) byHand(p string, present bool) {
	f.mu.Lock()
	f.present[netip.MustParsePrefix(p)] = present
	watchers := append([]func(){}, f.watchers...)
	f.mu.Unlock()
	for _, changed := range watchers {
		changed()
	}
}

func (f *fakeInterface) showCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.shows
}

// watchedInterface is a fakeInterface that can be watched (ip monitor):
// Watch reports every change by hand until ctx ends, or fails at once
// with failures[0], then [1], … while there are some.
type watchedInterface struct {
	*fakeInterface
	mu       sync.Mutex
	failures []error
	started  int
}

func (w *watchedInterface) Watch(ctx context.Context, changed func()) error {
	w.mu.Lock()
	w.started++
	if len(w.failures) > 0 {
		err := w.failures[0]
		w.failures = w.failures[1:]
		w.mu.Unlock()
		return err
	}
	w.mu.Unlock()
	f := w.fakeInterface
	f.mu.Lock()
	i := len(f.watchers)
	f.watchers = append(f.watchers, changed)
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.watchers[i] = func() {}
	f.mu.Unlock()
	return nil
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

// steppedClock is the bubble's clock (time is fake in a synctest bubble,
// and moves only when every goroutine of the test is blocked), with a wall
// clock the test can step as NTP or date -s would.
type steppedClock struct {
	realClock
	wallStep atomic.Int64
}

// Wall is Now moved by every wall-clock step so far.
func (c *steppedClock) Wall() time.Time { return c.wallAt(time.Now()) }

// wallAt is the wall time at t, a reading of Now.
func (c *steppedClock) wallAt(t time.Time) time.Time {
	return t.Add(time.Duration(c.wallStep.Load()))
}

// stepWall moves the wall clock only.
func (c *steppedClock) stepWall(d time.Duration) { c.wallStep.Add(int64(d)) }

// world is a supervisor wired to fakes, with its log captured. Its tests
// run in a synctest bubble: time moves only when every goroutine of the
// world waits.
type world struct {
	t      *testing.T
	clock  *steppedClock
	iface  *fakeInterface
	checks map[string]*switchCheck // by service name
	sup    *Supervisor
	logs   *logtest.Hook
	rounds chan Round
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
	return newWorldControlled(t, iface, iface, lastResort, healthy, rb)
}

// newWorldControlled is newFailOpenWorld whose primary interface is
// changed and read through ctl (iface, or a wrapper of it).
func newWorldControlled(t *testing.T, iface *fakeInterface, ctl AddressControl, lastResort *fakeInterface, healthy map[string]bool, rb ReadBack) *world {
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	w := &world{t: t, clock: &steppedClock{}, iface: iface, checks: map[string]*switchCheck{}, logs: hook, rounds: make(chan Round, 1000)}
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
	w.sup = New(ctl, "lo", opts)
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

// settle waits until every goroutine of the test's bubble is blocked on
// the clock, a channel or a hung fake: the loops, the reconciler, the
// verifier and the address manager's worker have done all they can until
// the clock moves.
func (w *world) settle() { synctest.Wait() }

// advance lets d of the bubble's time pass, everything due meanwhile
// happening in order, and settles.
func (w *world) advance(d time.Duration) {
	w.t.Helper()
	time.Sleep(d)
	w.settle()
}

// step is how far until moves the clock between looks at its condition.
const step = time.Millisecond

// until lets time pass a step at a time, settling after each, until cond
// holds; it fails after 100 s of the bubble's time.
func (w *world) until(what string, cond func() bool) {
	w.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 100*time.Second {
			w.t.Fatalf("never %s (after %s); changes %v; log:\n%s", what, time.Since(start), w.iface.history(), w.logText())
		}
		w.advance(step)
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
	running, _ := w.sup.Config()
	c.StateDir = running.StateDir
	return w.sup.Reload(context.Background(), c)
}
