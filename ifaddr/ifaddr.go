// Package ifaddr reads and changes the addresses of one interface through
// the ip command. Changes are idempotent: adding an address that is there
// already, or deleting one that is gone, succeeds.
package ifaddr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
)

// Controller manages addresses on one interface.
type Controller struct {
	run command.Runner
	ip  string // the ip program
	dev string
}

// New returns a Controller for dev that runs ip through run.
func New(run command.Runner, ip, dev string) *Controller {
	return &Controller{run: run, ip: ip, dev: dev}
}

// Show reads the interface.
func (c *Controller) Show(ctx context.Context) (Link, error) {
	out, err := c.run(ctx, c.ip, "-j", "addr", "show", "dev", c.dev)
	if err != nil {
		return Link{}, fmt.Errorf("read addresses of %s: %w", c.dev, err)
	}
	return ParseShow(out)
}

// Add puts p on the interface.
func (c *Controller) Add(ctx context.Context, p netip.Prefix) error {
	argv := []string{c.ip, "addr", "add", p.String(), "dev", c.dev}
	if p.Addr().Is6() {
		// No duplicate address detection: a tentative address is not
		// advertised, and an anycast address is meant to be duplicated.
		argv = append(argv, "nodad")
	}
	_, err := c.run(ctx, argv...)
	if err != nil && !stderrSays(err, "already assigned", "File exists") {
		return fmt.Errorf("add %s to %s: %w", p, c.dev, err)
	}
	return nil
}

// Del takes p off the interface.
func (c *Controller) Del(ctx context.Context, p netip.Prefix) error {
	_, err := c.run(ctx, c.ip, "addr", "del", p.String(), "dev", c.dev)
	if err != nil && !stderrSays(err, "address not found", "Cannot assign requested address") {
		return fmt.Errorf("remove %s from %s: %w", p, c.dev, err)
	}
	return nil
}

// stderrSays reports whether err is ip's failure with one of these
// messages; iproute2 6.x prints the kernel's extended ack ("Error: ipv4:
// Address already assigned."), older versions the errno text.
func stderrSays(err error, phrases ...string) bool {
	var ce *command.Error
	if !errors.As(err, &ce) {
		return false
	}
	var exit interface{ ExitCode() int }
	if !errors.As(ce.Err, &exit) {
		return false // not started, or timed out: not an answer from ip
	}
	for _, ph := range phrases {
		if strings.Contains(strings.ToLower(ce.Stderr), strings.ToLower(ph)) {
			return true
		}
	}
	return false
}
