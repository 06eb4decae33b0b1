package advertise

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// reads returns how many times the fake FRR was read, and of those how
// many read the whole area.
func (w *failOpenWorld) reads() (all, area int) {
	w.frr.mu.Lock()
	defer w.frr.mu.Unlock()
	return w.frr.calls, w.frr.areaCalls
}

// The area's database is read only while something needs the fleet view:
// never on a steady healthy node that nobody asks (its own LSAs are read
// every reverifyEvery to confirm it); once per fleet_interval for readers
// of status however often they come; every fleet_interval, and fleetSettle
// after the move, while a failing prefix is held at last resort or
// absent; and never again once the service is back.
func TestFleetReadOnlyWhenNeeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFailOpen(t, []string{"192.0.2.53/32"}, nil, true)
		w.others(normalPeer)
		w.start()
		w.until("up and confirmed", func() bool {
			return w.state("dns") == status.Up && w.service("dns").Prefixes[0].Advertised == status.AdvertisedYes
		})
		all0, area0 := w.reads()
		w.advance(10 * time.Minute)
		all, area := w.reads()
		if area != area0 || all-all0 < 55 || all-all0 > 62 {
			t.Errorf("10 steady minutes: %d reads, %d of the area; want one of its own LSAs every %s (60) and none of the area",
				all-all0, area-area0, reverifyEvery)
		}

		// Readers: one read of the area per fleet_interval (5 s here).
		for range 20 {
			w.sup.FreshFleet(context.Background())
		}
		if _, a := w.reads(); a != area+1 {
			t.Errorf("20 status requests in a row: %d reads of the area, want 1", a-area)
		}
		if adv, why := w.sup.fleet.advertisers(netip.MustParsePrefix("192.0.2.53/32")); len(adv) != 2 || why != "" {
			t.Errorf("status after the read: advertisers %+v (%s), want this node and one other", adv, why)
		}
		w.advance(5 * time.Second)
		w.sup.FreshFleet(context.Background())
		if _, a := w.reads(); a != area+2 {
			t.Errorf("a request fleet_interval later: %d reads of the area in all, want 2", a-area)
		}

		// A failing service: at last resort, then off once a fresh read
		// (fleetSettle after the move) shows the other node at normal
		// metric; while absent, the area every fleet_interval.
		_, area = w.reads()
		w.checks["dns"].healthy.Store(false)
		w.until("absent", func() bool { return w.where() == "absent" })
		_, a1 := w.reads()
		w.advance(time.Minute)
		_, a2 := w.reads()
		if a1 == area || a2-a1 < 11 || a2-a1 > 13 {
			t.Errorf("failing: %d reads of the area until absent, then %d in a minute; want some, then one per fleet_interval (12)", a1-area, a2-a1)
		}

		// Back: no more reads of the area.
		w.checks["dns"].healthy.Store(true)
		w.until("up", func() bool { return w.state("dns") == status.Up && w.where() == "lo" })
		w.advance(10 * time.Second) // a read due when it came back may still happen
		_, a3 := w.reads()
		w.advance(5 * time.Minute)
		if _, a4 := w.reads(); a4 != a3 {
			t.Errorf("back up: %d reads of the area in 5 minutes, want none", a4-a3)
		}
	})
}
