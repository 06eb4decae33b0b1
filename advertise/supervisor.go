package advertise

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
)

// Options are a Supervisor's collaborators; zero values take the real ones.
type Options struct {
	Clock      Clock
	Log        logrus.FieldLogger
	NewChecker func(config.Check) (checker.Checker, error)
	OnRound    func(Round) // called after every round, from the service's goroutine
	// ReadBack builds the FRR read-back from the frr section; nil, or
	// frr.verify: false, turns verification off.
	ReadBack func(config.FRR) ReadBack
}

// Supervisor runs one loop per configured service and the reconciler.
type Supervisor struct {
	opts   Options
	addrs  *addressManager
	verify *verifier

	mu       sync.Mutex
	cfg      *config.Config
	loops    map[string]*serviceLoop
	loadedAt time.Time
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{} // the reconciler ended
	ready    chan struct{}
	// reconcileEvery is read by the reconciler without mu, so that Stop
	// can hold mu while it waits for the reconciler to end.
	reconcileEvery atomic.Int64
}

// New returns a Supervisor that changes the interface through ctl.
func New(ctl AddressControl, dev string, opts Options) *Supervisor {
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Log == nil {
		opts.Log = logrus.New()
	}
	if opts.NewChecker == nil {
		opts.NewChecker = checker.New
	}
	s := &Supervisor{
		opts:  opts,
		addrs: newAddressManager(ctl, dev, opts.Clock, opts.Log),
		loops: map[string]*serviceLoop{},
		done:  make(chan struct{}),
		ready: make(chan struct{}),
	}
	s.verify = newVerifier(s.addrs, opts.Clock, opts.Log)
	s.addrs.onChange = s.verify.changed
	return s
}

func (s *Supervisor) readBack(cfg *config.Config) ReadBack {
	if s.opts.ReadBack == nil || !cfg.FRR.Verify {
		return nil
	}
	return s.opts.ReadBack(cfg.FRR)
}

