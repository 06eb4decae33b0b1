// Package lab builds throwaway test hosts in network namespaces: it creates
// them, starts processes inside them, and on Close kills exactly the
// processes it started (by PID) and deletes exactly the namespaces it made.
// It needs root. The integration tests and the demo share it.
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
)

// Lab owns namespaces and processes until Close.
type Lab struct {
	// Dir holds logs and configuration files of the lab's processes.
	Dir string

	mu           sync.Mutex
	cleanups     []func()
	frrStateOnce sync.Once
}

// New returns an empty lab that writes its files below dir.
func New(dir string) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root (network namespaces)")
	}
	return &Lab{Dir: dir}, nil
}

func (l *Lab) onClose(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cleanups = append(l.cleanups, f)
}

// Close undoes everything, newest first. It is safe to call twice.
func (l *Lab) Close() {
	l.mu.Lock()
	cleanups := l.cleanups
	l.cleanups = nil
	l.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

// Namespace is one test host.
type Namespace struct {
	Name string
	lab  *Lab
}

// AddNamespace creates a namespace with its loopback up.
func (l *Lab) AddNamespace(name string) (*Namespace, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", name, err, out)
	}
	ns := &Namespace{Name: name, lab: l}
	l.onClose(func() { exec.Command("ip", "netns", "del", name).Run() })
	if _, err := ns.Run("ip", "link", "set", "dev", "lo", "up"); err != nil {
		return nil, err
	}
	return ns, nil
}

// Run runs argv inside the namespace and returns its output.
func (ns *Namespace) Run(argv ...string) ([]byte, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("in %s: %s: %w: %s", ns.Name, strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Addresses returns the prefixes on dev, read with ip -j like the daemon.
func (ns *Namespace) Addresses(dev string) ([]netip.Prefix, error) {
	out, err := exec.Command("ip", "-n", ns.Name, "-j", "addr", "show", "dev", dev).Output()
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", dev, ns.Name, err)
	}
	link, err := ifaddr.ParseShow(out)
	return link.Prefixes, err
}

// Has reports whether p is on dev.
func (ns *Namespace) Has(dev string, p netip.Prefix) bool {
	ps, err := ns.Addresses(dev)
	if err != nil {
		return false
	}
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// Process is a program the lab started inside a namespace.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// Start runs argv inside the namespace in the background, with stdout and
// stderr appended to Dir/<namespace>-<name>.log. ip netns exec execs the program, so the
// PID is the program's own.
func (ns *Namespace) Start(name string, argv ...string) (*Process, error) {
	logPath := filepath.Join(ns.lab.Dir, ns.Name+"-"+name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s in %s: %w", name, ns.Name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	ns.lab.onClose(func() { p.Stop(2 * time.Second) })
	return p, nil
}

// PID is the process's PID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process, by PID, if it still runs.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("%s has exited", p.Name)
	default:
		return p.cmd.Process.Signal(sig)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when killed by a signal).
func (p *Process) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s (pid %d) still runs after %s", p.Name, p.PID(), timeout)
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs; safe to repeat.
func (p *Process) Stop(grace time.Duration) {
	if p.Signal(syscall.SIGTERM) != nil {
		return
	}
	if _, err := p.Wait(grace); err != nil {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Log returns what the process has written so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// WaitFor polls cond every 10 ms until it holds or timeout passes, and
// returns how long it took.
func WaitFor(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	return WaitForContext(context.Background(), timeout, cond)
}

// WaitForContext is WaitFor that also gives up when ctx ends (the demo's
// Ctrl-C).
func WaitForContext(ctx context.Context, timeout time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > timeout || ctx.Err() != nil {
			return time.Since(start), false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Watch calls check every interval until the returned stop is called;
// stop returns check's first non-empty answer (a violation), or "". For
// asserting that something never happens, e.g. a route never disappears.
func Watch(every time.Duration, check func() string) (stop func() string) {
	quit := make(chan struct{})
	found := make(chan string, 1)
	go func() {
		defer close(found)
		for {
			select {
			case <-quit:
				return
			case <-time.After(every):
			}
			if v := check(); v != "" {
				found <- v
				return
			}
		}
	}()
	return func() string {
		close(quit)
		return <-found
	}
}
