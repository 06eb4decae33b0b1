package main

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/advertise"
	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/control"
	"github.com/anycast-watchdog/anycast-watchdog/doctor"
	"github.com/anycast-watchdog/anycast-watchdog/metrics"
	"github.com/anycast-watchdog/anycast-watchdog/status"
	"github.com/anycast-watchdog/anycast-watchdog/unitwatch"
)

// daemon is a running anycast-watchdog: the supervisor that guards the
// configured services, the metrics, and the handler of control requests.
// It is built in one direction: metrics first (the supervisor reports its
// rounds to them), then the supervisor, then the daemon, which is attached
// to the metrics as their status source last.
//
// One goroutine, the one in serve, does everything that changes the
// configuration (SIGHUP and the reload command alike) and stops the daemon;
// that, not a lock, keeps two reloads apart. The running configuration is
// the supervisor's (Supervisor.Config); the daemon keeps no copy.
type daemon struct {
	path    string // the configuration file
	version string
	log     *logrus.Logger
	sup     *advertise.Supervisor
	units   *unitwatch.Watcher // nil: units are not watched (no bus)
	metrics *metrics.Metrics
	notify  notifier
	reloads chan chan error // reload requests from the control socket, for serve

	audit func(context.Context, *config.Config) doctor.Report // nil: no audit

	mu         sync.Mutex // guards the records below; never held across a call out
	lastReload *status.Reload
	reloadsOK  uint64
	reloadsBad uint64
	// The last audit's counts, its generation, and the findings already
	// logged (by check and object), so that each is logged once.
	doctor       *status.Doctor
	auditGen     uint64
	auditsLogged map[string]bool
}

// notifier tells the service manager how the daemon is doing;
// *notify.Notifier is the real one.
type notifier interface {
	Ready()
	Reloading()
	Stopping()
	Status(string)
	Watchdog(ctx context.Context, healthy func() error)
}

// daemonDeps are the outside world the daemon acts on: run passes the real
// ones, tests fakes.
type daemonDeps struct {
	addrs      advertise.AddressControl
	lastResort advertise.LastResortControl         // nil: failing open is off
	readBack   func(config.FRR) advertise.ReadBack // nil: no read-back
	newChecker func(config.Check) (checker.Checker, error)
	notify     notifier
	// audit is doctor's audit of this host (nil: none), run at start and
	// after each reload, off the check path.
	audit func(context.Context, *config.Config) doctor.Report
	// unitBus dials the system bus to watch the services' units (nil:
	// units are not watched, and the checks alone decide).
	unitBus unitwatch.Dialer
}

// listeners are the sockets the daemon serves; nil ones are not served.
type listeners struct {
	control net.Listener
	metrics net.Listener
}

func newDaemon(path string, cfg *config.Config, log *logrus.Logger, deps daemonDeps) *daemon {
	m := metrics.New(versionString())
	if deps.newChecker == nil {
		deps.newChecker = checker.NewBuilder(checker.MaxExecInFlight()).New
	}
	d := &daemon{
		path: path, version: versionString(), log: log, metrics: m, notify: deps.notify,
		reloads: make(chan chan error), audit: deps.audit, auditsLogged: map[string]bool{},
		sup: advertise.New(deps.addrs, cfg.Interface, advertise.Options{
			Log: log, ReadBack: deps.readBack, NewChecker: deps.newChecker, OnRound: m.ObserveRound, LastResort: deps.lastResort,
		}),
	}
	if deps.unitBus != nil {
		d.units = unitwatch.New(deps.unitBus, log, d.sup.SetUnit)
	}
	m.Attach(d)
	return d
}

// run starts guarding cfg's services and serves until a stop signal; it
// returns the exit status: 0 after a clean stop, 1 when the services could
// not be started.
func (d *daemon) run(ctx context.Context, cfg *config.Config, ls listeners, signals <-chan os.Signal) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := d.sup.Start(ctx, cfg); err != nil {
		d.log.WithError(err).Error("not starting")
		return 1
	}
	if d.units != nil {
		d.units.Watch(cfg.AllUnits())
		go d.units.Run(ctx)
	}
	if ls.control != nil {
		go control.Serve(ctx, ls.control, d, control.AccessForProcess(), d.log)
	}
	if ls.metrics != nil {
		serveMetrics(ctx, ls.metrics, d.metrics, d.log)
	}
	d.log.WithFields(logrus.Fields{"version": d.version, "config": d.path, "services": len(cfg.Services),
		"interface": cfg.Interface, "control_socket": cfg.ControlSocket, "metrics": cfg.MetricsListen}).Info("anycast-watchdog started")
	d.startAudit(ctx, cfg)
	return d.serve(ctx, cancel, signals)
}

