// Command exec measures what an exec check costs in the daemon as users
// run it: the shipped binary (built as the .deb builds it), started as its
// own process with `anycast-watchdog run` in a network namespace of its
// own, N services each with one exec check of /bin/true, their prefixes on
// lo, metrics on, default logging, frr.verify off; beside the reference
// program of bench/execref (one goroutine per service, a ticker,
// exec.CommandContext(...).Output()) in the same namespace, at the same
// rate and deadline. Each runs alone in a phase; the two alternate in
// pairs, the order swapped every pair (a fork's cost drifts on a VM within
// minutes: a ratio is only taken between neighbours). Each process tree is
// measured from /proc over the phase once warmed up: its own CPU (every
// thread) and its children's (waited for, or still running), its threads'
// context switches,
// its RSS, and the checks that ran, did not run (starved) or timed out.
// It prints every phase, then per service count the median of the pairs'
// ratios. With -soak it runs the daemon alone instead, from its start (the
// first rounds' burst included) for the soak's length, and prints its
// checks, the ones that did not run or timed out, its rounds' lateness
// and its CPU and RSS. Root only.
//
//	go run ./bench/exec [-binary ./anycast-watchdog] [-services 50,500] [-interval 1s] [-pairs 5] [-duration 20s]
//	go run ./bench/exec -soak 10m -services 500 -interval 10s
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/internal/procstat"
)

func main() {
	binary := flag.String("binary", "./anycast-watchdog", "the daemon, built as the .deb builds it (make build)")
	counts := flag.String("services", "50,500", "service counts to measure, comma-separated")
	interval := flag.Duration("interval", time.Second, "every service's interval")
	pairs := flag.Int("pairs", 5, "pairs of phases per service count")
	duration := flag.Duration("duration", 20*time.Second, "each phase's measured time")
	command := flag.String("command", "/bin/true", "the checked program")
	keep := flag.Bool("keep", false, "keep the work directory (configurations, logs)")
	soak := flag.Duration("soak", 0, "run only the daemon, from its start, this long, and count what did not run")
	scrapeURL := flag.String("scrape", "", "internal: print this URL's body (run inside the namespace)")
	flag.Parse()
	if *scrapeURL != "" {
		if err := get(*scrapeURL); err != nil {
			fmt.Fprintln(os.Stderr, "exec:", err)
			os.Exit(1)
		}
		return
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "exec: needs root (a network namespace)")
		os.Exit(2)
	}
	if err := run(*binary, *counts, *interval, *pairs, *duration, *soak, *command, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "exec:", err)
		os.Exit(1)
	}
}

func run(binary, counts string, interval time.Duration, pairs int, duration, soak time.Duration, command string, keep bool) error {
	binary, err := filepath.Abs(binary)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "aw-bench-exec-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("work directory:", dir)
	}
	ref := filepath.Join(dir, "execref")
	if out, err := exec.Command("go", "build", "-o", ref, "./bench/execref").CombinedOutput(); err != nil {
		return fmt.Errorf("build the reference: %v: %s", err, out)
	}
	ns := fmt.Sprintf("awbx%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("lo up: %v: %s", err, out)
	}
	fmt.Printf("the shipped binary (%s) against bench/execref: one exec check of %s per service every %s; %d pairs of %s phases per count\n",
		binary, command, interval, pairs, duration)
	fmt.Println("daemon: anycast-watchdog run in its own network namespace, prefixes on lo, metrics on, log_level info, frr.verify off, no last-resort interface")
	for _, c := range strings.Split(counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 || n > 4000 {
			return fmt.Errorf("-services %q: each count is 1 to 4000", counts)
		}
		if soak > 0 {
			if err := soakCount(dir, ns, binary, command, n, interval, soak); err != nil {
				return err
			}
			continue
		}
		if err := measureCount(dir, ns, binary, ref, command, n, interval, pairs, duration); err != nil {
			return err
		}
	}
	return nil
}

