package advertise

import (
	"fmt"
	"testing"
)

func TestDecide(t *testing.T) {
	none := fleetSight{Fresh: true}
	normal := fleetSight{Fresh: true, Normal: 1, Any: 1}
	lastResortOnly := fleetSight{Fresh: true, Any: 2}
	stale := fleetSight{Fresh: false, Normal: 3, Any: 3} // counts from before the settle: ignored
	for _, tt := range []struct {
		name string
		d    decision
		want Location
	}{
		// Healthy: primary, wherever it is and whatever the fleet.
		{"up, absent", decision{Intent: IntentAdvertise, LastResort: true, FailOpen: true, At: Absent}, OnPrimary},
		{"up, at last resort: back to primary", decision{Intent: IntentAdvertise, LastResort: true, FailOpen: true, At: OnLastResort, Fleet: normal}, OnPrimary},
		{"up without a last-resort interface", decision{Intent: IntentAdvertise, At: OnPrimary}, OnPrimary},

		// Passing but damped: held at last resort, whatever the fleet.
		{"damped, on primary: to last resort", decision{Intent: IntentAdvertise, Damped: true, FailOpen: true, LastResort: true, At: OnPrimary, Fleet: normal}, OnLastResort},
		{"damped, absent, others at normal: still at last resort", decision{Intent: IntentAdvertise, Damped: true, FailOpen: true, LastResort: true, At: Absent, Fleet: normal}, OnLastResort},
		{"damped, fleet unknown: at last resort", decision{Intent: IntentAdvertise, Damped: true, FailOpen: true, LastResort: true, At: Absent}, OnLastResort},
		{"damped without a last-resort interface: absent", decision{Intent: IntentAdvertise, Damped: true, FailOpen: true, At: OnPrimary, Fleet: none}, Absent},
		{"damped with fail_open false: absent", decision{Intent: IntentAdvertise, Damped: true, LastResort: true, At: OnPrimary, Fleet: none}, Absent},
		{"damped and failing: withdrawn as any other", decision{Intent: IntentWithdraw, Damped: false, FailOpen: true, LastResort: true, At: OnLastResort, Fleet: normal}, Absent},

		// Passing but degraded: at last resort while it can be; damping wins.
		{"degraded, on primary: to last resort", decision{Intent: IntentAdvertise, Degraded: true, FailOpen: true, LastResort: true, At: OnPrimary, Fleet: normal}, OnLastResort},
		{"degraded, nobody else at all: still last resort (and serving)", decision{Intent: IntentAdvertise, Degraded: true, FailOpen: true, LastResort: true, At: Absent, Fleet: none}, OnLastResort},
		{"degraded with fail_open false: last resort still", decision{Intent: IntentAdvertise, Degraded: true, LastResort: true, At: OnPrimary}, OnLastResort},
		{"degraded without a last-resort interface: stays on primary", decision{Intent: IntentAdvertise, Degraded: true, FailOpen: true, At: OnPrimary}, OnPrimary},
		{"degraded and damped without a last-resort interface: absent", decision{Intent: IntentAdvertise, Degraded: true, Damped: true, FailOpen: true, At: OnPrimary}, Absent},

		// Failing, failing open.
		{"down on primary: move to last resort first", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: true, At: OnPrimary, Fleet: normal}, OnLastResort},
		{"down at last resort, another at normal metric: remove", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: true, At: OnLastResort, Fleet: normal}, Absent},
		{"down at last resort, nobody else: hold", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: true, At: OnLastResort, Fleet: none}, OnLastResort},
		{"down at last resort, others only at last resort: hold", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: true, At: OnLastResort, Fleet: lastResortOnly}, OnLastResort},
		{"down at last resort, view older than the move: hold", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: true, At: OnLastResort, Fleet: stale}, OnLastResort},
		{"down at last resort, LSDB unreadable: hold", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: true, At: OnLastResort}, OnLastResort},
		{"down and absent, nobody advertises at all: back at last resort", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: true, At: Absent, Fleet: none}, OnLastResort},
		{"down and absent, others at last resort: stay absent", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: true, At: Absent, Fleet: lastResortOnly}, Absent},
		{"down and absent, others at normal: stay absent", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: true, At: Absent, Fleet: normal}, Absent},
		{"down and absent, fleet unknown: stay absent", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: true, At: Absent}, Absent},

		// Failing, not failing open: today's behaviour.
		{"fail_open false, on primary: remove", decision{Intent: IntentWithdraw, FailOpen: false, LastResort: true, At: OnPrimary, Fleet: none}, Absent},
		{"fail_open false, at last resort (left by an older config): remove", decision{Intent: IntentWithdraw, FailOpen: false, LastResort: true, At: OnLastResort, Fleet: none}, Absent},
		{"no last-resort interface, on primary: remove", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: false, At: OnPrimary, Fleet: none}, Absent},
		{"no last-resort interface, absent, nobody: stay absent", decision{Intent: IntentWithdraw, FailOpen: true, LastResort: false, At: Absent, Fleet: none}, Absent},

		// Draining: last resort for the grace, then absent, whatever the fleet.
		{"drain from primary: last resort first", decision{Intent: IntentDrain, FailOpen: true, LastResort: true, At: OnPrimary, Fleet: normal}, OnLastResort},
		{"drain from primary after the grace: still last resort first", decision{Intent: IntentDrain, FailOpen: true, LastResort: true, At: OnPrimary, GraceOver: true}, OnLastResort},
		{"drain at last resort within the grace: hold", decision{Intent: IntentDrain, FailOpen: true, LastResort: true, At: OnLastResort, Fleet: normal}, OnLastResort},
		{"drain at last resort after the grace: remove", decision{Intent: IntentDrain, FailOpen: true, LastResort: true, At: OnLastResort, GraceOver: true, Fleet: normal}, Absent},
		{"forced drain of the only node after the grace: remove", decision{Intent: IntentDrain, FailOpen: true, LastResort: true, At: OnLastResort, GraceOver: true, Fleet: none}, Absent},
		{"drain with fail_open false still drains gracefully", decision{Intent: IntentDrain, FailOpen: false, LastResort: true, At: OnPrimary}, OnLastResort},
		{"drained and absent: stay absent, even with nobody else", decision{Intent: IntentDrain, FailOpen: true, LastResort: true, At: Absent, Fleet: none}, Absent},
		{"drain without a last-resort interface: remove at once", decision{Intent: IntentDrain, LastResort: false, At: OnPrimary}, Absent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.d); got != tt.want {
				t.Errorf("decide(%+v) = %s, want %s", tt.d, got, tt.want)
			}
		})
	}
}