// Start reads the interface once, starts every service as up if any of its
// prefixes is already there and as down otherwise, and starts reconciling.
func (s *Supervisor) Start(ctx context.Context, cfg *config.Config) error {
	link, err := s.addrs.show(ctx)
	if err != nil {
		return fmt.Errorf("read the interface at start: %w", err)
	}
	loops, err := s.buildLoops(cfg, link, nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.setConfig(cfg)
	for name, l := range loops {
		s.adopt(name, l, link)
	}
	s.verify.setReadBack(s.readBack(cfg))
	go s.reconcileLoop()
	go s.verify.run(s.ctx)
	go s.waitReady(loops)
	return nil
}

// Ready is closed once every service has had its first round and the
// interface has been reconciled with the verdicts.
func (s *Supervisor) Ready() <-chan struct{} { return s.ready }

func (s *Supervisor) waitReady(loops map[string]*serviceLoop) {
	for _, l := range loops {
		select {
		case <-l.firstRound:
		case <-l.done:
		}
	}
	s.addrs.reconcile(s.ctx)
	close(s.ready)
}

// buildLoops makes loops for the services in cfg that are new or changed
// against current; it changes nothing, so a failure leaves all as it was.
func (s *Supervisor) buildLoops(cfg *config.Config, link ifaddr.Link, current map[string]*serviceLoop) (map[string]*serviceLoop, error) {
	loops := map[string]*serviceLoop{}
	for _, svc := range cfg.Services {
		old := current[svc.Name]
		if old != nil && reflect.DeepEqual(old.cfg, svc) {
			continue
		}
		// A replaced service's state is taken over once its old loop has
		// stopped (see Reload); until then this is a placeholder.
		l, err := newServiceLoop(svc, anyPresent(link, svc.Prefixes), s.addrs, s.opts.Clock, s.opts.Log, s.opts.OnRound, s.opts.NewChecker)
		if err != nil {
			return nil, err
		}
		loops[svc.Name] = l
	}
	return loops, nil
}

// adopt registers a built loop's prefixes and starts it. Call with mu held.
func (s *Supervisor) adopt(name string, l *serviceLoop, link ifaddr.Link) {
	want := l.hyst.State().Advertised()
	s.addrs.manage(name, l.cfg.Prefixes, want, link.Has)
	s.opts.Log.WithFields(logrus.Fields{"service": name, "prefixes": prefixList(l.cfg.Prefixes),
		"state": l.hyst.State().String(), "reason": l.status.Reason}).Info("service started")
	s.loops[name] = l
	l.start(s.ctx)
}

// Reload switches to cfg atomically: services whose configuration is
// unchanged keep running with their state and counters; changed ones
// restart keeping whether they are advertised; removed ones are withdrawn.
// On error nothing has changed.
func (s *Supervisor) Reload(ctx context.Context, cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cfg.Interface != s.cfg.Interface {
		return fmt.Errorf("interface cannot change on reload (%s → %s): restart the daemon", s.cfg.Interface, cfg.Interface)
	}
	link, err := s.addrs.show(ctx)
	if err != nil {
		return fmt.Errorf("read the interface for reload: %w", err)
	}
	loops, err := s.buildLoops(cfg, link, s.loops)
	if err != nil {
		return err
	}
	// Everything new is built; from here on nothing can fail.
	keep := map[netip.Prefix]bool{}
	for _, svc := range cfg.Services {
		for _, p := range svc.Prefixes {
			keep[p] = true
		}
	}
	for name, old := range s.loops {
		_, replaced := loops[name]
		if _, stays := cfg.Service(name); stays && !replaced {
			continue
		}
		old.stop()
		delete(s.loops, name)
		if l, ok := loops[name]; ok {
			// Whether it is advertised survives a change of its settings.
			l.startAs(old.snapshot().State.Advertised(), "configuration changed")
		}
		var orphans []netip.Prefix
		for _, p := range old.cfg.Prefixes {
			if !keep[p] {
				orphans = append(orphans, p)
			}
		}
		if len(orphans) > 0 {
			s.addrs.set(ctx, orphans, false, "no longer in the configuration")
			s.addrs.release(orphans)
		}
		if !replaced {
			s.opts.Log.WithField("service", name).Info("service removed from the configuration")
		}
	}
	for name, l := range loops {
		s.adopt(name, l, link)
	}
	if cfg.FRR != s.cfg.FRR {
		s.verify.setReadBack(s.readBack(cfg))
	}
	s.setConfig(cfg)
	return nil
}

// Stop ends every loop and the reconciler, then applies onExit: with
// config.OnExitWithdraw every managed prefix is removed, with keep they stay
// as they are so a restart does not blip healthy services.
func (s *Supervisor) Stop(ctx context.Context, onExit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancel()
	for _, l := range s.loops {
		l.stop()
	}
	<-s.done
	<-s.verify.done
	if onExit == config.OnExitWithdraw {
		s.addrs.withdrawAll(ctx, "stopping with on_exit: withdraw")
	}
}

// FRRHealth returns, per routing daemon read back, its last error ("" when
// the read-back works).
func (s *Supervisor) FRRHealth() map[string]string { return s.verify.healthStatus() }

// RunNow asks the named service for a round at once.
func (s *Supervisor) RunNow(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.loops[name]
	if ok {
		l.runNow()
	}
	return ok
}

// Status returns every service in configuration order.
func (s *Supervisor) Status() []ServiceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ServiceStatus, 0, len(s.cfg.Services))
	for _, svc := range s.cfg.Services {
		if l, ok := s.loops[svc.Name]; ok {
			st := l.snapshot()
			for i := range st.Prefixes {
				st.Prefixes[i].Verify = s.verify.status(st.Prefixes[i].Prefix)
			}
			out = append(out, st)
		}
	}
	return out
}

// setConfig records the running configuration. Call with mu held.
func (s *Supervisor) setConfig(cfg *config.Config) {
	s.cfg, s.loadedAt = cfg, s.opts.Clock.Now()
	s.reconcileEvery.Store(int64(reconcileInterval(cfg)))
}

// reconcileLoop keeps the interface matching the wishes, at the shortest
// service interval.
func (s *Supervisor) reconcileLoop() {
	defer close(s.done)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.opts.Clock.After(time.Duration(s.reconcileEvery.Load())):
		}
		s.addrs.reconcile(s.ctx)
	}
}

func reconcileInterval(cfg *config.Config) time.Duration {
	every := time.Second
	for _, svc := range cfg.Services {
		every = min(every, svc.Interval)
	}
	return max(every, 100*time.Millisecond)
}

func anyPresent(link ifaddr.Link, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if link.Has(p) {
			return true
		}
	}
	return false
}
