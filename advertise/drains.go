package advertise

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// maxDrainFile bounds what load reads.
const maxDrainFile = 1 << 20

// drainFile persists drains (status.Drain records) as JSON in state_dir, replaced atomically so a
// crash leaves the old or the new file, never half of one.
type drainFile struct{ path string }

func newDrainFile(stateDir string) drainFile {
	return drainFile{path: filepath.Join(stateDir, "drains.json")}
}

func (f drainFile) load() (map[string]status.Drain, error) {
	file, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]status.Drain{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read drains: %w", err)
	}
	defer file.Close()
	// The daemon writes a few hundred bytes per drain and bounds reasons;
	// a larger file was not written by it and is not read whole.
	data, err := io.ReadAll(io.LimitReader(file, maxDrainFile+1))
	if err != nil {
		return nil, fmt.Errorf("read drains: %w", err)
	}
	if len(data) > maxDrainFile {
		return nil, fmt.Errorf("read drains: %s is larger than %d bytes, more than this daemon writes", f.path, maxDrainFile)
	}
	drains := map[string]status.Drain{}
	if err := json.Unmarshal(data, &drains); err != nil {
		return nil, fmt.Errorf("read drains: %s: %w", f.path, err)
	}
	return drains, nil
}

func (f drainFile) save(drains map[string]status.Drain) error {
	data, err := json.MarshalIndent(drains, "", "  ")
	if err != nil {
		return fmt.Errorf("save drains: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o750); err != nil {
		return fmt.Errorf("save drains: %w", err)
	}
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("save drains: %w", err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("save drains: %w", err)
	}
	return nil
}
