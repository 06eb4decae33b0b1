package advertise

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// Options are a Supervisor's collaborators; zero values take the real ones.
type Options struct {
	Clock      Clock
	Log        logrus.FieldLogger
	NewChecker func(config.Check) (checker.Checker, error)
	OnRound    func(Round) // called after every round, from the service's goroutine
	// ReadBack builds the FRR read-back from the frr section; nil, or
	// frr.verify: false, turns verification and the fleet view off.
	ReadBack func(config.FRR) ReadBack
	// LastResort is the last-resort interface (last_resort_interface);
	// nil turns failing open off.
	LastResort LastResortControl
}

// LastResortControl is the last-resort interface: an AddressControl that
// can make the interface exist and be up; *ifaddr.Controller is the real
// one.
type LastResortControl interface {
	AddressControl
	Name() string
	Ensure(ctx context.Context) (done string, err error)
}

// Supervisor runs one loop per configured service, the address manager's
// worker, the read-back verifier and the reconciler (see doc.go).
type Supervisor struct {
	opts   Options
	epoch  time.Time // when New ran: the origin of the rounds' grid (onGrid)
	addrs  *addressManager
	verify *verifier
	fleet  *fleetStore
	// penalties is every service's flap damping, kept in state_dir.
	penalties *penaltyBook
	// lastResort is the last-resort interface's health, set by Start;
	// nil when failing open is off.
	lastResort *status.LastResortHealth

	mu       sync.Mutex
	cfg      *config.Config
	loops    map[string]*serviceLoop
	drains   map[string]status.Drain
	loadedAt time.Time
	// cancel ends the reconciler, the verifier and waitReady (the loops
	// are stopped one by one).
	cancel context.CancelFunc
	done   chan struct{} // the reconciler ended
	ready  chan struct{}
	// stopAddrs ends the address manager's worker, last of all.
	stopAddrs context.CancelFunc
	// saveErrs holds the last failure to save the drains, logged once.
	saveErrs lastErrors
	// reconcileEvery is read by the reconciler without mu, so that Stop
	// can hold mu while it waits for the reconciler to end.
	reconcileEvery atomic.Int64
}

// New returns a Supervisor that changes the interface dev through ctl.
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
	changed := newWakeup()
	fleet := newFleetStore(0)
	addrs := newAddressManager(ctl, dev, fleet, opts.Clock, opts.Log, changed.notify)
	return &Supervisor{
		opts:      opts,
		epoch:     opts.Clock.Now(),
		addrs:     addrs,
		fleet:     fleet,
		penalties: newPenaltyBook(opts.Log),
		verify:    newVerifier(addrs, fleet, changed, opts.Clock, opts.Log),
		loops:     map[string]*serviceLoop{},
		saveErrs:  lastErrors{},
		done:      make(chan struct{}),
		ready:     make(chan struct{}),
	}
}

func (s *Supervisor) readBack(cfg *config.Config) ReadBack {
	if s.opts.ReadBack == nil || !cfg.FRR.Verify {
		return nil
	}
	return s.opts.ReadBack(cfg.FRR)
}

func (s *Supervisor) deps() loopDeps {
	return loopDeps{addrs: s.addrs, clock: s.opts.Clock, epoch: s.epoch, log: s.opts.Log, onRound: s.opts.OnRound, newChecker: s.opts.NewChecker,
		penalties: s.penalties}
}

