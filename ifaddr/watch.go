package ifaddr

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"

	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
)

// maxWatchLine bounds one line of ip monitor's output: an address event is
// one line of about a hundred bytes (-o).
const maxWatchLine = 64 << 10

// Watch runs `ip -o monitor address dev DEV` and calls changed once for
// every address added to or removed from the interface, as the kernel
// tells of it, until ctx ends or ip exits. Reading the events needs no
// privilege, so ip runs without the capability the changes need.
// Outcomes:
//   - nil: ctx ended (ip is killed);
//   - an error naming the interface: ip could not start, or exited (the
//     interface went away, ip was killed), with what it printed on stderr,
//     or a line was longer than maxWatchLine.
func (c *Controller) Watch(ctx context.Context, changed func()) error {
	cmd := exec.CommandContext(ctx, c.ip, "-o", "monitor", "address", "dev", c.dev)
	cmd.Env = command.ChildEnv()
	// ip outlives nothing: killed with the daemon (SIGKILL, or an exit
	// before ctx's kill is carried out), it would wait for events forever
	// and keep the network namespace alive. Go's threads do not exit
	// under it (Pdeathsig follows the thread that forked).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, left: 4 << 10}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("watch the addresses of %s: %w", c.dev, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("watch the addresses of %s: %w", c.dev, err)
	}
	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 4096), maxWatchLine)
	for lines.Scan() {
		changed()
	}
	scanErr := lines.Err()
	if scanErr != nil {
		cmd.Process.Kill()
	}
	err = cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return nil
	case scanErr != nil:
		return fmt.Errorf("watch the addresses of %s: read ip monitor: %w", c.dev, scanErr)
	case err == nil:
		err = fmt.Errorf("ip monitor exited")
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return fmt.Errorf("watch the addresses of %s: %w: %s", c.dev, err, msg)
	}
	return fmt.Errorf("watch the addresses of %s: %w", c.dev, err)
}

// limitedWriter keeps the first left bytes written to it and drops the
// rest, never failing the writer.
type limitedWriter struct {
	w    *strings.Builder
	left int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	keep := min(len(p), l.left)
	l.w.Write(p[:keep])
	l.left -= keep
	return len(p), nil
}
