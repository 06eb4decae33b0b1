// Package notify tells systemd how the daemon is doing through sd_notify:
// READY, STATUS, RELOADING, STOPPING, and WATCHDOG pings that are sent only
// while the daemon really makes progress. Without NOTIFY_SOCKET every call
// is a no-op.
package notify

import (
	"context"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
)

// Notifier sends states to systemd.
type Notifier struct {
	log logrus.FieldLogger
}

// New returns a Notifier that logs send failures to log.
func New(log logrus.FieldLogger) *Notifier { return &Notifier{log: log} }

func (n *Notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.WithError(err).Warn("cannot notify systemd")
	}
}

// Ready says start-up (or a reload) is complete.
func (n *Notifier) Ready() { n.send(daemon.SdNotifyReady) }

// Status sets the one-line status systemctl shows.
func (n *Notifier) Status(s string) { n.send("STATUS=" + s) }

// Reloading says a reload began; Ready must follow.
func (n *Notifier) Reloading() { n.send(daemon.SdNotifyMonotonicUsec() + daemon.SdNotifyReloading) }

// Stopping says the daemon is shutting down.
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }

// Watchdog pings systemd's watchdog at half its interval, but only while
// healthy returns nil: a daemon that is alive but wedged must be killed
// and restarted by systemd, not kept alive by a bare ticker. It returns at
// once when the watchdog is off, else when ctx ends.
func (n *Notifier) Watchdog(ctx context.Context, healthy func() error) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.WithError(err).Warn("systemd watchdog misconfigured; not pinging")
		return
	}
	if interval == 0 {
		return
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	withheld := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := healthy(); err != nil {
			if err.Error() != withheld {
				n.log.WithError(err).WithField("watchdog", interval.String()).
					Error("not pinging systemd's watchdog: the daemon is not making progress; systemd will restart it")
				withheld = err.Error()
			}
			continue
		}
		if withheld != "" {
			n.log.Info("making progress again; pinging systemd's watchdog")
			withheld = ""
		}
		n.send(daemon.SdNotifyWatchdog)
	}
}
