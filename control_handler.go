package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/advertise"
	"github.com/anycast-watchdog/anycast-watchdog/control"
)

// maxDrainReason bounds a drain's reason: it is kept in memory and in
// drains.json, and logged.
const maxDrainReason = 1024

// Handle carries out one control request from peer.
func (d *daemon) Handle(ctx context.Context, req control.Request, peer control.Peer) control.Response {
	switch req.Command {
	case control.CmdStatus:
		st := d.Report(ctx)
		return control.Response{OK: true, Status: &st}
	case control.CmdDrain, control.CmdUndrain:
		return d.drain(ctx, req, peer)
	case control.CmdUndamp:
		return d.undamp(ctx, req, peer)
	case control.CmdCheck:
		if len(req.Services) != 1 {
			return control.Response{Error: "check takes exactly one service"}
		}
		round, err := d.sup.CheckNow(ctx, req.Services[0])
		if err != nil {
			return control.Response{Error: err.Error()}
		}
		d.log.WithFields(logrus.Fields{"service": req.Services[0], "by": peer.String()}).Info("checks run on request")
		return control.Response{OK: true, Checks: advertise.CheckStatuses(round.Results)}
	case control.CmdReload:
		d.log.WithField("by", peer.String()).Info("reload requested")
		if err := d.requestReload(ctx); err != nil {
			d.log.WithError(err).Error("reload failed; the running configuration stays")
			return control.Response{Error: "reload failed; the running configuration stays: " + err.Error()}
		}
		return control.Response{OK: true, Message: "configuration reloaded"}
	}
	return control.Response{Error: fmt.Sprintf("unknown command %q", req.Command)}
}

// requestReload has serve reload and returns its outcome.
func (d *daemon) requestReload(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case d.reloads <- reply:
	case <-ctx.Done():
		return fmt.Errorf("reload not started: %w", ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("reload under way, outcome unknown: %w", ctx.Err())
	}
}

// targets are the services a drain, undrain or undamp names: nil for all.
func targets(req control.Request) (names []string, err error) {
	if req.All == (len(req.Services) > 0) {
		return nil, errors.New("name services or ask for all, not both or neither")
	}
	if req.All {
		return nil, nil
	}
	return req.Services, nil
}

func (d *daemon) undamp(ctx context.Context, req control.Request, peer control.Peer) control.Response {
	names, err := targets(req)
	if err != nil {
		return control.Response{Error: err.Error()}
	}
	done, err := d.sup.Undamp(ctx, names, peer.String())
	if err != nil {
		return control.Response{Error: err.Error()}
	}
	if len(done) == 0 {
		return control.Response{OK: true, Message: "no penalty to clear"}
	}
	return control.Response{OK: true, Services: done,
		Message: "damping penalty cleared; back at normal metric where the checks pass: " + strings.Join(done, ", ")}
}

func (d *daemon) drain(ctx context.Context, req control.Request, peer control.Peer) control.Response {
	names, err := targets(req)
	if err != nil {
		return control.Response{Error: err.Error()}
	}
	if req.Command == control.CmdUndrain {
		done, err := d.sup.Undrain(ctx, names, peer.String())
		if err != nil {
			return control.Response{Error: err.Error()}
		}
		var parts []string
		if len(done) > 0 {
			parts = append(parts, "undrained; each must rise again: "+strings.Join(done, ", "))
		}
		if notDrained := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(done, n) }); len(notDrained) > 0 {
			parts = append(parts, "not drained: "+strings.Join(notDrained, ", "))
		}
		if len(parts) == 0 {
			parts = append(parts, "nothing was drained")
		}
		return control.Response{OK: true, Services: done, Message: strings.Join(parts, "; ")}
	}
	if len(req.Reason) > maxDrainReason {
		return control.Response{Error: fmt.Sprintf("the drain reason is %d bytes; at most %d", len(req.Reason), maxDrainReason)}
	}
	var until time.Time
	if req.For != "" {
		dur, err := time.ParseDuration(req.For)
		if err != nil || dur <= 0 {
			return control.Response{Error: fmt.Sprintf("--for %q is not a positive duration such as 30m or 2h", req.For)}
		}
		until = time.Now().Add(dur)
	}
	reason := req.Reason
	if reason == "" {
		reason = "no reason given"
	}
	done, err := d.sup.Drain(ctx, names, reason, peer.String(), until, req.Force)
	if err != nil {
		return control.Response{Error: err.Error()}
	}
	msg := "drained (withdrawn; checks keep running): " + strings.Join(done, ", ")
	if req.Force {
		msg += "; forced"
	}
	if !until.IsZero() {
		msg += "; until " + until.Format(time.RFC3339)
	}
	return control.Response{OK: true, Services: done, Message: msg}
}
