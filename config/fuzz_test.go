package config

import (
	"strings"
	"testing"

	"github.com/anycast-watchdog/anycast-watchdog/internal/testseed"
)

// FuzzParse: any bytes either load into a configuration that keeps the
// loader's promises or give an error; never a panic.
func FuzzParse(f *testing.F) {
	testseed.Add(f, "testdata/*.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") && !strings.Contains(err.Error(), "problems:") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		for _, s := range c.Services {
			if len(s.Prefixes) == 0 || len(s.Checks) == 0 || s.Rise < 1 || s.Fall < 1 ||
				s.FastInterval > s.Interval || s.Timeout > s.Interval {
				t.Errorf("accepted a service that breaks the rules: %+v", s)
			}
			for _, p := range s.Prefixes {
				if p.Bits() != p.Addr().BitLen() {
					t.Errorf("accepted a prefix that is not a host route: %s", p)
				}
			}
		}
	})
}

func TestAliasBombIsRefused(t *testing.T) {
	// ~3 KB that expand to 201 services x 201 checks x 201 arguments.
	var b strings.Builder
	b.WriteString("services:\n  - &s\n    name: s\n    prefixes: [192.0.2.1/32]\n    checks:\n")
	b.WriteString("      - &c {type: exec, command: [/bin/true" + strings.Repeat(", -v", 200) + "]}\n")
	b.WriteString(strings.Repeat("      - *c\n", 200))
	b.WriteString(strings.Repeat("  - *s\n", 200))
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too large once aliases are expanded") {
		t.Errorf("Parse = %.300v", err)
	}
}