// The guarantees, over every combination of the inputs: among them, that
// damping never yields Absent where the same inputs without damping would
// advertise at any metric while failing open.
func TestDecideGuarantees(t *testing.T) {
	for _, intent := range []Intent{IntentWithdraw, IntentAdvertise, IntentDrain} {
		for _, failOpen := range []bool{false, true} {
			for _, lr := range []bool{false, true} {
				for _, at := range []Location{Absent, OnPrimary, OnLastResort} {
					for _, fresh := range []bool{false, true} {
						for _, counts := range [][2]int{{0, 0}, {0, 1}, {1, 1}, {2, 5}} {
							for _, grace := range []bool{false, true} {
								for _, damped := range []bool{false, true} {
									d := decision{Intent: intent, Damped: damped, FailOpen: failOpen, LastResort: lr, At: at,
										Fleet: fleetSight{Fresh: fresh, Normal: counts[0], Any: counts[1]}, GraceOver: grace}
									got := decide(d)
									name := fmt.Sprintf("%+v → %s", d, got)
									undamped := d
									undamped.Damped = false
									switch {
									case intent == IntentAdvertise && !damped && got != OnPrimary:
										t.Errorf("%s: a healthy service must be on the primary interface", name)
									case damped && got == OnPrimary:
										t.Errorf("%s: a damped service at normal metric", name)
									case damped && failOpen && lr && got == Absent && decide(undamped) != Absent:
										t.Errorf("%s: damping took off the network what the same inputs undamped would advertise (%s)", name, decide(undamped))
									case !lr && got == OnLastResort:
										t.Errorf("%s: uses a last-resort interface it does not have", name)
									case intent != IntentAdvertise && got == OnPrimary:
										t.Errorf("%s: a failing or drained service at normal metric", name)
									case lr && at == OnPrimary && got == Absent && (intent == IntentDrain || failOpen):
										t.Errorf("%s: removed straight from primary although it should pass through last resort", name)
									case intent == IntentWithdraw && failOpen && lr && at == OnLastResort && got == Absent && !(fresh && counts[0] > 0):
										t.Errorf("%s: removed its last resort without a fresh view of another normal advertiser", name)
									case intent == IntentWithdraw && failOpen && lr && at == Absent && got == OnLastResort && !(fresh && counts[1] == 0):
										t.Errorf("%s: re-added at last resort although someone may advertise it", name)
									case intent == IntentDrain && lr && at == OnLastResort && !grace && got == Absent:
										t.Errorf("%s: removed before the drain grace ended", name)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// The area's database is read only for decisions it can change: a
// withdrawn prefix failing open, at last resort (removed once another
// router is at normal metric) or absent (back at last resort when nobody
// advertises it). A healthy, damped, degraded, drained or not-failing-open
// prefix, or one still on the primary interface, never waits for it.
func TestFleetMatters(t *testing.T) {
	for _, intent := range []Intent{IntentWithdraw, IntentAdvertise, IntentDrain} {
		for _, failOpen := range []bool{false, true} {
			for _, lr := range []bool{false, true} {
				for _, at := range []Location{Absent, OnPrimary, OnLastResort} {
					for _, damped := range []bool{false, true} {
						for _, degraded := range []bool{false, true} {
							for _, grace := range []bool{false, true} {
								d := decision{Intent: intent, Damped: damped, Degraded: degraded, FailOpen: failOpen, LastResort: lr, At: at, GraceOver: grace}
								want := intent == IntentWithdraw && failOpen && lr && at != OnPrimary
								t.Run(fmt.Sprintf("%+v", d), func(t *testing.T) {
									if got := fleetMatters(d); got != want {
										t.Errorf("fleetMatters = %v, want %v", got, want)
									}
								})
							}
						}
					}
				}
			}
		}
	}
}
