package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/advertise"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/control"
	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
	"github.com/anycast-watchdog/anycast-watchdog/metrics"
	"github.com/anycast-watchdog/anycast-watchdog/notify"
)

// newLogger configures a logger as the file says. Under systemd
// (JOURNAL_STREAM set) the journal stamps each line, so we do not.
func newLogger(cfg *config.Config, out io.Writer) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(out)
	configureLogger(log, cfg)
	return log
}

func configureLogger(log *logrus.Logger, cfg *config.Config) {
	level, _ := logrus.ParseLevel(cfg.LogLevel) // validated by config
	log.SetLevel(level)
	journal := os.Getenv("JOURNAL_STREAM") != ""
	if cfg.LogFormat == "json" {
		log.SetFormatter(&logrus.JSONFormatter{DisableTimestamp: journal})
	} else {
		log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: journal, FullTimestamp: true})
	}
}

func run(path string, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "anycast-watchdog: not starting: %v\n", err)
		return 1
	}
	log := newLogger(cfg, stderr)
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The control socket first: a second instance must not start fighting
	// the first over the same addresses.
	ctl, err := control.Listen(cfg.ControlSocket)
	if err != nil {
		if errors.Is(err, control.ErrRunning) {
			log.WithError(err).Error("not starting")
			return 1
		}
		log.WithError(err).Error("no control socket: status, drain and reload by command are unavailable")
	}

	// Only ip gets CAP_NET_ADMIN: its runner gives it back to its own child,
	// and the ambient set every other child would inherit is emptied.
	ipRunner := command.WithCapability(command.CapNetAdmin)
	if err := command.ClearAmbient(); err != nil {
		log.WithError(err).Warn("programs the daemon starts (checks, vtysh) will inherit its capabilities")
	}

	var m *metrics.Metrics
	sup := advertise.New(ifaddr.New(ipRunner, "ip", cfg.Interface), cfg.Interface, advertise.Options{
		Log: log,
		ReadBack: func(c config.FRR) advertise.ReadBack {
			return frr.New(command.Run, c.Vtysh, c.Pathspace, c.Timeout)
		},
		OnRound: func(r advertise.Round) { m.ObserveRound(r) },
	})
	var reloadMu sync.Mutex // SIGHUP and the reload command may race
	d := control.NewDaemon(sup, versionString(), func() error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		next, err := config.Load(path)
		if err != nil {
			return err
		}
		if err := sup.Reload(ctx, next); err != nil {
			return err
		}
		configureLogger(log, next)
		cfg = next
		log.WithFields(logrus.Fields{"config": path, "services": len(next.Services)}).Info("configuration reloaded")
		return nil
	}, log)
	m = metrics.New(d, versionString())

	if err := sup.Start(ctx, cfg); err != nil {
		log.WithError(err).Error("not starting")
		return 1
	}
	if ctl != nil {
		go control.Serve(ctx, ctl, d, control.AccessForProcess(), log)
	}
	serveMetrics(ctx, cfg.MetricsListen, m, log)
	log.WithFields(logrus.Fields{"version": versionString(), "config": path, "services": len(cfg.Services),
		"interface": cfg.Interface, "control_socket": cfg.ControlSocket, "metrics": cfg.MetricsListen}).Info("anycast-watchdog started")

	sd := notify.New(log)
	// systemd's watchdog is pinged only while this main loop answers and
	// every service loop completes its rounds.
	mainAlive := make(chan chan struct{})
	go sd.Watchdog(ctx, func() error {
		reply := make(chan struct{})
		select {
		case mainAlive <- reply:
		case <-time.After(2 * time.Second):
			return errors.New("the main loop does not answer")
		}
		<-reply
		return sup.Progress()
	})

	statusTick := time.NewTicker(time.Second)
	defer statusTick.Stop()
	ready, status := sup.Ready(), ""
	for {
		select {
		case reply := <-mainAlive:
			close(reply)
		case <-ready:
			ready = nil
			status = advertise.Summary(sup.Status())
			sd.Status(status)
			sd.Ready()
			log.WithField("status", status).Info("every service has its first verdict; ready")
		case <-statusTick.C:
			if s := advertise.Summary(sup.Status()); s != status {
				status = s
				sd.Status(s)
			}
		case sig := <-signals:
			if sig != syscall.SIGHUP {
				reloadMu.Lock()
				onExit := cfg.OnExit
				reloadMu.Unlock()
				log.WithFields(logrus.Fields{"signal": sig.String(), "on_exit": onExit}).Info("stopping")
				sd.Stopping()
				cancel()
				sup.Stop(context.Background(), onExit)
				log.Info("stopped")
				return 0
			}
			sd.Reloading()
			if err := d.Reload(); err != nil {
				log.WithError(err).Error("reload failed; the running configuration stays")
			}
			sd.Ready()
		}
	}
}

// serveMetrics serves /metrics on addr ("" disables) until ctx ends. The
// daemon guards its services without it, so a failure is logged, not fatal.
func serveMetrics(ctx context.Context, addr string, m *metrics.Metrics, log logrus.FieldLogger) {
	if addr == "" {
		return
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.WithError(err).Error("no metrics: cannot listen")
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("metrics server stopped")
		}
	}()
	go func() { <-ctx.Done(); srv.Close() }()
}
