package advertise

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sirupsen/logrus"
)

// step decides where every prefix goes and carries out what differs, in
// prefix order, so that what happens does not depend on map order.
func (m *addressManager) step() {
	m.mu.Lock()
	order := make([]netip.Prefix, 0, len(m.prefixes))
	for p := range m.prefixes {
		order = append(order, p)
	}
	m.mu.Unlock()
	slices.SortFunc(order, netip.Prefix.Compare)
	for _, p := range order {
		m.mu.Lock()
		st, ok := m.prefixes[p]
		if !ok {
			m.mu.Unlock()
			continue
		}
		movedAt := st.movedAt
		m.mu.Unlock()
		sight := m.fleet.sight(p, movedAt) // not under mu: the store has its own lock

		m.mu.Lock()
		now := m.clock.Now()
		d := m.decisionOf(st, now)
		d.Fleet = sight
		target := decide(d)
		st.target = target
		due := st.err == nil || !now.Before(st.retryAt)
		if st.placed(target) || !due {
			if st.release && st.placed(target) {
				delete(m.prefixes, p)
			}
			m.mu.Unlock()
			continue
		}
		c := change{prefix: p, st: st, service: st.service, from: st.location(), to: target,
			reason: placementReason(d, target, sight, st.reason), wasErr: st.err}
		m.mu.Unlock()
		m.move(c)
	}
}

// decisionOf is everything but the fleet view that st's place depends
// on. Call with mu held.
func (m *addressManager) decisionOf(st *prefixState, now time.Time) decision {
	if st.release {
		return decision{Intent: IntentWithdraw, At: st.location()} // straight off: the service is gone
	}
	return decision{Intent: st.intent, Damped: st.damped, Degraded: st.degraded, FailOpen: st.failOpen, LastResort: m.lastResort != nil,
		At: st.location(), GraceOver: !now.Before(st.since.Add(st.grace))}
}

// fleetWanted returns, for each prefix whose place depends on the view of
// the fleet (fleetMatters), when it last moved: the verifier reads the
// area's link-state database only while there is one.
func (m *addressManager) fleetWanted() map[netip.Prefix]time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	out := map[netip.Prefix]time.Time{}
	for p, st := range m.prefixes {
		if fleetMatters(m.decisionOf(st, now)) {
			out[p] = st.movedAt
		}
	}
	return out
}

// mover is an AddressControl that can add a prefix and remove it from
// another interface in one step, so that the routing daemon sees a single
// change (ifaddr.Controller.Move: one ip -batch); addFirst says which half
// comes first.
type mover interface {
	Move(ctx context.Context, p netip.Prefix, from string, addFirst bool) error
}

// change is one prefix's move, as decided under mu.
type change struct {
	prefix   netip.Prefix
	st       *prefixState
	service  string
	from, to Location
	reason   string
	wasErr   error // the failure this retries, if any
}

// placementReason says why a prefix goes to target, for the log.
func placementReason(d decision, target Location, sight fleetSight, reason string) string {
	switch {
	case target == OnLastResort && d.Intent == IntentAdvertise && d.Damped:
		return reason + "; damped: held at last resort until released"
	case target == OnLastResort && d.Intent == IntentAdvertise:
		return reason + "; degraded: at last resort, every node at normal metric preferred"
	case target == Absent && d.Intent == IntentAdvertise:
		return reason + "; damped, and nothing to hold it at (no last-resort interface, or fail_open false): withdrawn until released"
	case target == OnLastResort && d.Intent == IntentDrain:
		return reason + "; at last resort until drain_grace has passed"
	case target == OnLastResort && d.At == Absent:
		return reason + "; no router advertises it: failing open, at last resort"
	case target == OnLastResort:
		return reason + "; held at last resort until another router advertises it at normal metric"
	case target == Absent && d.At == OnLastResort && d.Intent == IntentDrain:
		return reason + "; drain_grace has passed"
	case target == Absent && d.At == OnLastResort && d.Intent == IntentWithdraw && d.FailOpen && d.LastResort:
		return fmt.Sprintf("%s; %d other routers advertise it at normal metric", reason, sight.Normal)
	}
	return reason
}

