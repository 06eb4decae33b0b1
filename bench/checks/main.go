// Command checks measures the check engine: N services × C checks (DNS
// over UDP and TCP connects, alternating) at an interval against local
// servers, run by the real supervisor with an in-memory interface. The
// servers run in a child process so that the CPU and RSS printed are the
// watchdog's alone. Every 10 s it prints checks/s, CPU, RSS, goroutines and
// late and missed rounds, so that growth over a long run shows. Before the
// supervisor starts and after it stops it runs the same checks alone, back
// to back on one goroutine, and prints their CPU per check beside the
// daemon's: what the checks cost by themselves on this machine. After
// those, a tls check and a dns check over TLS alone, the same way: what
// the TLS checks cost beside the others.
//
// With -exec each service has one exec check of /bin/true instead, and
// phases of the daemon alternate with phases of a bare loop that forks and
// execs /bin/true from Go at the same rate and spread; it prints the CPU
// per check of both (the process and its children) and their ratio per
// pair of phases, then the median ratio.
//
//	go run ./bench/checks [-services 200] [-checks 5] [-interval 1s] [-duration 60s]
//	go run ./bench/checks -exec [-services 50] [-pairs 5] [-duration 20s]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/advertise"
	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr/ifaddrtest"
	"github.com/anycast-watchdog/anycast-watchdog/internal/tcptest"
	"github.com/anycast-watchdog/anycast-watchdog/internal/tlstest"
)

