package lab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Debian releases the booted tests run on: Debian 12 (FRR 8.4) and Debian
// 13 (FRR 10.3), the current stable.
const (
	Bookworm = "bookworm"
	Trixie   = "trixie"
)

// Rootfs returns a fresh copy, in dest, of a minimal Debian suite
// (Bookworm, Trixie) with systemd, iproute2, frr and dnsmasq: to boot, or
// to run the lab in on that Debian's FRR (RunInRoot).
func Rootfs(cacheDir, dest, suite string) error {
	return debianRoot(cacheDir, dest, suite, rootfsPackages, "usr/lib/frr/ospfd")
}

// LintianRoot returns a fresh copy, in dest, of a minimal Debian suite with
// its lintian, to lint the packages as that release does (RunInRoot).
func LintianRoot(cacheDir, dest, suite string) error {
	// perl-openssl-defaults provides a virtual package debootstrap's
	// resolver does not pull in by itself.
	return debianRoot(cacheDir, dest, suite, "perl-openssl-defaults,lintian", "usr/bin/lintian")
}

// debianRoot copies into dest a minimal Debian suite with packages (done
// when marker exists in it), made once with debootstrap from the mirror apt
// is configured with and cached in cacheDir.
func debianRoot(cacheDir, dest, suite, packages, marker string) error {
	// The cache's name changes with the package list, so a new list rebuilds it.
	cache := filepath.Join(cacheDir, suite+"-"+strings.ReplaceAll(packages, ",", "-"))
	if _, err := os.Stat(filepath.Join(cache, marker)); err != nil {
		mirror, err := aptMirror()
		if err != nil {
			return err
		}
		tmp := cache + ".tmp"
		os.RemoveAll(tmp)
		if err := os.MkdirAll(cacheDir, 0o755); err != nil {
			return err
		}
		out, err := exec.Command("debootstrap", "--variant=minbase", "--include="+packages, suite, tmp, mirror).CombinedOutput()
		if err != nil {
			return fmt.Errorf("debootstrap: %w: %s", err, tail(string(out), 20))
		}
		if err := os.Rename(tmp, cache); err != nil {
			return err
		}
	}
	if out, err := exec.Command("cp", "-a", cache, dest).CombinedOutput(); err != nil {
		return fmt.Errorf("copy rootfs: %w: %s", err, out)
	}
	return nil
}

// RunInRoot runs argv chrooted into root, in a private mount namespace of
// its own with root bind-mounted on itself (else `ip netns exec` fails
// inside: "mount --make-rslave /" needs a mount point), proc, sys and dev,
// a tmpfs on /run and /tmp, and the directories of binds (host path →
// path in root) bound in. Everything it mounts dies with the namespace;
// the host's mounts are untouched. It returns the combined output.
func RunInRoot(root string, binds map[string]string, env []string, argv ...string) ([]byte, error) {
	script := `set -e
R=$1; shift
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
while [ "$1" != -- ]; do mkdir -p "$R$2"; mount --bind "$1" "$R$2"; shift 2; done
shift
exec chroot "$R" "$@"
`
	args := []string{"-m", "--propagation", "private", "sh", "-c", script, "sh", root}
	for host, in := range binds {
		args = append(args, host, in)
	}
	args = append(append(append(args, "--", "/usr/bin/env"), env...), argv...)
	return exec.Command("unshare", args...).CombinedOutput()
}

// rootfsPackages are installed on top of minbase; man-db lets
// systemd-analyze verify check the unit's Documentation= links.
const rootfsPackages = "systemd,systemd-sysv,dbus,iproute2,procps,frr,adduser,man-db,dnsmasq"

// aptMirror finds the Debian mirror apt uses for bookworm; it serves the
// other suites too.
func aptMirror() (string, error) {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, stanza := range strings.Split(string(data), "\n\n") {
			var uri string
			bookworm := false
			for _, line := range strings.Split(stanza, "\n") {
				if v, ok := strings.CutPrefix(line, "URIs:"); ok {
					uri = strings.Fields(v)[0]
				}
				if v, ok := strings.CutPrefix(line, "Suites:"); ok {
					bookworm = strings.Contains(" "+v+" ", " bookworm ")
				}
			}
			if uri != "" && bookworm {
				return uri, nil
			}
		}
	}
	if data, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == "deb" && f[2] == "bookworm" {
				return f[1], nil
			}
		}
	}
	return "", errors.New("no bookworm mirror in apt's sources")
}

// Container is a booted systemd in a systemd-nspawn container with a
// private network.
type Container struct {
	Root   string
	Name   string
	nspawn *exec.Cmd
	done   chan struct{}
	Init   int // the container's PID 1, as seen from the host
	log    *os.File
	// leftovers are paths systemd-nspawn creates on the host that did not
	// exist before this container booted; Shutdown removes them.
	leftovers []string
}

// nspawnLeftovers are what systemd-nspawn leaves on this kind of host.
var nspawnLeftovers = []string{"/sys/fs/cgroup/systemd/payload", "/sys/fs/cgroup/systemd/supervisor",
	"/sys/fs/cgroup/unified/payload", "/sys/fs/cgroup/unified/supervisor", "/run/systemd/nspawn"}

