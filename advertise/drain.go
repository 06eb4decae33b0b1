package advertise

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// drainFile persists drains (status.Drain records) as JSON in state_dir, replaced atomically so a
// crash leaves the old or the new file, never half of one.
type drainFile struct{ path string }

func newDrainFile(stateDir string) drainFile {
	return drainFile{path: filepath.Join(stateDir, "drains.json")}
}

func (f drainFile) load() (map[string]status.Drain, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]status.Drain{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read drains: %w", err)
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
