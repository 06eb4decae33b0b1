package command

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// CapNetAdmin is the one capability the daemon holds: ip needs it to add
// and remove addresses.
const CapNetAdmin = 12

const (
	prCapAmbient         = 47 // PR_CAP_AMBIENT
	prCapAmbientClearAll = 4  // PR_CAP_AMBIENT_CLEAR_ALL
)

// Caps are the capability sets of a process, as bit masks.
type Caps struct{ Inheritable, Permitted, Effective, Ambient uint64 }

// CanGive reports whether capability is permitted and inheritable, so that a child can
// be given it as an ambient capability.
func (c Caps) CanGive(capability uint) bool {
	bit := uint64(1) << capability
	return c.Permitted&bit != 0 && c.Inheritable&bit != 0
}

// ParseCaps reads the Cap* lines of /proc/PID/status.
func ParseCaps(status string) (Caps, error) {
	var c Caps
	found := 0
	for _, line := range strings.Split(status, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch name {
		case "CapInh":
			dst = &c.Inheritable
		case "CapPrm":
			dst = &c.Permitted
		case "CapEff":
			dst = &c.Effective
		case "CapAmb":
			dst = &c.Ambient
		default:
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		if err != nil {
			return Caps{}, fmt.Errorf("parse %s: %w", name, err)
		}
		*dst = v
		found++
	}
	if found != 4 {
		return Caps{}, fmt.Errorf("parse capabilities: found %d of 4 sets", found)
	}
	return c, nil
}

// OwnCaps returns this process's capability sets.
func OwnCaps() (Caps, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return Caps{}, err
	}
	return ParseCaps(string(b))
}

// ClearAmbient empties the ambient capability set of every thread, so that
// programs the daemon starts (checks, vtysh) get no capability; only a
// runner from WithCapability gives one back, to its own child. A process
// that has none has nothing to clear.
func ClearAmbient() error {
	c, err := OwnCaps()
	if err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	if c.Ambient == 0 {
		return nil
	}
	if _, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, prCapAmbient, prCapAmbientClearAll, 0); errno != 0 {
		return fmt.Errorf("clear ambient capabilities: %w", errno)
	}
	return nil
}

// WithCapability returns a Runner whose children get capability as an
// ambient capability, when this process can give it (it holds it permitted
// and inheritable, as under the unit's AmbientCapabilities=); otherwise,
// e.g. when running as root, it is Run.
func WithCapability(capability uint) Runner {
	c, err := OwnCaps()
	if err != nil || !c.CanGive(capability) || os.Geteuid() == 0 {
		return Run
	}
	return func(ctx context.Context, argv ...string) ([]byte, error) {
		return run(ctx, argv, &syscall.SysProcAttr{AmbientCaps: []uintptr{uintptr(capability)}})
	}
}
