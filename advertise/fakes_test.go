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
)

// fakeInterface is an interface in memory that records every change.
type fakeInterface struct {
	mu      sync.Mutex
	present map[netip.Prefix]bool
	changes []string // "add P" / "del P", in order
	fail    error    // when set, Add and Del fail with it
	showErr error
}

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

func (f *fakeInterface) change(op string, p netip.Prefix, to bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.present[p] = to
	f.changes = append(f.changes, op+" "+p.String())
	return nil
}

func (f *fakeInterface) Add(_ context.Context, p netip.Prefix) error { return f.change("add", p, true) }
func (f *fakeInterface) Del(_ context.Context, p netip.Prefix) error {
	return f.change("del", p, false)
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
	running  atomic.Int32
	overlaps atomic.Int32
	runs     atomic.Int32
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
	if !c.healthy.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// world is a supervisor wired to fakes, with its log captured.
type world struct {
	t      *testing.T
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
	return &config.Config{Interface: "lo", OnExit: config.OnExitKeep, Services: services}
}

func newWorld(t *testing.T, iface *fakeInterface, healthy map[string]bool) *world {
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	w := &world{t: t, iface: iface, checks: map[string]*switchCheck{}, logs: hook, rounds: make(chan Round, 1000)}
	for name, ok := range healthy {
		w.checks[name] = &switchCheck{}
		w.checks[name].healthy.Store(ok)
	}
	w.sup = New(iface, "lo", Options{
		Log: logger,
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
	})
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
	case <-time.After(2 * time.Second):
		w.t.Fatal("never ready")
	}
}

// eventually polls cond for up to two seconds.
func (w *world) eventually(what string, cond func() bool) {
	w.t.Helper()
	w.eventually2(2*time.Second, what, cond)
}

// eventually2 polls cond for up to within.
func (w *world) eventually2(within time.Duration, what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting until %s; changes %v; log:\n%s", what, w.iface.history(), w.logText())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (w *world) state(name string) State {
	for _, s := range w.sup.Status() {
		if s.Name == name {
			return s.State
		}
	}
	w.t.Fatalf("no service %q", name)
	return Down
}

func (w *world) logText() string {
	var b strings.Builder
	for _, e := range w.logs.AllEntries() {
		line, _ := (&logrus.TextFormatter{DisableTimestamp: true}).Format(e)
		b.Write(line)
	}
	return b.String()
}
