package frr

import (
	"testing"

	"github.com/anycast-watchdog/anycast-watchdog/internal/testseed"
)

func fuzzParser(f *testing.F, parse func([]byte) (LSDB, error)) {
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
	testseed.Add(f, "testdata/ospf-*.json")
	fuzzParser(f, ParseRouterLSDB)
}

// FuzzParseOSPF6LSDB: the same for ospf6d's output.
func FuzzParseOSPF6LSDB(f *testing.F) {
	testseed.Add(f, "testdata/ospf6-*.json")
	fuzzParser(f, ParseOSPF6LSDB)
}
