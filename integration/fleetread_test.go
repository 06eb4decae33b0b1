//go:build integration

package integration

import (
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
)

// areaAndSelf scrapes node n once and returns its reads of ospfd: of the
// whole area (the fleet view) and of its own LSAs. The scrape itself has
// the area read first when the last read is fleet_interval old.
func areaAndSelf(t *testing.T, n *lab.Node) (area, self float64) {
	t.Helper()
	body, err := n.NS.Get(metricsAddr, "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", n.NS.Name, err)
	}
	return sumOf(body, "anycast_watchdog_frr_reads_total", `daemon="ospfd"`, `what="area"`),
		sumOf(body, "anycast_watchdog_frr_reads_total", `daemon="ospfd"`, `what="self"`)
}

// A steady node reads only its own LSAs: with nobody asking, no read of
// the area's database in 20 s (10 fleet intervals; the daemon used to
// read it every one); scraped every 200 ms for 10 s, it reads it at most
// once per fleet_interval; while its service fails it reads it again, as
// failing open needs, and stops once the service is back.
func TestFleetReadOnDemand(t *testing.T) {
	a := newFailOpenLab(t)
	n1 := a.Nodes[0]
	time.Sleep(2 * labFleetInterval) // past the start's reads
	area0, self0 := areaAndSelf(t, n1)
	time.Sleep(20 * time.Second)
	area1, self1 := areaAndSelf(t, n1)
	// The second scrape had the area read once itself (its view was 20 s old).
	if idle := area1 - area0 - 1; idle != 0 || self1-self0 < 1 {
		t.Fatalf("20 s steady with nobody asking: %v reads of the area (want 0), %v of its own LSAs (want one every 10 s)", idle, self1-self0)
	}
	t.Logf("20 s steady, nobody asking: 0 reads of the area's database, %v of its own LSAs", self1-self0)

	scrapes := 0
	for start := time.Now(); time.Since(start) < 10*time.Second; scrapes++ {
		areaAndSelf(t, n1)
		time.Sleep(200 * time.Millisecond)
	}
	area2, _ := areaAndSelf(t, n1)
	if n, most := area2-area1, float64(10*time.Second/labFleetInterval+2); n > most || n < 2 {
		t.Fatalf("%d scrapes in 10 s: %v reads of the area, want 2 to %v (one per fleet_interval, %s)", scrapes, n, most, labFleetInterval)
	}
	t.Logf("%d scrapes in 10 s: %v reads of the area (fleet_interval %s)", scrapes+1, area2-area1, labFleetInterval)

	n1.DNS.Stop(2 * time.Second)
	waitWhere(t, a, n1, "", 10*time.Second, "node 1 removes its prefixes, the others at normal metric")
	failing, _ := areaAndSelf(t, n1)
	time.Sleep(10 * time.Second)
	held, _ := areaAndSelf(t, n1)
	if n := held - failing; n < 4 {
		t.Fatalf("failing for 10 s: %v reads of the area, want one per fleet_interval (%s) to see whether it must fail open", n, labFleetInterval)
	}
	if err := n1.StartDNS(); err != nil {
		t.Fatal(err)
	}
	waitWhere(t, a, n1, "lo", 10*time.Second, "node 1 back on lo")
	time.Sleep(2 * labFleetInterval)
	back, _ := areaAndSelf(t, n1)
	time.Sleep(10 * time.Second)
	if again, _ := areaAndSelf(t, n1); again-back-1 != 0 {
		t.Fatalf("back up for 10 s: %v reads of the area besides the scrape's own, want 0", again-back-1)
	}
}