// measureCount runs the pairs of phases for n services and prints them.
func measureCount(dir, ns, binary, ref, command string, n int, interval time.Duration, pairs int, duration time.Duration) error {
	cfg := filepath.Join(dir, fmt.Sprintf("aw-%d.yaml", n))
	if err := os.WriteFile(cfg, []byte(daemonConfig(dir, n, interval, command)), 0o644); err != nil {
		return err
	}
	fmt.Printf("\n%d services × %s\n", n, interval)
	fmt.Printf("%-9s %8s %8s %8s %12s %12s %12s %10s %8s\n", "", "checks", "starved", "timeout", "self ms/chk", "child ms/chk", "total ms/chk", "ctxsw/chk", "RSS (anon) MiB")
	var ratios, selfRatios, childRatios []float64
	var rssDaemon, rssRef, anonDaemon, anonRef []float64
	for pair := range pairs {
		var d, r phase
		var err error
		first, second := "daemon", "reference"
		if pair%2 == 1 {
			first, second = second, first
		}
		for _, which := range []string{first, second} {
			if which == "daemon" {
				d, err = daemonPhase(ns, binary, cfg, filepath.Join(dir, fmt.Sprintf("aw-%d-%d.log", n, pair)), n, interval, duration)
			} else {
				r, err = refPhase(ns, ref, command, n, interval, duration)
			}
			if err != nil {
				return err
			}
		}
		d.print("daemon")
		r.print("reference")
		ratios = append(ratios, d.perCheck(d.self+d.children)/r.perCheck(r.self+r.children))
		selfRatios = append(selfRatios, d.perCheck(d.self)/r.perCheck(r.self))
		childRatios = append(childRatios, d.perCheck(d.children)/r.perCheck(r.children))
		rssDaemon, rssRef = append(rssDaemon, d.rss.All), append(rssRef, r.rss.All)
		anonDaemon, anonRef = append(anonDaemon, d.rss.Anon), append(anonRef, r.rss.Anon)
		fmt.Printf("%-9s %.2f× (self %.2f×, children %.2f×)\n", "ratio", ratios[pair], selfRatios[pair], childRatios[pair])
	}
	fmt.Printf("%d services: daemon / reference CPU per check, median of %d pairs: %.2f× (range %.2f–%.2f×); self %.2f×, children %.2f×; RSS median %.1f MiB against %.1f MiB, of it anonymous %.1f MiB against %.1f MiB\n",
		n, pairs, median(ratios), slices.Min(ratios), slices.Max(ratios), median(selfRatios), median(childRatios), median(rssDaemon), median(rssRef), median(anonDaemon), median(anonRef))
	return nil
}

// soakCount runs the daemon with n services for soak from its start and
// prints what it ran, what did not run or timed out, how late its rounds
// started, and what it cost.
func soakCount(dir, ns, binary, command string, n int, interval, soak time.Duration) error {
	cfg := filepath.Join(dir, fmt.Sprintf("aw-%d.yaml", n))
	if err := os.WriteFile(cfg, []byte(daemonConfig(dir, n, interval, command)), 0o644); err != nil {
		return err
	}
	logFile := filepath.Join(dir, fmt.Sprintf("aw-%d-soak.log", n))
	start := time.Now()
	cmd, err := startDaemon(ns, binary, cfg, logFile)
	if err != nil {
		return err
	}
	defer stop(cmd)
	fmt.Printf("\n%d services × %s, the daemon alone from its start for %s\n", n, interval, soak)
	time.Sleep(soak)
	u, elapsed, rss := procstat.Of(cmd.Process.Pid), time.Since(start), procstat.ResidentOf(cmd.Process.Pid)
	body, err := scrapeIn(ns)
	if err != nil {
		b, _ := os.ReadFile(logFile)
		return fmt.Errorf("%w; log:\n%s", err, tail(string(b), 20))
	}
	checks := sumOf(body, "anycast_watchdog_check_duration_seconds_count")
	starved := sumOf(body, "anycast_watchdog_check_failures_total", `reason="starved"`)
	timeouts := sumOf(body, "anycast_watchdog_check_failures_total", `reason="timeout"`)
	failed := sumOf(body, "anycast_watchdog_check_failures_total")
	fmt.Printf("checks %.0f, starved %.0f, timed out %.0f, failed otherwise %.0f; CPU %.3f ms per check (self %.3f, children %.3f), %.1f%% of a core; RSS %.1f MiB (anonymous %.1f)\n",
		checks, starved, timeouts, failed-starved-timeouts,
		(u.Self+u.Children).Seconds()*1000/max(checks, 1), u.Self.Seconds()*1000/max(checks, 1), u.Children.Seconds()*1000/max(checks, 1),
		100*(u.Self+u.Children).Seconds()/elapsed.Seconds(), rss.All, rss.Anon)
	rounds := sumOf(body, "anycast_watchdog_round_lateness_seconds_count")
	fmt.Printf("rounds %.0f, started late by", rounds)
	for _, le := range []string{"0.001", "0.01", "0.1", "1"} {
		fmt.Printf(" ≤ %s s: %.0f,", le, sumOf(body, "anycast_watchdog_round_lateness_seconds_bucket", `le="`+le+`"`))
	}
	fmt.Printf(" more: %.0f\n", rounds-sumOf(body, "anycast_watchdog_round_lateness_seconds_bucket", `le="1"`))
	return nil
}

// daemonConfig is the daemon's configuration for n exec services.
func daemonConfig(dir string, n int, interval time.Duration, command string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "interface: lo\nlast_resort_interface: \"\"\non_exit: keep\ncontrol_socket: %s/aw.sock\nstate_dir: %s/state\nmetrics_listen: \"127.0.0.1:9799\"\nfrr: {verify: false}\nservices:\n", dir, dir)
	for i := range n {
		fmt.Fprintf(&b, "  - {name: svc%d, prefixes: [\"2001:db8:%x::53/128\"], interval: %s, checks: [{type: exec, command: [%q]}]}\n", i, i, interval, command)
	}
	return b.String()
}

// phase is what one process tree cost over a measured phase.
type phase struct {
	self, children  time.Duration
	switches        int64
	checks, starved float64
	timeouts        float64
	rss             procstat.Resident
	elapsed         time.Duration
}