// Start finds or creates the last-resort interface, reads the interfaces
// once, starts every service as up if any of its prefixes is already on the
// primary interface and as down otherwise (leaving each prefix where it
// is), and starts reconciling. It returns an error, and starts nothing,
// when the primary interface cannot be read, the drains cannot be loaded,
// or a check cannot be built. A last-resort interface that cannot be used
// is not an error: failing open is then off, as the log, status and
// metrics say.
func (s *Supervisor) Start(ctx context.Context, cfg *config.Config) error {
	s.setUpLastResort(ctx)
	link, err := s.readLinks(ctx)
	if err != nil {
		return fmt.Errorf("read the interface at start: %w", err)
	}
	// A drain must survive restarts: rather not start than forget one.
	drains, err := newDrainFile(cfg.StateDir).load()
	if err != nil {
		return fmt.Errorf("%w (fix or remove the file; not starting, so no drained service is put back)", err)
	}
	// So must a flapping service's penalty.
	if err := s.penalties.load(cfg.StateDir); err != nil {
		return fmt.Errorf("%w (fix or remove the file; not starting, so no flapping service is forgotten)", err)
	}
	loops, err := s.buildLoops(cfg, link.primary, nil)
	if err != nil {
		return err
	}
	s.dropRemovedDrains(drains, cfg)
	s.penalties.keepOnly(dampedIn(cfg))
	workerCtx, stopAddrs := context.WithCancel(context.Background())
	go s.addrs.run(workerCtx)
	runCtx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopAddrs, s.cancel = stopAddrs, cancel
	s.drains = drains
	s.setConfig(cfg)
	for name, l := range loops {
		s.adopt(name, l, link)
	}
	s.verify.setReadBack(s.readBack(cfg), cfg.FRR.FleetInterval)
	go s.reconcileLoop(runCtx)
	go s.verify.run(runCtx)
	go s.waitReady(runCtx, loops)
	return nil
}

// setUpLastResort finds or creates the last-resort interface and hands it
// to the address manager, or records and logs, once, why failing open is
// off.
func (s *Supervisor) setUpLastResort(ctx context.Context) {
	lr := s.opts.LastResort
	if lr == nil {
		return
	}
	s.lastResort = &status.LastResortHealth{Interface: lr.Name(), OK: true}
	log := s.opts.Log.WithField("interface", lr.Name())
	ctx, cancel := context.WithTimeout(ctx, 2*ipTimeout)
	defer cancel()
	done, err := lr.Ensure(ctx)
	if err != nil {
		s.lastResort.OK, s.lastResort.Error = false, err.Error()
		log.WithError(err).Error("no last-resort interface: failing open is off, a failing service's addresses are removed at once")
		return
	}
	if done != "" {
		log.Info("last-resort interface " + done)
	}
	s.addrs.useLastResort(lr, lr.Name())
}

// links are the two interfaces as read once.
type links struct{ primary, lastResort ifaddr.Link }

func (s *Supervisor) readLinks(ctx context.Context) (links, error) {
	primary, err := s.addrs.show(ctx)
	if err != nil {
		return links{}, err
	}
	lastResort, err := s.addrs.showLastResort(ctx)
	if err != nil {
		// Its prefixes are then taken as absent; the reconciler tells.
		s.opts.Log.WithError(err).Warn("cannot read the last-resort interface")
	}
	return links{primary, lastResort}, nil
}

// Ready is closed once every service has had its first round and the
// interface has been reconciled with the verdicts.
func (s *Supervisor) Ready() <-chan struct{} { return s.ready }

func (s *Supervisor) waitReady(ctx context.Context, loops map[string]*serviceLoop) {
	for _, l := range loops {
		select {
		case <-l.firstRound:
		case <-l.done:
		}
	}
	s.addrs.wait(ctx, s.addrs.reconcileSoon())
	close(s.ready)
}

// buildLoops makes loops for the services in cfg that are new or changed
// against current; it changes nothing, so a failure leaves all as it was.
func (s *Supervisor) buildLoops(cfg *config.Config, link ifaddr.Link, current map[string]*serviceLoop) (map[string]*serviceLoop, error) {
	loops := map[string]*serviceLoop{}
	places := offsets(cfg.Services)
	for _, svc := range cfg.Services {
		old := current[svc.Name]
		if old != nil && reflect.DeepEqual(old.cfg, svc) {
			continue
		}
		// A replaced service's state is taken over once its old loop has
		// stopped (see Reload); until then this is a placeholder.
		l, err := newServiceLoop(svc, places[svc.Name], anyPresent(link, svc.Prefixes), s.deps())
		if err != nil {
			return nil, err
		}
		loops[svc.Name] = l
	}
	return loops, nil
}