func main() {
	services := flag.Int("services", 200, "number of services")
	checksPer := flag.Int("checks", 5, "checks per service (DNS and TCP alternating)")
	interval := flag.Duration("interval", time.Second, "service interval")
	lateAfter := flag.Duration("late", 20*time.Millisecond, "a round starting later than this after its schedule is late")
	duration := flag.Duration("duration", 60*time.Second, "how long to measure")
	serve := flag.Bool("serve", false, "internal: be the server process")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured period to this file")
	execMode := flag.Bool("exec", false, "one exec check of /bin/true per service, against a bare fork/exec loop")
	pairs := flag.Int("pairs", 5, "with -exec: how many pairs of daemon and bare-loop phases, each -duration long")
	flag.Parse()
	if *serve {
		runServers()
		return
	}
	if *execMode {
		if err := benchExec(*services, *pairs, *interval, *duration, *cpuProfile); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := bench(*services, *checksPer, *interval, *lateAfter, *duration, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// runServers serves DNS (UDP), TCP, TLS handshakes and DNS over TLS on
// 127.0.0.1, the last two with a certificate for dns.example from a CA of
// its own, and prints the four addresses and the CA's file, then serves
// until stdin closes.
func runServers() {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go tcptest.AcceptAndClose(l)
	ca, err := tlstest.NewCA()
	if err != nil {
		panic(err)
	}
	caFile, err := os.CreateTemp("", "bench-ca-*.pem")
	if err != nil {
		panic(err)
	}
	caFile.Close()
	defer os.Remove(caFile.Name())
	if err := ca.WritePEM(caFile.Name()); err != nil {
		panic(err)
	}
	tlsListener, err := ca.Listen("dns.example", time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	if err != nil {
		panic(err)
	}
	go tlstest.ServeHandshakes(tlsListener)
	dotListener, err := ca.Listen("dns.example", time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	if err != nil {
		panic(err)
	}
	answer := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
			A: net.ParseIP("198.51.100.99")}}
		w.WriteMsg(m)
	})
	go (&dns.Server{PacketConn: pc, Handler: answer}).ActivateAndServe()
	go (&dns.Server{Listener: dotListener, Net: "tcp-tls", Handler: answer}).ActivateAndServe()
	fmt.Println(pc.LocalAddr(), l.Addr(), tlsListener.Addr(), dotListener.Addr(), caFile.Name())
	io.Copy(io.Discard, os.Stdin)
}

func bench(n, checksPer int, interval, lateAfter, duration time.Duration, cpuProfile string) error {
	self, _ := os.Executable()
	child := exec.Command(self, "-serve")
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { stdin.Close(); child.Wait() }()
	var dnsAddr, tcpAddr, tlsAddr, dotAddr, caFile string
	if _, err := fmt.Fscan(stdout, &dnsAddr, &tcpAddr, &tlsAddr, &dotAddr, &caFile); err != nil {
		return fmt.Errorf("server process: %w", err)
	}

	var y strings.Builder
	y.WriteString("metrics_listen: \"\"\nservices:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&y, "  - name: svc%d\n    prefixes: [%s]\n    interval: %s\n    checks:\n", i, hostPrefix(i), interval)
		for j := 0; j < checksPer; j++ {
			if j%2 == 0 {
				fmt.Fprintf(&y, "      - {type: dns, server: %q, query: health.example., answer_contains: 198.51.100.99}\n", dnsAddr)
			} else {
				fmt.Fprintf(&y, "      - {type: tcp, address: %q}\n", tcpAddr)
			}
		}
	}
	cfg, err := config.Parse("bench.yaml", []byte(y.String()))
	if err != nil {
		return err
	}
	// The same checks alone, before the supervisor starts and after it
	// stops: the host's noise moves over minutes, so both are printed.
	aloneBefore, err := checksAlone(cfg.Services[0].Checks)
	if err != nil {
		return err
	}
	var advertised []netip.Prefix // all healthy and advertised
	for _, s := range cfg.Services {
		advertised = append(advertised, s.Prefixes[0])
	}
	iface := ifaddrtest.New(advertised...) // the bench measures checks, not ip

	var mu sync.Mutex
	var lateness histogram // fixed size: the bench must not grow with the run
	var checks, failures, rounds, late int
	measuring := false
	log := logrus.New()
	log.SetOutput(io.Discard)
	sup := advertise.New(iface, "lo", advertise.Options{Log: log, OnRound: func(r advertise.Round) {
		mu.Lock()
		defer mu.Unlock()
		if !measuring {
			return
		}
		lateness.add(r.Started.Sub(r.Scheduled))
		rounds++
		if r.Started.Sub(r.Scheduled) > lateAfter {
			late++
		}
		checks += len(r.Results)
		for _, c := range r.Results {
			if c.Err != nil {
				failures++
			}
		}
	}})
	if err := startAndSettle(sup, cfg); err != nil {
		return err
	}

	fmt.Printf("%d services × %d checks at %s for %s (GOMAXPROCS=%d)\n", n, checksPer, interval, duration, runtime.GOMAXPROCS(0))
	fmt.Printf("%8s %10s %12s %10s %10s %8s %8s\n", "t", "checks/s", "cpu %core", "rss MiB", "goroutines", "late", "missed")
	mu.Lock()
	measuring = true
	mu.Unlock()
	stopProfile, err := startProfile(cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	startUsage, startGCs, start := usage(), gcCycles(), time.Now()
	lastCPU, lastT, lastChecks, lastRounds, lastLate := startUsage.self(), start, 0, 0, 0
	for time.Since(start) < duration {
		time.Sleep(min(10*time.Second, duration-time.Since(start)))
		mu.Lock()
		c, r, lt := checks, rounds, late
		mu.Unlock()
		now, cpu := time.Now(), usage().self()
		window := now.Sub(lastT)
		// Missed: rounds the schedule called for in the window that did not run.
		expected := int(float64(n) * window.Seconds() / interval.Seconds())
		fmt.Printf("%8s %10.0f %11.2f%% %10.1f %10d %8d %8d\n", now.Sub(start).Round(time.Second),
			float64(c-lastChecks)/window.Seconds(), 100*(cpu-lastCPU).Seconds()/window.Seconds(),
			rssMiB(), runtime.NumGoroutine(), lt-lastLate, max(0, expected-(r-lastRounds)))
		lastCPU, lastT, lastChecks, lastRounds, lastLate = cpu, now, c, r, lt
	}
	elapsed, used, gcs := time.Since(start), usage().minus(startUsage), gcCycles()-startGCs
	cpu := used.self()
	mu.Lock()
	measuring = false
	total, failed, lat, lateTotal := checks, failures, lateness, late
	mu.Unlock()
	sup.Stop(context.Background(), config.OnExitKeep)
	aloneAfter, err := checksAlone(cfg.Services[0].Checks)
	if err != nil {
		return err
	}
	tlsAlone, err := tlsChecksAlone(tlsAddr, dotAddr, caFile)
	if err != nil {
		return err
	}

	fmt.Println()
	fmt.Printf("checks/s                   %.0f (%d checks, %d failed)\n", float64(total)/elapsed.Seconds(), total, failed)
	fmt.Printf("CPU                        %.2f%% of one core (user %.2f%%, kernel %.2f%%); %.1f ms CPU per 1000 checks\n",
		100*cpu.Seconds()/elapsed.Seconds(), 100*used.user.Seconds()/elapsed.Seconds(),
		100*used.sys.Seconds()/elapsed.Seconds(), 1000*cpu.Seconds()/float64(total)*1000)
	perCheck, alone := cpu/time.Duration(max(total, 1)), (aloneBefore.mix+aloneAfter.mix)/2
	fmt.Printf("the same checks alone      before: %s; after: %s\n", aloneBefore, aloneAfter)
	fmt.Printf("TLS checks alone           %s\n", tlsAlone)
	fmt.Printf("daemon / alone             %.2f× (%s per check against %s)\n", float64(perCheck)/float64(alone),
		perCheck.Round(100*time.Nanosecond), alone.Round(100*time.Nanosecond))
	fmt.Printf("context switches, GC       %.2f per check; %d GC cycles (%.1f/s)\n",
		float64(used.switches)/float64(max(total, 1)), gcs, float64(gcs)/elapsed.Seconds())
	fmt.Printf("peak RSS                   %.1f MiB\n", peakRSSMiB())
	fmt.Printf("lateness p50 / p99 / max   %s / %s / %s (%d rounds, %d later than %s)\n",
		lat.quantile(0.50), lat.quantile(0.99), lat.max.Round(time.Microsecond), lat.n, lateTotal, lateAfter)
	return nil
}

// aloneCost is the CPU per check of checks run alone (checksAlone,
// tlsChecksAlone).
type aloneCost struct {
	byType map[string]time.Duration // by check type
	mix    time.Duration            // per check of the service's mix of types
}

func (a aloneCost) String() string {
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(a.byType)) {
		parts = append(parts, fmt.Sprintf("%s %s", t, a.byType[t].Round(100*time.Nanosecond)))
	}
	if a.mix == 0 { // no mix: checks measured one type at a time
		return strings.Join(parts, ", ")
	}
	return fmt.Sprintf("%s, %s per check of the mix", strings.Join(parts, ", "), a.mix.Round(100*time.Nanosecond))
}

// aloneRuns is how many checks of each type checksAlone runs: about 1.5 s
// of DNS and TCP checks on the project's CI machine.
const aloneRuns = 10000

// checksAlone runs each of a service's checks aloneRuns times back to back
// on one goroutine, through the same checkers as the daemon's but without
// the supervisor, and returns the CPU per check of each type and of the
// service's mix: what the checks cost by themselves, the yardstick for
// the daemon's CPU per check. A failed check is an error: the servers
// must answer for the figure to mean anything.
func checksAlone(checks []config.Check) (aloneCost, error) {
	a := aloneCost{byType: map[string]time.Duration{}}
	for _, c := range checks {
		if _, done := a.byType[c.Type]; done {
			continue
		}
		cost, err := checkAlone(c, aloneRuns)
		if err != nil {
			return a, fmt.Errorf("%s check alone: %w", c.Type, err)
		}
		a.byType[c.Type] = cost
	}
	for _, c := range checks {
		a.mix += a.byType[c.Type] / time.Duration(len(checks))
	}
	return a, nil
}

// tlsAloneRuns is how many checks of each TLS type tlsChecksAlone runs:
// a handshake costs some 25 times a TCP connect.
const tlsAloneRuns = 1000

// tlsChecksAlone runs a tls check (a full handshake and the chain's
// verification every time) and a dns check over TLS (which resumes the
// last session) against the server process's listeners, alone as
// checksAlone does, and returns their CPU per check: what the TLS checks
// cost beside the others, and what a handshake costs here.
func tlsChecksAlone(tlsAddr, dotAddr, caFile string) (aloneCost, error) {
	a := aloneCost{byType: map[string]time.Duration{}}
	for name, y := range map[string]string{
		"tls":          fmt.Sprintf("{type: tls, address: %q, server_name: dns.example, ca_file: %q}", tlsAddr, caFile),
		"dns over tls": fmt.Sprintf("{type: dns, transport: tls, server: %q, server_name: dns.example, ca_file: %q, query: health.example., answer_contains: 198.51.100.99}", dotAddr, caFile),
	} {
		cfg, err := config.Parse("bench-tls.yaml", []byte("metrics_listen: \"\"\nservices:\n  - name: tls\n    prefixes: [192.0.2.1/32]\n    checks:\n      - "+y+"\n"))
		if err != nil {
			return a, err
		}
		if a.byType[name], err = checkAlone(cfg.Services[0].Checks[0], tlsAloneRuns); err != nil {
			return a, fmt.Errorf("%s check alone: %w", name, err)
		}
	}
	return a, nil
}

// checkAlone runs c runs times back to back and returns its CPU per
// check; it closes what the check keeps between rounds on every way out.
func checkAlone(c config.Check, runs int) (time.Duration, error) {
	ck, err := checker.New(c)
	if err != nil {
		return 0, err
	}
	if closer, ok := ck.(io.Closer); ok {
		defer closer.Close()
	}
	before := usage().self()
	for i := range runs {
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
		err := ck.Check(ctx)
		cancel()
		if err != nil {
			return 0, err
		}
		if i%100 == 99 {
			time.Sleep(time.Millisecond) // a pause for the TCP server's accept queue
		}
	}
	return (usage().self() - before) / time.Duration(runs), nil
}

// hostPrefix gives service i its own /32 from the documentation ranges.
func hostPrefix(i int) string {
	blocks := [][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}}
	b := blocks[(i/250)%len(blocks)]
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{b[0], b[1], b[2], byte(1 + i%250)}), 32).String()
}

// startAndSettle starts the supervisor and returns once every service has had its
// first verdict and two intervals have passed, so that the per-service
// offsets have settled and the start's burst of first rounds is over.
func startAndSettle(sup *advertise.Supervisor, cfg *config.Config) error {
	if err := sup.Start(context.Background(), cfg); err != nil {
		return err
	}
	<-sup.Ready()
	time.Sleep(max(2*time.Second, 2*cfg.Services[0].Interval))
	return nil
}
