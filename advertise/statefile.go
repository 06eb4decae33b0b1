package advertise

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// maxStateFile bounds what a state file's load reads.
const maxStateFile = 1 << 20

// stateFile persists a map by service name (drains, damping penalties) as
// JSON in state_dir, replaced atomically so that a crash leaves the old or
// the new file, never half of one.
type stateFile[V any] struct {
	path string
	what string // for errors: "drains", "damping penalties"
}

func newStateFile[V any](stateDir, name, what string) stateFile[V] {
	return stateFile[V]{path: filepath.Join(stateDir, name), what: what}
}

// load reads the file; a missing one is an empty map.
func (f stateFile[V]) load() (map[string]V, error) {
	file, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]V{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.what, err)
	}
	defer file.Close()
	// The daemon writes a few hundred bytes per service and bounds what
	// it writes; a larger file was not written by it and is not read whole.
	data, err := io.ReadAll(io.LimitReader(file, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.what, err)
	}
	if len(data) > maxStateFile {
		return nil, fmt.Errorf("read %s: %s is larger than %d bytes, more than this daemon writes", f.what, f.path, maxStateFile)
	}
	out := map[string]V{}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("read %s: %s: %w", f.what, f.path, err)
	}
	return out, nil
}

func (f stateFile[V]) save(m map[string]V) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("save %s: %w", f.what, err)
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o750); err != nil {
		return fmt.Errorf("save %s: %w", f.what, err)
	}
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("save %s: %w", f.what, err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("save %s: %w", f.what, err)
	}
	return nil
}