// adopt registers a built loop's prefixes where they are and starts it.
// Call with mu held.
func (s *Supervisor) adopt(name string, l *serviceLoop, link links) {
	if d, ok := s.drains[name]; ok {
		l.drain = &d
		l.reason = "drained: " + d.Reason
	}
	l.mu.Lock()
	l.judgeDamping()
	w := l.wish()
	l.mu.Unlock()
	s.addrs.manage(managed{service: name, prefixes: l.cfg.Prefixes, wish: w, reason: l.reason,
		failOpen: l.cfg.FailOpen, grace: l.cfg.DrainGrace}, link.primary, link.lastResort)
	s.opts.Log.WithFields(logrus.Fields{"service": name, "prefixes": prefixList(l.cfg.Prefixes),
		"state": l.hyst.State().String(), "reason": l.reason}).Info("service started")
	s.loops[name] = l
	l.start()
}

// Reload switches to cfg: services whose configuration is unchanged keep
// running with their state and counters; changed ones restart keeping
// whether they are advertised; removed ones are withdrawn. On error nothing
// has changed. No lock is held while it reads the interface or waits for
// old loops to stop, so status answers throughout; the daemon calls it
// from one goroutine only, which is what keeps two reloads apart.
func (s *Supervisor) Reload(ctx context.Context, cfg *config.Config) error {
	s.mu.Lock()
	running, current := s.cfg, maps.Clone(s.loops)
	s.mu.Unlock()
	if err := running.ReloadableTo(cfg); err != nil {
		return err
	}
	link, err := s.readLinks(ctx)
	if err != nil {
		return fmt.Errorf("read the interface for reload: %w", err)
	}
	loops, err := s.buildLoops(cfg, link.primary, current)
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
	ending := map[string]*serviceLoop{} // removed or replaced
	for name, old := range current {
		_, replaced := loops[name]
		if _, stays := cfg.Service(name); !stays || replaced {
			ending[name] = old
		}
	}
	for _, old := range ending {
		old.stop()
	}

	s.mu.Lock()
	var orphans []netip.Prefix
	for name, old := range ending {
		delete(s.loops, name)
		l, replaced := loops[name]
		if replaced {
			l.takeOver(old)
		} else {
			s.opts.Log.WithField("service", name).Info("service removed from the configuration")
		}
		for _, p := range old.cfg.Prefixes {
			if !keep[p] {
				orphans = append(orphans, p)
			}
		}
	}
	s.dropRemovedDrains(s.drains, cfg)
	s.penalties.keepOnly(dampedIn(cfg))
	for name, l := range loops {
		s.adopt(name, l, link)
	}
	if cfg.FRR != s.cfg.FRR {
		s.verify.setReadBack(s.readBack(cfg), cfg.FRR.FleetInterval)
	}
	s.setConfig(cfg)
	s.addrs.retire(orphans, "no longer in the configuration")
	gen := s.addrs.reconcileSoon() // new services' wishes
	s.mu.Unlock()
	s.addrs.wait(ctx, gen)
	return nil
}

// Stop ends every loop, the verifier and the reconciler, then applies
// onExit: with config.OnExitWithdraw every managed prefix is removed, with
// keep they stay as they are so a restart does not blip healthy services.
// The address manager's worker ends last.
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
		// The graceful path of a drain: at last resort for drain_grace,
		// then removed.
		grace := time.Duration(0)
		for _, l := range loops {
			grace = max(grace, l.cfg.DrainGrace)
		}
		ctx, cancel := context.WithTimeout(ctx, grace+2*ipTimeout)
		s.addrs.wait(ctx, s.addrs.withdrawAll("stopping with on_exit: withdraw"))
		s.addrs.settled(ctx)
		cancel()
	}
	s.stopAddrs()
	<-s.addrs.done
}

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

// setConfig records the running configuration. Call with mu held.
func (s *Supervisor) setConfig(cfg *config.Config) {
	s.cfg, s.loadedAt = cfg, s.opts.Clock.Wall()
	s.fleet.setMetric(cfg.FRR.LastResortMetric)
	s.reconcileEvery.Store(int64(reconcileInterval(cfg)))
}

// dampedIn says which services of cfg keep a damping penalty: those
// configured, with a mode other than off.
func dampedIn(cfg *config.Config) func(string) bool {
	return func(name string) bool {
		svc, ok := cfg.Service(name)
		return ok && svc.Damping.Params().Keeps()
	}
}

func anyPresent(link ifaddr.Link, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if link.Has(p) {
			return true
		}
	}
	return false
}
