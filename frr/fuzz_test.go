package frr

import (
	"net/netip"
	"testing"

	"github.com/anycast-watchdog/anycast-watchdog/internal/testseed"
)

func fuzzParser(f *testing.F, parse func([]byte) ([]netip.Prefix, error)) {
	f.Fuzz(func(t *testing.T, data []byte) {
		prefixes, err := parse(data)
		if err != nil {
			return
		}
		for _, p := range prefixes {
			if !p.IsValid() {
				t.Errorf("invalid prefix %v from %q", p, data)
			}
		}
	})
}

// FuzzParseRouterLSAs: any vtysh output parses or errors, never panics.
func FuzzParseRouterLSAs(f *testing.F) {
	testseed.Add(f, "testdata/ospf-*.json", "testdata/both-*.json")
	fuzzParser(f, ParseRouterLSAs)
}

// FuzzParseIntraPrefixLSAs: the same for ospf6d's output.
func FuzzParseIntraPrefixLSAs(f *testing.F) {
	testseed.Add(f, "testdata/ospf6-*.json")
	fuzzParser(f, ParseIntraPrefixLSAs)
}
