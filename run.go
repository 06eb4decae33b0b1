package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/advertise"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/control"
	"github.com/anycast-watchdog/anycast-watchdog/doctor"
	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
	"github.com/anycast-watchdog/anycast-watchdog/instance"
	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
	"github.com/anycast-watchdog/anycast-watchdog/notify"
	"github.com/anycast-watchdog/anycast-watchdog/unitwatch"
)

// newLogger configures a logger as the file says. Under systemd
// (JOURNAL_STREAM set) the journal stamps each line, so we do not.
func newLogger(cfg *config.Config, out io.Writer) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(out)
	configureLogger(log, cfg)
	return log
}

// logWarnings logs, once per load, what the configuration works with but
// should not.
func logWarnings(log logrus.FieldLogger, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		log.WithField("config", cfg.Path).Warn(w)
	}
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

// run is the daemon as a process: the configuration file, signals, the
// sockets, the real ip, vtysh and systemd. It returns the exit status.
func run(path string, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "anycast-watchdog: not starting: %v\n", err)
		return 1
	}
	log := newLogger(cfg, stderr)
	logWarnings(log, cfg)
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)

	// Two daemons must never fight over the same addresses: the interfaces
	// are held first, whatever the control socket says.
	devs := []string{cfg.Interface}
	if cfg.LastResortInterface != "" {
		devs = append(devs, cfg.LastResortInterface)
	}
	held, err := instance.Lock(devs...)
	if err != nil {
		log.WithError(err).Error("not starting")
		return 1
	}
	defer held.Close()
	var ls listeners
	if ls.control, err = control.Listen(cfg.ControlSocket); err != nil {
		if errors.Is(err, control.ErrRunning) {
			log.WithError(err).Error("not starting")
			return 1
		}
		log.WithError(err).Error("no control socket: status, drain and reload by command are unavailable")
	}
	if cfg.MetricsListen != "" {
		if ls.metrics, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			log.WithError(err).Error("no metrics: cannot listen")
		}
	}

	// Only ip gets CAP_NET_ADMIN: its runner gives it back to its own child,
	// and the ambient set every other child would inherit is emptied.
	ipRunner := command.WithCapability(command.CapNetAdmin)
	if err := command.ClearAmbient(); err != nil {
		log.WithError(err).Warn("programs the daemon starts (checks, vtysh) will inherit its capabilities")
	}
	deps := daemonDeps{
		addrs: ifaddr.New(ipRunner, cfg.IP, cfg.Interface),
		readBack: func(c config.FRR) advertise.ReadBack {
			return frr.New(command.Run, c.Vtysh, c.Pathspace, c.Timeout)
		},
		notify:  notify.New(log),
		unitBus: unitwatch.SystemBus,
		audit: func(ctx context.Context, c *config.Config) doctor.Report {
			return audit(ctx, c, command.Run)
		},
	}
	if cfg.LastResortInterface != "" {
		deps.lastResort = ifaddr.New(ipRunner, cfg.IP, cfg.LastResortInterface)
	}
	return newDaemon(path, cfg, log, deps).run(context.Background(), cfg, ls, signals)
}
