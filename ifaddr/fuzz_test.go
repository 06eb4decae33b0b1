package ifaddr

import (
	"testing"

	"github.com/anycast-watchdog/anycast-watchdog/internal/testseed"
)

// FuzzParseShow: any output of `ip -j addr show` parses or errors; every
// prefix it returns is valid.
func FuzzParseShow(f *testing.F) {
	testseed.Add(f, "testdata/*.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseShow(data)
		if err != nil {
			return
		}
		for _, p := range l.Prefixes {
			if !p.IsValid() {
				t.Errorf("invalid prefix %v from %q", p, data)
			}
		}
	})
}
