package advertise

import "time"

// Location is where a managed prefix is.
type Location int

const (
	Absent       Location = iota // on neither interface: not advertised by this node
	OnPrimary                    // on the anycast interface (lo): advertised at normal metric
	OnLastResort                 // on the last-resort interface: advertised at last-resort metric
)

func (l Location) String() string {
	switch l {
	case OnPrimary:
		return "primary"
	case OnLastResort:
		return "last-resort"
	}
	return "absent"
}

// Intent is what a service's state asks of its prefixes.
type Intent int

const (
	IntentWithdraw  Intent = iota // down or rising: not advertised at normal metric
	IntentAdvertise               // up or falling
	IntentDrain                   // drained, or stopping with on_exit: withdraw
)

// wish is what a service asks of its prefixes: its intent and, for
// IntentAdvertise, whether flap damping holds it back from normal metric
// and whether its degrade checks have fallen.
type wish struct {
	Intent   Intent
	Damped   bool
	Degraded bool
}

// fleetSettle is how long after this node moved a prefix the link-state
// database must have been read before it counts as fresh: long enough for
// the move to reach every router of the area (15–25 ms measured) and for
// theirs to reach us, so that nodes failing together never each delete
// their prefix on the strength of the others' stale normal advertisements.
const fleetSettle = time.Second

// fleetSight is what the link-state database says of one prefix, besides
// this node.
type fleetSight struct {
	Fresh  bool // read successfully, started at least fleetSettle after the prefix last moved here
	Normal int  // other routers advertising it at normal metric
	Any    int  // other routers advertising it at any metric
}

// decision is everything the location of one prefix depends on.
type decision struct {
	Intent     Intent
	Damped     bool // IntentAdvertise, but flap damping holds the service back from normal metric
	Degraded   bool // IntentAdvertise, but its degrade checks have fallen: let every other node go first
	FailOpen   bool // the service's fail_open
	LastResort bool // the last-resort interface can be used
	At         Location
	Fleet      fleetSight
	GraceOver  bool // IntentDrain: drain_grace has passed since the drain began
}

// decide returns where the prefix should be. It never removes the last
// advertisement of a prefix that this node can see while failing open, and
// never moves without a fresh view of the fleet:
//
//   - advertise: on the primary interface;
//   - advertise while damped: at last resort (advertised, every other node
//     preferred), whatever the fleet, so that damping never takes an
//     address off the network; absent without a last-resort interface or
//     with fail_open false;
//   - advertise while degraded (and not damped): at last resort, whatever
//     the fleet and fail_open; on the primary interface without a
//     last-resort interface (degrading is then unavailable: a node that
//     serves is never taken off for a degrade check);
//   - drain: at last resort for drain_grace, then absent (drain refuses,
//     before, when nobody else advertises at normal metric);
//   - withdraw, failing open: from primary to last resort; from last resort
//     to absent once a fresh read shows another router at normal metric;
//     from absent back to last resort when a fresh read shows nobody at all;
//   - withdraw with fail_open false, or without a last-resort interface:
//     absent, as before failing open existed.
func decide(d decision) Location {
	switch {
	case d.Intent == IntentAdvertise && d.Damped:
		if d.LastResort && d.FailOpen {
			return OnLastResort
		}
		return Absent
	case d.Intent == IntentAdvertise && d.Degraded && d.LastResort:
		return OnLastResort
	case d.Intent == IntentAdvertise:
		return OnPrimary
	case !d.LastResort:
		return Absent
	case d.Intent == IntentDrain:
		if d.At == Absent || (d.At == OnLastResort && d.GraceOver) {
			return Absent
		}
		return OnLastResort
	case !d.FailOpen:
		return Absent
	}
	switch d.At {
	case OnPrimary:
		return OnLastResort
	case OnLastResort:
		if d.Fleet.Fresh && d.Fleet.Normal > 0 {
			return Absent
		}
		return OnLastResort
	}
	if d.Fleet.Fresh && d.Fleet.Any == 0 {
		return OnLastResort
	}
	return Absent
}

// fleetMatters reports whether where d's prefix goes depends on the view
// of the fleet: whether decide answers differently for some fresh view, or
// for none. Only then is the area's link-state database worth reading.
func fleetMatters(d decision) bool {
	var first Location
	for i, sight := range []fleetSight{{}, {Fresh: true}, {Fresh: true, Any: 1}, {Fresh: true, Any: 1, Normal: 1}} {
		d.Fleet = sight
		if to := decide(d); i == 0 {
			first = to
		} else if to != first {
			return true
		}
	}
	return false
}
