package frr

import (
	"net/netip"
	"testing"

	"github.com/anycast-watchdog/anycast-watchdog/internal/testseed"
)

func fuzzParser(f *testing.F, parse func([]byte) (Fleet, error)) {
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := parse(data)
		if err != nil {
			return
		}
		for p, advs := range db.Prefixes {
			if !p.IsValid() || len(advs) == 0 {
				t.Errorf("prefix %v with advertisers %v from %q", p, advs, data)
			}
		}
	})
}

// FuzzParseRouterLSDB: any vtysh output parses or errors, never panics.
func FuzzParseRouterLSDB(f *testing.F) {
	testseed.Add(f, "testdata/ospf-*.json", "testdata/frr10/ospf-*.json") // FRR 8.4.4's and 10.3's
	fuzzParser(f, ParseRouterLSDB)
}

// FuzzParseOSPF6LSDB: the same for ospf6d's output.
func FuzzParseOSPF6LSDB(f *testing.F) {
	testseed.Add(f, "testdata/ospf6-*.json", "testdata/frr10/ospf6-*.json") // FRR 8.4.4's and 10.3's
	fuzzParser(f, ParseOSPF6LSDB)
}

// FuzzParseBGP: bgpd's answers about one prefix parse or error, never
// panic, and what parses is about that prefix only.
func FuzzParseBGP(f *testing.F) {
	testseed.Add(f, "testdata/bgp*.json", "testdata/frr10/bgp*.json") // FRR 8.4.4's and 10.3's
	p := netip.MustParsePrefix("192.0.2.53/32")
	f.Fuzz(func(t *testing.T, data []byte) {
		all, err := ParseBGP(data, []netip.Prefix{p})
		if err != nil {
			return
		}
		b := all[IPv4]
		if (b.Configured && len(b.Prefixes) != 1) || b.Established > b.Peers || b.FleetPeers > b.Established {
			t.Errorf("parsed %+v from %q", b, data)
		}
		if bp := b.Prefixes[p]; !bp.Originated && (bp.AdvertisedTo != 0 || bp.LastResort) {
			t.Errorf("a prefix not originated but sent or marked: %+v from %q", bp, data)
		}
	})
}
