// Command checks measures the check engine: N services × 5 checks (3 DNS
// over UDP, 2 TCP connects) at a 1 s interval against local servers, run by
// the real supervisor with an in-memory interface. The servers run in a
// child process so that the CPU and RSS printed are the watchdog's alone.
//
//	go run ./bench/checks [-services 200] [-duration 60s]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/advertise"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
)

func main() {
	services := flag.Int("services", 200, "number of services")
	duration := flag.Duration("duration", 60*time.Second, "how long to measure")
	serve := flag.Bool("serve", false, "internal: be the server process")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured period to this file")
	flag.Parse()
	if *serve {
		runServers()
		return
	}
	if err := bench(*services, *duration, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// runServers serves DNS (UDP) and TCP on 127.0.0.1 and prints both
// addresses, then serves until stdin closes.
func runServers() {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
			A: net.ParseIP("198.51.100.99")}}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	fmt.Println(pc.LocalAddr(), l.Addr())
	io.Copy(io.Discard, os.Stdin)
}

// memInterface is an interface in memory: the bench measures checks, not ip.
type memInterface struct {
	mu      sync.Mutex
	present map[netip.Prefix]bool
}

func (m *memInterface) Show(context.Context) (ifaddr.Link, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := ifaddr.Link{Name: "lo", Up: true}
	for p := range m.present {
		l.Prefixes = append(l.Prefixes, p)
	}
	return l, nil
}
func (m *memInterface) Add(_ context.Context, p netip.Prefix) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.present[p] = true
	return nil
}
func (m *memInterface) Del(_ context.Context, p netip.Prefix) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.present, p)
	return nil
}

func bench(n int, duration time.Duration, cpuProfile string) error {
	self, _ := os.Executable()
	child := exec.Command(self, "-serve")
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { stdin.Close(); child.Wait() }()
	var dnsAddr, tcpAddr string
	if _, err := fmt.Fscan(stdout, &dnsAddr, &tcpAddr); err != nil {
		return fmt.Errorf("server process: %w", err)
	}

	var y strings.Builder
	y.WriteString("metrics_listen: \"\"\nservices:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&y, `  - name: svc%d
    prefixes: [%s]
    interval: 1s
    checks:
      - {type: dns, server: "%s", query: health.example., answer_contains: 198.51.100.99}
      - {type: dns, server: "%s", query: www.example.}
      - {type: dns, server: "%s", query: ns.example., qtype: AAAA}
      - {type: tcp, address: "%s"}
      - {type: tcp, address: "%s"}
`, i, hostPrefix(i), dnsAddr, dnsAddr, dnsAddr, tcpAddr, tcpAddr)
	}
	cfg, err := config.Parse("bench.yaml", []byte(y.String()))
	if err != nil {
		return err
	}
	iface := &memInterface{present: map[netip.Prefix]bool{}}
	for _, s := range cfg.Services {
		iface.present[s.Prefixes[0]] = true // all healthy and advertised
	}

	var mu sync.Mutex
	var lateness []time.Duration
	var checks, failures int
	measuring := false
	log := logrus.New()
	log.SetOutput(io.Discard)
	sup := advertise.New(iface, "lo", advertise.Options{Log: log, OnRound: func(r advertise.Round) {
		mu.Lock()
		defer mu.Unlock()
		if !measuring {
			return
		}
		lateness = append(lateness, r.Started.Sub(r.Scheduled))
		checks += len(r.Results)
		for _, c := range r.Results {
			if c.Err != nil {
				failures++
			}
		}
	}})
	if err := sup.Start(context.Background(), cfg); err != nil {
		return err
	}
	<-sup.Ready()
	time.Sleep(2 * time.Second) // let the per-service offsets settle

	fmt.Printf("%d services × 5 checks at 1s for %s (GOMAXPROCS=%d)\n", n, duration, runtime.GOMAXPROCS(0))
	fmt.Printf("%8s %10s %12s %10s %10s\n", "t", "checks/s", "cpu %core", "rss MiB", "goroutines")
	mu.Lock()
	measuring = true
	mu.Unlock()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	startUser, startSys := cpuSplit()
	startCPU, start := cpuTime(), time.Now()
	lastCPU, lastT, lastChecks := startCPU, start, 0
	for time.Since(start) < duration {
		time.Sleep(min(10*time.Second, duration-time.Since(start)))
		mu.Lock()
		c := checks
		mu.Unlock()
		now, cpu := time.Now(), cpuTime()
		fmt.Printf("%8s %10.0f %11.2f%% %10.1f %10d\n", now.Sub(start).Round(time.Second),
			float64(c-lastChecks)/now.Sub(lastT).Seconds(), 100*(cpu-lastCPU).Seconds()/now.Sub(lastT).Seconds(),
			rssMiB(), runtime.NumGoroutine())
		lastCPU, lastT, lastChecks = cpu, now, c
	}
	elapsed, cpu := time.Since(start), cpuTime()-startCPU
	mu.Lock()
	measuring = false
	total, failed, lat := checks, failures, append([]time.Duration(nil), lateness...)
	mu.Unlock()
	sup.Stop(context.Background(), config.OnExitKeep)

	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Println()
	fmt.Printf("checks/s                   %.0f (%d checks, %d failed)\n", float64(total)/elapsed.Seconds(), total, failed)
	user, sys := cpuSplit()
	fmt.Printf("CPU                        %.2f%% of one core (user %.2f%%, kernel %.2f%%); %.1f ms CPU per 1000 checks\n",
		100*cpu.Seconds()/elapsed.Seconds(), 100*(user-startUser).Seconds()/elapsed.Seconds(),
		100*(sys-startSys).Seconds()/elapsed.Seconds(), 1000*cpu.Seconds()/float64(total)*1000)
	fmt.Printf("peak RSS                   %.1f MiB\n", peakRSSMiB())
	fmt.Printf("lateness p50 / p99 / max   %s / %s / %s (%d rounds)\n",
		pct(lat, 50), pct(lat, 99), lat[len(lat)-1].Round(time.Microsecond), len(lat))
	return nil
}

func hostPrefix(i int) string {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(100 + i/250), byte(1 + i%250)}), 32).String()
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100].Round(time.Microsecond)
}

func cpuTime() time.Duration {
	user, sys := cpuSplit()
	return user + sys
}

func cpuSplit() (user, sys time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

func peakRSSMiB() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

func rssMiB() float64 {
	b, _ := os.ReadFile("/proc/self/statm")
	var size, resident int64
	fmt.Sscan(string(b), &size, &resident)
	return float64(resident*int64(os.Getpagesize())) / (1 << 20)
}