// move runs the commands that take c.prefix from where it is to c.to: from
// one interface to the other in one step where the control can (ifaddr's
// Move, one ip batch: see moveAtOnce for the order), else adds first, then
// deletes, so that it is never off both interfaces on its way from one to
// the other. A last-resort interface that fails does not
// hold a withdrawal back: the prefix leaves the primary one regardless.
func (m *addressManager) move(c change) {
	type command struct {
		ctl   AddressControl
		dev   string
		add   bool
		field *bool
	}
	st := c.st
	m.mu.Lock()
	// Adds first, then deletes; add says what each interface should have.
	var cmds []command
	for _, add := range []bool{true, false} {
		for _, on := range []command{
			{ctl: m.primary, dev: m.primaryDev, field: &st.onPrimary, add: c.to == OnPrimary},
			{ctl: m.lastResort, dev: m.lrDev, field: &st.onLastResort, add: c.to == OnLastResort},
		} {
			if on.add == add && *on.field != add && on.ctl != nil {
				cmds = append(cmds, on)
			}
		}
	}
	m.mu.Unlock()

	if len(cmds) == 2 && cmds[0].add && !cmds[1].add {
		if mv, ok := cmds[0].ctl.(mover); ok {
			m.moveAtOnce(c, mv, cmds[0].dev, cmds[1].dev, cmds[0].field, cmds[1].field)
			return
		}
	}
	var failed error
	for _, cmd := range cmds {
		log := m.log.WithFields(logrus.Fields{"service": c.service, "prefix": c.prefix.String(), "interface": cmd.dev})
		ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
		op, verb := cmd.ctl.Del, "removed"
		if cmd.add {
			op, verb = cmd.ctl.Add, "added"
		}
		err := op(ctx, c.prefix)
		cancel()
		if err != nil {
			if failed == nil {
				failed = err
			}
			log.WithError(err).Debug("address change failed")
			if cmd.add && cmd.dev == m.lrDev && c.from == OnPrimary {
				continue // still leave the primary interface: see above
			}
			break
		}
		m.mu.Lock()
		from := st.location()
		*cmd.field = cmd.add
		changed := st.location() != from
		if changed {
			st.movedAt = m.clock.Now()
		}
		m.mu.Unlock()
		log.WithField("reason", c.reason).Info(verb + " address")
		if changed && m.onChange != nil {
			m.onChange()
		}
	}
	m.recordOutcome(c, failed)
}

// moveAtOnce carries out a move from one interface to the other in one
// step. After a failure either half may have happened: the interfaces are
// read again before the retry.
func (m *addressManager) moveAtOnce(c change, mv mover, to, from string, added, removed *bool) {
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	// The add comes first, so that the address keeps answering (a drain
	// loses no query) and ospfd sees one change; where bgpd originates the
	// prefix the delete comes first, because while a host route is on two
	// interfaces FRR 8.4's zebra keeps naming the one that had it first,
	// even once it is gone there, and `match interface` in the last-resort
	// route-map would never see the move (ifaddr.Controller.Move).
	addFirst := !m.deleteFirst.Load()
	err := mv.Move(ctx, c.prefix, from, addFirst)
	cancel()
	log := m.log.WithFields(logrus.Fields{"service": c.service, "prefix": c.prefix.String()})
	if err != nil {
		m.mu.Lock()
		m.reconcileAsked = true
		m.mu.Unlock()
		m.recordOutcome(c, err)
		return
	}
	m.mu.Lock()
	*added, *removed = true, false
	c.st.movedAt = m.clock.Now()
	m.mu.Unlock()
	if m.onChange != nil {
		m.onChange()
	}
	logAdd := func() { log.WithFields(logrus.Fields{"interface": to, "reason": c.reason}).Info("added address") }
	logDel := func() { log.WithFields(logrus.Fields{"interface": from, "reason": c.reason}).Info("removed address") }
	if addFirst {
		logAdd()
		logDel()
	} else {
		logDel()
		logAdd()
	}
	m.recordOutcome(c, nil)
}

// recordOutcome notes a move's failure for retry, or its success, and logs
// a new failure or a recovery once.
func (m *addressManager) recordOutcome(c change, err error) {
	log := m.log.WithFields(logrus.Fields{"service": c.service, "prefix": c.prefix.String(), "interface": m.primaryDev})
	m.mu.Lock()
	st := c.st
	if err != nil {
		st.failures++
		st.retryAt = m.clock.Now().Add(min(time.Second<<min(st.failures-1, 5), maxRetryDelay))
		retryIn := st.retryAt.Sub(m.clock.Now())
		st.err = err
		m.mu.Unlock()
		if c.wasErr == nil || c.wasErr.Error() != err.Error() {
			log.WithError(err).WithField("retry_in", retryIn.String()).Error("cannot change address; will retry")
		}
		return
	}
	failures := st.failures
	st.err, st.failures = nil, 0
	if st.release && m.prefixes[c.prefix] == st {
		delete(m.prefixes, c.prefix)
	}
	m.mu.Unlock()
	if c.wasErr != nil {
		log.WithField("failures", failures).Info("address change works again")
	}
}