// Boot starts systemd in root and waits until it is up.
func Boot(root, name, logPath string) (*Container, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	var leftovers []string
	for _, p := range nspawnLeftovers {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			leftovers = append(leftovers, p)
		}
	}
	cmd := exec.Command("systemd-nspawn", "-D", root, "--boot", "--register=no", "--keep-unit",
		"--private-network", "--console=pipe", "-M", name)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("systemd-nspawn: %w", err)
	}
	c := &Container{Root: root, Name: name, nspawn: cmd, done: make(chan struct{}), log: logf, leftovers: leftovers}
	go func() { cmd.Wait(); logf.Close(); close(c.done) }()
	if _, ok := WaitFor(30*time.Second, func() bool {
		c.Init = systemdBelow(cmd.Process.Pid)
		return c.Init != 0
	}); !ok {
		c.Shutdown(5 * time.Second)
		return nil, fmt.Errorf("no systemd in the container; log:\n%s", c.Log())
	}
	// Until systemd's bus is up systemctl cannot even ask.
	var state string
	if _, ok := WaitFor(90*time.Second, func() bool {
		out, _ := c.Exec("systemctl", "is-system-running")
		state = strings.TrimSpace(out)
		return state == "running" || state == "degraded"
	}); !ok {
		c.Shutdown(5 * time.Second)
		return nil, fmt.Errorf("container did not boot (%s); log:\n%s", state, c.Log())
	}
	return c, nil
}

// systemdBelow finds the systemd among pid's descendants.
func systemdBelow(pid int) int {
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(children)) {
		child, _ := strconv.Atoi(f)
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child)); strings.TrimSpace(string(comm)) == "systemd" {
			return child
		}
		if found := systemdBelow(child); found != 0 {
			return found
		}
	}
	return 0
}

// Exec runs argv inside the container (all its namespaces) and returns its
// combined output.
func (c *Container) Exec(argv ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.Init), "-a"}, argv...)...).CombinedOutput()
	return string(out), err
}

// Monitor streams `ip -ts monitor address` from the container's network
// namespace, line by line, until stop closes.
func (c *Container) Monitor(stop <-chan struct{}) (<-chan string, error) {
	return StreamLines(exec.Command("nsenter", "-t", strconv.Itoa(c.Init), "-n", "ip", "-ts", "monitor", "address"), stop)
}

// StreamLines starts cmd and sends its output line by line until stop
// closes, when cmd is killed. For `ip -ts monitor`, which runs until told.
func StreamLines(cmd *exec.Cmd, stop <-chan struct{}) (<-chan string, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() { <-stop; cmd.Process.Kill(); cmd.Wait() }()
	return lines, nil
}

// Log returns what the container printed on its console.
func (c *Container) Log() string {
	b, _ := os.ReadFile(c.log.Name())
	return tail(string(b), 60)
}

// Shutdown powers the container off and removes what systemd-nspawn
// leaves behind on this host. It escalates: systemctl poweroff, then
// SIGTERM to nspawn (which asks the container to power off), then SIGKILL
// to the container's PID 1, which ends every process in its PID namespace;
// killing only nspawn would orphan them.
func (c *Container) Shutdown(timeout time.Duration) {
	if c.Init != 0 {
		c.Exec("systemctl", "poweroff")
	}
	exited := func(d time.Duration) bool {
		select {
		case <-c.done:
			return true
		case <-time.After(d):
			return false
		}
	}
	if !exited(timeout) {
		c.nspawn.Process.Signal(syscall.SIGTERM)
		if !exited(timeout) {
			if c.Init != 0 {
				syscall.Kill(c.Init, syscall.SIGKILL)
			}
			if !exited(5 * time.Second) {
				c.nspawn.Process.Kill()
				<-c.done
			}
		}
	}
	for _, p := range c.leftovers {
		if strings.HasPrefix(p, "/sys/fs/cgroup/") {
			removeCgroup(p)
		} else {
			os.RemoveAll(p)
		}
	}
}

// removeCgroup removes an empty cgroup and the empty cgroups below it,
// deepest first (a cgroup directory goes only with rmdir, and only empty).
func removeCgroup(path string) {
	entries, _ := os.ReadDir(path)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroup(filepath.Join(path, e.Name()))
		}
	}
	os.Remove(path)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// HostPID is the host's PID of the process the container knows as pid.
func (c *Container) HostPID(pid int) (int, error) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", c.Init))
	if err != nil {
		return 0, err
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if other, err := os.Readlink(d + "/ns/pid"); err != nil || other != ns {
			continue
		}
		status, err := os.ReadFile(d + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "NSpid:" && f[len(f)-1] == strconv.Itoa(pid) {
				return strconv.Atoi(f[1])
			}
		}
	}
	return 0, fmt.Errorf("no process %d in container %s", pid, c.Name)
}

// MonitorTime is when `ip -ts monitor` saw the event on line, from its
// "[2026-12-04T05:01:02.123456]" prefix (the host's clock).
func MonitorTime(line string) (time.Time, bool) {
	end := strings.IndexByte(line, ']')
	if !strings.HasPrefix(line, "[") || end < 0 {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05.000000", line[1:end], time.Local)
	return t, err == nil
}

// ProcessCPU is the CPU time every thread of the host's process pid has
// run, from /proc/pid/task/*/schedstat (nanoseconds, unlike the clock
// ticks of /proc/pid/stat).
func ProcessCPU(pid int) time.Duration {
	var total time.Duration
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if fields := strings.Fields(string(b)); len(fields) > 0 {
			ns, _ := strconv.ParseInt(fields[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}
