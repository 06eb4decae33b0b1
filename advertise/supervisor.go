package advertise

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"strings"
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
	drains   map[string]Drain
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
	// A drain must survive restarts: rather not start than forget one.
	drains, err := newDrainFile(cfg.StateDir).load()
	if err != nil {
		return fmt.Errorf("%w (fix or remove the file; not starting, so no drained service is put back)", err)
	}
	loops, err := s.buildLoops(cfg, link, nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drains = drains
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
	if d, ok := s.drains[name]; ok {
		l.drain = &d
		l.status.Reason = "drained: " + d.Reason
	}
	want := l.advertised()
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
	if err := s.cfg.ReloadableTo(cfg); err != nil {
		return err
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
	dropped := false
	for name := range s.drains {
		if _, ok := cfg.Service(name); !ok {
			delete(s.drains, name)
			dropped = true
		}
	}
	if dropped {
		s.saveDrains(cfg.StateDir)
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
	// Not under mu while waiting: the reconciler takes mu to expire drains.
	s.mu.Lock()
	s.cancel()
	loops := make([]*serviceLoop, 0, len(s.loops))
	for _, l := range s.loops {
		loops = append(loops, l)
	}
	s.mu.Unlock()
	for _, l := range loops {
		l.stop()
	}
	<-s.done
	<-s.verify.done
	if onExit == config.OnExitWithdraw {
		s.addrs.withdrawAll(ctx, "stopping with on_exit: withdraw")
	}
}

// Progress returns an error when a service loop is wedged: it has not
// completed a round in its expected window. systemd's watchdog is pinged
// only while this is nil.
func (s *Supervisor) Progress() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Clock.Now()
	for _, svc := range s.cfg.Services {
		if l, ok := s.loops[svc.Name]; ok {
			if err := l.progress(now); err != nil {
				return err
			}
		}
	}
	return nil
}

// FRRHealth returns the read-back's view of each routing daemon.
func (s *Supervisor) FRRHealth() []FRRHealth { return s.verify.healthStatus() }

// CheckNow runs a round of the named service's checks at once (after the
// one under way, if any) and returns it; the round counts as any other.
func (s *Supervisor) CheckNow(ctx context.Context, name string) (Round, error) {
	s.mu.Lock()
	l, ok := s.loops[name]
	s.mu.Unlock()
	if !ok {
		return Round{}, fmt.Errorf("no service %q", name)
	}
	return l.checkNow(ctx)
}

// Drain takes the named services (all of them when names is empty) out of
// rotation at once, whatever their checks say, until Undrain or until
// (when not zero). The drain is saved first: if it cannot be saved,
// nothing changes.
func (s *Supervisor) Drain(ctx context.Context, names []string, reason, by string, until time.Time) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	targets, err := s.targets(names)
	if err != nil {
		return nil, err
	}
	next := maps.Clone(s.drains)
	now := s.opts.Clock.Now()
	for _, name := range targets {
		next[name] = Drain{Reason: reason, By: by, Since: now, Until: until}
	}
	if err := newDrainFile(s.cfg.StateDir).save(next); err != nil {
		return nil, err
	}
	s.drains = next
	for _, name := range targets {
		d := next[name]
		s.loops[name].setDrain(ctx, &d, "")
		entry := s.opts.Log.WithFields(logrus.Fields{"service": name, "reason": reason, "by": by})
		if !until.IsZero() {
			entry = entry.WithField("until", until.Format(time.RFC3339))
		}
		entry.Warn("service drained: withdrawn whatever its checks say")
	}
	return targets, nil
}

// Undrain puts the named services (all drained ones when names is empty)
// back under their checks; each must rise again before it is advertised.
func (s *Supervisor) Undrain(ctx context.Context, names []string, by string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(names) == 0 {
		if len(s.drains) == 0 {
			return nil, nil // targets would read "none" as "all services"
		}
		for name := range s.drains {
			names = append(names, name)
		}
	}
	targets, err := s.targets(names)
	if err != nil {
		return nil, err
	}
	return targets, s.undrain(ctx, targets, "undrained by "+by, by)
}

// undrain removes drains, saved first. Call with mu held.
func (s *Supervisor) undrain(ctx context.Context, names []string, why, by string) error {
	next := maps.Clone(s.drains)
	for _, name := range names {
		delete(next, name)
	}
	if err := newDrainFile(s.cfg.StateDir).save(next); err != nil {
		return err
	}
	for _, name := range names {
		_, was := s.drains[name]
		if was {
			s.loops[name].setDrain(ctx, nil, why)
			s.opts.Log.WithFields(logrus.Fields{"service": name, "by": by}).Info("service undrained: " + why + "; it must rise again")
		}
	}
	s.drains = next
	return nil
}

// expireDrains ends timed drains that have run out.
func (s *Supervisor) expireDrains(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var expired []string
	now := s.opts.Clock.Now()
	for name, d := range s.drains {
		if d.Expired(now) {
			expired = append(expired, name)
		}
	}
	if len(expired) == 0 {
		return
	}
	if err := s.undrain(ctx, expired, "drain expired", "expiry"); err != nil {
		s.opts.Log.WithError(err).Error("cannot end expired drains; will retry")
	}
}

// saveDrains saves after a removal that cannot be refused. Call with mu held.
func (s *Supervisor) saveDrains(stateDir string) {
	if err := newDrainFile(stateDir).save(s.drains); err != nil {
		s.opts.Log.WithError(err).Error("cannot save drains")
	}
}

// targets resolves service names (all when empty), all known or an error.
func (s *Supervisor) targets(names []string) ([]string, error) {
	if len(names) == 0 {
		for _, svc := range s.cfg.Services {
			names = append(names, svc.Name)
		}
	}
	var unknown []string
	for _, n := range names {
		if _, ok := s.loops[n]; !ok {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("no such service: %s", strings.Join(unknown, ", "))
	}
	return names, nil
}

// Config returns the running configuration and when it was loaded.
func (s *Supervisor) Config() (*config.Config, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg, s.loadedAt
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
	s.cfg, s.loadedAt = cfg, s.opts.Clock.Wall()
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
		s.expireDrains(s.ctx)
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
