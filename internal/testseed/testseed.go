// Package testseed feeds fuzz targets the files that unit tests already
// use: real captures and configuration fixtures.
package testseed

import (
	"os"
	"path/filepath"
	"testing"
)

// Add adds every file matching the patterns to f's seed corpus.
func Add(f *testing.F, patterns ...string) {
	f.Helper()
	for _, pattern := range patterns {
		files, err := filepath.Glob(pattern)
		if err != nil || len(files) == 0 {
			f.Fatalf("no seed files match %q", pattern)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}
