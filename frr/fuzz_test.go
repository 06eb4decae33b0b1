package frr

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func seed(f *testing.F, pattern string) {
	files, _ := filepath.Glob(filepath.Join("testdata", pattern))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

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
	seed(f, "ospf-*.json")
	seed(f, "both-*.json")
	fuzzParser(f, ParseRouterLSAs)
}

// FuzzParseIntraPrefixLSAs: the same for ospf6d's output.
func FuzzParseIntraPrefixLSAs(f *testing.F) {
	seed(f, "ospf6-*.json")
	fuzzParser(f, ParseIntraPrefixLSAs)
}
