// Package ifaddr reads and changes the addresses of one interface through
// the ip command. Changes are idempotent: adding an address that is there
// already, or deleting one that is gone, succeeds. Ensure makes an
// interface of the daemon's own (the last-resort one) exist and be up.
package ifaddr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
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

// ErrNoDevice is Show's error, wrapped, when the interface does not exist.
var ErrNoDevice = errors.New("no such interface")

// Name is the interface's name.
func (c *Controller) Name() string { return c.dev }

// Show reads the interface.
func (c *Controller) Show(ctx context.Context) (Link, error) {
	out, err := c.run(ctx, c.ip, "-j", "addr", "show", "dev", c.dev)
	if err != nil {
		if stderrSays(err, "does not exist") {
			err = fmt.Errorf("%w: %w", ErrNoDevice, err)
		}
		return Link{}, fmt.Errorf("read addresses of %s: %w", c.dev, err)
	}
	return ParseShow(out)
}

// ShowAll reads every interface of the host (of its network namespace)
// with `ip -j addr show`, run through run.
func ShowAll(ctx context.Context, run command.Runner, ip string) ([]Link, error) {
	out, err := run(ctx, ip, "-j", "addr", "show")
	if err != nil {
		return nil, fmt.Errorf("read the addresses of every interface: %w", err)
	}
	return ParseShowAll(out)
}

// Ensure makes the interface exist and be up: one that is missing is
// created as a dummy interface, one that is down is set up. It reports
// what it did ("" when nothing was needed).
func (c *Controller) Ensure(ctx context.Context) (done string, err error) {
	link, err := c.Show(ctx)
	switch {
	case errors.Is(err, ErrNoDevice):
		if _, err := c.run(ctx, c.ip, "link", "add", "dev", c.dev, "type", "dummy"); err != nil && !stderrSays(err, "File exists") {
			return "", fmt.Errorf("create %s as a dummy interface: %w", c.dev, err)
		}
		done = "created as a dummy interface and set up"
	case err != nil:
		return "", err
	case link.Up:
		return "", nil
	default:
		done = "set up"
	}
	if _, err := c.run(ctx, c.ip, "link", "set", "dev", c.dev, "up"); err != nil {
		return "", fmt.Errorf("set %s up: %w", c.dev, err)
	}
	return done, nil
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

// Move takes p from the interface from to this one in one `ip -force
// -batch` call, so that the routing daemons see one change: two ip calls
// a few milliseconds apart made ospfd send two LSAs, and the router's SPF
// hold delayed the second, the one that moves the traffic (docs/frr.md,
// "Timers"). addFirst puts the add before the delete, so that p is
// never off both interfaces; else p is off both for the microseconds
// between two netlink messages, which FRR 8.4's zebra needs to see a host
// route move between interfaces (while it is on two, zebra keeps naming
// the one that had it first, even once it is gone there). An add of an
// address already there and a delete of one already gone count as
// success, as in Add and Del; any other failure is an error, and either
// change may then have happened.
func (c *Controller) Move(ctx context.Context, p netip.Prefix, from string, addFirst bool) error {
	add := "addr add " + p.String() + " dev " + c.dev
	if p.Addr().Is6() {
		add += " nodad"
	}
	del := "addr del " + p.String() + " dev " + from
	lines := del + "\n" + add + "\n"
	if addFirst {
		lines = add + "\n" + del + "\n"
	}
	batch, err := os.CreateTemp("", "anycast-watchdog-ip-*.batch")
	if err != nil {
		return fmt.Errorf("move %s to %s: %w", p, c.dev, err)
	}
	defer os.Remove(batch.Name())
	_, werr := batch.WriteString(lines)
	if cerr := batch.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("move %s to %s: %w", p, c.dev, werr)
	}
	_, err = c.run(ctx, c.ip, "-force", "-batch", batch.Name())
	if err != nil && !onlyIdempotentFailures(err) {
		return fmt.Errorf("move %s from %s to %s: %w", p, from, c.dev, err)
	}
	return nil
}

// onlyIdempotentFailures reports whether every error a batch run reported
// is one that Add or Del take as success.
func onlyIdempotentFailures(err error) bool {
	var ce *command.Error
	if !errors.As(err, &ce) || !stderrSays(err, "") {
		return false
	}
	for _, line := range strings.Split(ce.Stderr, "\n") {
		l := strings.ToLower(strings.TrimSpace(line))
		switch {
		case l == "", strings.HasPrefix(l, "command failed"):
		case strings.Contains(l, "already assigned"), strings.Contains(l, "file exists"),
			strings.Contains(l, "address not found"), strings.Contains(l, "cannot assign requested address"):
		default:
			return false
		}
	}
	return true
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
