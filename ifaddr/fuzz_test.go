package ifaddr

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseShow: any output of `ip -j addr show` parses or errors; every
// prefix it returns is valid.
func FuzzParseShow(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
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