// serve is the main loop: readiness, systemd's status line and watchdog,
// reloads and the stop.
func (d *daemon) serve(ctx context.Context, cancel context.CancelFunc, signals <-chan os.Signal) int {
	// systemd's watchdog is pinged only while this loop answers and every
	// service loop completes its rounds.
	alive := make(chan chan struct{})
	go d.notify.Watchdog(ctx, func() error {
		reply := make(chan struct{})
		select {
		case alive <- reply:
		case <-time.After(2 * time.Second):
			return errors.New("the main loop does not answer")
		}
		<-reply
		return d.sup.Progress()
	})

	statusTick := time.NewTicker(time.Second)
	defer statusTick.Stop()
	ready, line := d.sup.Ready(), ""
	for {
		select {
		case reply := <-alive:
			close(reply)
		case <-ready:
			ready = nil
			line = status.Summary(d.sup.Status())
			d.notify.Status(line)
			d.notify.Ready()
			d.log.WithField("status", line).Info("every service has its first verdict; ready")
		case <-statusTick.C:
			if s := status.Summary(d.sup.Status()); s != line {
				line = s
				d.notify.Status(s)
			}
		case reply := <-d.reloads:
			reply <- d.reload(ctx)
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				d.notify.Reloading()
				if err := d.reload(ctx); err != nil {
					d.log.WithError(err).Error("reload failed; the running configuration stays")
				}
				d.notify.Ready()
				continue
			}
			cfg, _ := d.sup.Config()
			d.log.WithFields(logrus.Fields{"signal": sig.String(), "on_exit": cfg.OnExit}).Info("stopping")
			d.notify.Stopping()
			cancel()
			d.sup.Stop(context.Background(), cfg.OnExit)
			d.log.Info("stopped")
			return 0
		}
	}
}

// reload loads the configuration file again and switches to it, or keeps
// the running one and returns why not; either way the outcome is recorded
// for status and metrics. Only serve calls it.
func (d *daemon) reload(ctx context.Context) error {
	err := d.switchConfig(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastReload = &status.Reload{At: time.Now(), OK: err == nil}
	if err != nil {
		d.lastReload.Error = err.Error()
		d.reloadsBad++
	} else {
		d.reloadsOK++
	}
	return err
}

func (d *daemon) switchConfig(ctx context.Context) error {
	next, err := config.Load(d.path)
	if err != nil {
		return err
	}
	if err := d.sup.Reload(ctx, next); err != nil {
		return err
	}
	if d.units != nil {
		d.units.Watch(next.AllUnits()) // told again, the new loops learn their units' states
	}
	configureLogger(d.log, next)
	logWarnings(d.log, next)
	d.log.WithFields(logrus.Fields{"config": d.path, "services": len(next.Services)}).Info("configuration reloaded")
	d.startAudit(ctx, next)
	return nil
}

// Report is the status document for a reader (the status command, a
// scrape): the view of the fleet is read again first when it is
// fleet_interval old (Supervisor.FreshFleet).
func (d *daemon) Report(ctx context.Context) status.Document {
	d.sup.FreshFleet(ctx)
	return d.Status()
}

// Status is the status document: the supervisor's services and read-back,
// with the configuration's part, as they are; it reads nothing.
func (d *daemon) Status() status.Document {
	cfg, loadedAt := d.sup.Config()
	st := status.Document{Version: d.version, Config: status.Config{Path: cfg.Path, LoadedAt: loadedAt},
		FRR: d.sup.FRRHealth(), LastResort: d.sup.LastResort(), Services: d.sup.Status()}
	if d.units != nil {
		st.UnitWatch = d.units.Status()
	}
	d.mu.Lock()
	if d.lastReload != nil {
		r := *d.lastReload
		st.Config.LastReload = &r
	}
	if d.doctor != nil {
		c := *d.doctor
		st.Doctor = &c
	}
	d.mu.Unlock()
	return st
}

// Reloads counts the reloads that succeeded and failed, for metrics.
func (d *daemon) Reloads() (succeeded, failed uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reloadsOK, d.reloadsBad
}