func (p phase) perCheck(d time.Duration) float64 { return d.Seconds() * 1000 / max(p.checks, 1) }

func (p phase) print(name string) {
	fmt.Printf("%-9s %8.0f %8.0f %8.0f %12.3f %12.3f %12.3f %10.2f %6.1f (%4.1f)   (%.1f%% of a core)\n", name, p.checks, p.starved, p.timeouts,
		p.perCheck(p.self), p.perCheck(p.children), p.perCheck(p.self+p.children), float64(p.switches)/max(p.checks, 1), p.rss.All, p.rss.Anon,
		100*(p.self+p.children).Seconds()/p.elapsed.Seconds())
}

// startDaemon starts `anycast-watchdog run` with cfg in namespace ns, in
// its own process group, its output to logFile (kept open by the process).
func startDaemon(ns, binary, cfg, logFile string) (*exec.Cmd, error) {
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command("ip", "netns", "exec", ns, binary, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// daemonPhase starts the daemon, waits until every service is up and two
// intervals more, and measures duration of it between two scrapes.
func daemonPhase(ns, binary, cfg, logFile string, n int, interval, duration time.Duration) (phase, error) {
	cmd, err := startDaemon(ns, binary, cfg, logFile)
	if err != nil {
		return phase{}, err
	}
	defer stop(cmd)
	scrape := func() (string, error) { return scrapeIn(ns) }
	deadline := time.Now().Add(60 * time.Second)
	for {
		body, err := scrape()
		if err == nil && sumOf(body, "anycast_watchdog_service_state", `state="up"`) == float64(n) {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logFile)
			return phase{}, fmt.Errorf("the daemon's %d services were not all up within 60 s (%v); log:\n%s", n, err, tail(string(b), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * interval)
	before, err := scrape()
	if err != nil {
		return phase{}, err
	}
	u0, start := procstat.Of(cmd.Process.Pid), time.Now()
	time.Sleep(duration)
	u1, elapsed := procstat.Of(cmd.Process.Pid), time.Since(start)
	after, err := scrape()
	if err != nil {
		return phase{}, err
	}
	count := func(body string) (checks, starved, timeouts float64) {
		return sumOf(body, "anycast_watchdog_check_duration_seconds_count"),
			sumOf(body, "anycast_watchdog_check_failures_total", `reason="starved"`),
			sumOf(body, "anycast_watchdog_check_failures_total", `reason="timeout"`)
	}
	c0, s0, t0 := count(before)
	c1, s1, t1 := count(after)
	return phase{self: u1.Self - u0.Self, children: u1.Children - u0.Children, switches: u1.Switches - u0.Switches,
		checks: c1 - c0, starved: s1 - s0, timeouts: t1 - t0, rss: procstat.ResidentOf(cmd.Process.Pid), elapsed: elapsed}, nil
}

// refPhase starts the reference, lets it run two intervals and a second,
// and measures duration of it between two of its counts.
func refPhase(ns, ref, command string, n int, interval, duration time.Duration) (phase, error) {
	cmd := exec.Command("ip", "netns", "exec", ns, ref, "-services", strconv.Itoa(n), "-interval", interval.String(), "--", command)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return phase{}, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return phase{}, err
	}
	defer stop(cmd)
	lines := bufio.NewScanner(out)
	counts := func() (checks, failed, timeouts float64, err error) {
		cmd.Process.Signal(syscall.SIGUSR1)
		if !lines.Scan() {
			return 0, 0, 0, fmt.Errorf("the reference printed no counts: %v", lines.Err())
		}
		_, err = fmt.Sscanf(lines.Text(), "checks %f failed %f timeouts %f", &checks, &failed, &timeouts)
		return checks, failed, timeouts, err
	}
	time.Sleep(2*interval + time.Second)
	c0, _, t0, err := counts()
	if err != nil {
		return phase{}, err
	}
	u0, start := procstat.Of(cmd.Process.Pid), time.Now()
	time.Sleep(duration)
	u1, elapsed := procstat.Of(cmd.Process.Pid), time.Since(start)
	c1, _, t1, err := counts()
	if err != nil {
		return phase{}, err
	}
	return phase{self: u1.Self - u0.Self, children: u1.Children - u0.Children, switches: u1.Switches - u0.Switches,
		checks: c1 - c0, timeouts: t1 - t0, rss: procstat.ResidentOf(cmd.Process.Pid), elapsed: elapsed}, nil
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// scrapeIn reads the daemon's metrics inside namespace ns, by running
// this program there with -scrape.
func scrapeIn(ns string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	out, err := exec.Command("ip", "netns", "exec", ns, self, "-scrape", "http://127.0.0.1:9799/metrics").Output()
	if err != nil {
		return "", fmt.Errorf("scrape: %w", err)
	}
	return string(out), nil
}

// get prints url's body.
func get(url string) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

// sumOf sums the series of name whose labels contain every one of labels.
func sumOf(body, name string, labels ...string) float64 {
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 || strings.HasPrefix(line, "#") {
			continue
		}
		series := line[:i]
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(series, l)
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); all && err == nil {
			sum += v
		}
	}
	return sum
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
