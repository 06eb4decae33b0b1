package control

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/advertise"
	"github.com/anycast-watchdog/anycast-watchdog/checker"
)

// Daemon answers control requests for a running supervisor. SIGHUP and the
// reload command both go through Reload, so they behave the same and are
// recorded the same.
type Daemon struct {
	sup     *advertise.Supervisor
	version string
	reload  func() error
	log     logrus.FieldLogger

	mu         sync.Mutex
	lastReload *ReloadStatus
	reloads    map[bool]uint64 // by success
}

// NewDaemon serves sup; reload loads and applies the configuration file.
func NewDaemon(sup *advertise.Supervisor, version string, reload func() error, log logrus.FieldLogger) *Daemon {
	return &Daemon{sup: sup, version: version, reload: reload, log: log, reloads: map[bool]uint64{}}
}

// Reload reloads the configuration and records the outcome.
func (d *Daemon) Reload() error {
	err := d.reload()
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	d.lastReload = &ReloadStatus{At: now, OK: err == nil}
	d.reloads[err == nil]++
	if err != nil {
		d.lastReload.Error = err.Error()
	}
	return err
}

// ReloadCounts returns the reloads that succeeded and failed, and when the
// configuration was last loaded successfully.
func (d *Daemon) ReloadCounts() (ok, failed uint64, lastGood time.Time, lastOK bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, lastGood = d.sup.Config() // when the running configuration was loaded
	return d.reloads[true], d.reloads[false], lastGood, d.lastReload == nil || d.lastReload.OK
}

// Handle carries out one request.
func (d *Daemon) Handle(ctx context.Context, req Request, peer Peer) Response {
	switch req.Command {
	case CmdStatus:
		st := d.Status()
		return Response{OK: true, Status: &st}
	case CmdDrain, CmdUndrain:
		return d.drain(ctx, req, peer)
	case CmdCheck:
		if len(req.Services) != 1 {
			return Response{Error: "check takes exactly one service"}
		}
		round, err := d.sup.CheckNow(ctx, req.Services[0])
		if err != nil {
			return Response{Error: err.Error()}
		}
		d.log.WithFields(logrus.Fields{"service": req.Services[0], "by": peer.String()}).Info("checks run on request")
		return Response{OK: true, Checks: CheckStatuses(round.Results)}
	case CmdReload:
		d.log.WithField("by", peer.String()).Info("reload requested")
		if err := d.Reload(); err != nil {
			d.log.WithError(err).Error("reload failed; the running configuration stays")
			return Response{Error: "reload failed; the running configuration stays: " + err.Error()}
		}
		return Response{OK: true, Message: "configuration reloaded"}
	}
	return Response{Error: fmt.Sprintf("unknown command %q", req.Command)}
}

func (d *Daemon) drain(ctx context.Context, req Request, peer Peer) Response {
	if req.All == (len(req.Services) > 0) {
		return Response{Error: "name services or ask for all, not both or neither"}
	}
	var names []string
	if !req.All {
		names = req.Services
	}
	if req.Command == CmdUndrain {
		done, err := d.sup.Undrain(ctx, names, peer.String())
		if err != nil {
			return Response{Error: err.Error()}
		}
		if len(done) == 0 {
			return Response{OK: true, Message: "nothing was drained"}
		}
		return Response{OK: true, Services: done, Message: "undrained; each must rise again: " + strings.Join(done, ", ")}
	}
	var until time.Time
	if req.For != "" {
		dur, err := time.ParseDuration(req.For)
		if err != nil || dur <= 0 {
			return Response{Error: fmt.Sprintf("--for %q is not a positive duration such as 30m or 2h", req.For)}
		}
		until = time.Now().Add(dur)
	}
	reason := req.Reason
	if reason == "" {
		reason = "no reason given"
	}
	done, err := d.sup.Drain(ctx, names, reason, peer.String(), until)
	if err != nil {
		return Response{Error: err.Error()}
	}
	msg := "drained (withdrawn; checks keep running): " + strings.Join(done, ", ")
	if !until.IsZero() {
		msg += "; until " + until.Format(time.RFC3339)
	}
	return Response{OK: true, Services: done, Message: msg}
}

// Status builds the status document.
func (d *Daemon) Status() Status {
	cfg, loadedAt := d.sup.Config()
	st := Status{Version: d.version, Config: ConfigStatus{Path: cfg.Path, LoadedAt: loadedAt}, FRR: []FRRStatus{}}
	d.mu.Lock()
	if d.lastReload != nil {
		r := *d.lastReload
		st.Config.LastReload = &r
	}
	d.mu.Unlock()
	for _, h := range d.sup.FRRHealth() {
		st.FRR = append(st.FRR, FRRStatus{Daemon: h.Daemon, OK: h.Error == "", Error: h.Error, Errors: h.Errors})
	}
	for _, s := range d.sup.Status() {
		st.Services = append(st.Services, serviceStatus(s))
	}
	return st
}

func serviceStatus(s advertise.ServiceStatus) ServiceStatus {
	out := ServiceStatus{Name: s.Name, State: s.State.String(), Since: s.Since, Reason: s.Reason,
		Passes: s.Passes, Fails: s.Fails, Rise: s.Rise, Fall: s.Fall, Prefixes: []PrefixStatus{}}
	if s.Drain != nil {
		out.State = "drained"
		out.Drain = &DrainStatus{Reason: s.Drain.Reason, By: s.Drain.By, Since: s.Drain.Since}
		if !s.Drain.Until.IsZero() {
			until := s.Drain.Until
			out.Drain.Until = &until
		}
	}
	for _, p := range s.Prefixes {
		ps := PrefixStatus{Prefix: p.Prefix.String(), Wanted: p.Want, Present: p.Present,
			Advertised: string(p.Verify.Advertised), AdvertisedReason: p.Verify.Reason, Mismatches: p.Verify.Mismatches}
		if p.Err != nil {
			ps.Error = p.Err.Error()
		}
		out.Prefixes = append(out.Prefixes, ps)
	}
	out.Checks = []CheckStatus{}
	for _, c := range s.Checks {
		out.Checks = append(out.Checks, checkStatus(c.CheckResult, c.Consecutive))
	}
	return out
}

// CheckStatuses turns one round's results into the wire form.
func CheckStatuses(results []advertise.CheckResult) []CheckStatus {
	out := []CheckStatus{}
	for _, r := range results {
		out = append(out, checkStatus(r, 1))
	}
	return out
}

func checkStatus(r advertise.CheckResult, consecutive int) CheckStatus {
	c := CheckStatus{Check: r.Check, OK: r.Err == nil, LatencySeconds: r.Latency.Seconds(), Consecutive: consecutive}
	if r.Err != nil {
		c.Reason, c.Error = checker.Reason(r.Err), r.Err.Error()
	}
	return c
}
