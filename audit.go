package main

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/doctor"
	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
	"github.com/anycast-watchdog/anycast-watchdog/status"
	"github.com/anycast-watchdog/anycast-watchdog/unitwatch"
)

// startAudit runs doctor's audit of cfg on its own goroutine: it reads FRR
// and ip, which may take seconds, and no check or address change waits for
// it. Each finding not logged before is logged once; the counts go to
// status and metrics. An audit that ends after a newer one started is
// dropped.
func (d *daemon) startAudit(ctx context.Context, cfg *config.Config) {
	if d.audit == nil {
		return
	}
	d.mu.Lock()
	d.auditGen++
	gen := d.auditGen
	d.mu.Unlock()
	go func() {
		r := d.audit(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		counts := r.Doctor
		counts.At = time.Now()
		d.mu.Lock()
		if gen != d.auditGen {
			d.mu.Unlock()
			return
		}
		d.doctor = &counts
		var fresh []doctor.Finding
		for _, f := range r.Findings {
			if key := f.Check + " " + f.Object; !d.auditsLogged[key] {
				d.auditsLogged[key] = true
				fresh = append(fresh, f)
			}
		}
		d.mu.Unlock()
		for _, f := range fresh {
			entry := d.log.WithFields(logrus.Fields{"check": f.Check, "object": f.Object, "evidence": f.Evidence, "fix": f.Fix})
			switch f.Severity {
			case doctor.Error:
				entry.Error("doctor: " + f.Message)
			case doctor.Warning:
				entry.Warn("doctor: " + f.Message)
			default:
				entry.Info("doctor: " + f.Message)
			}
		}
		d.log.WithField("findings", counts.Summary()).Info("doctor: audit of this host's FRR done; run anycast-watchdog doctor for details")
	}()
}

// audit gathers this host's facts with the real ip, vtysh and system bus
// and audits them; the daemon and the doctor command share it.
func audit(ctx context.Context, cfg *config.Config, run command.Runner) doctor.Report {
	fr := frr.New(run, cfg.FRR.Vtysh, cfg.FRR.Pathspace, cfg.FRR.Timeout)
	return doctor.Audit(doctor.Gather(ctx, cfg, run, fr, lookupUnits))
}

// lookupUnits reads units once on the system bus, within unitLookupTimeout.
func lookupUnits(ctx context.Context, names []string) ([]status.Unit, error) {
	ctx, cancel := context.WithTimeout(ctx, unitLookupTimeout)
	defer cancel()
	return unitwatch.Lookup(ctx, unitwatch.SystemBus, names)
}

// unitLookupTimeout bounds check-config's and doctor's question to systemd.
const unitLookupTimeout = 2 * time.Second
