package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/anycast-watchdog/anycast-watchdog/advertise"
	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr/ifaddrtest"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// benchExec compares n services with one exec check of /bin/true each,
// run by the real supervisor, with a bare loop that runs /bin/true from Go
// at the same rate and spread. The two alternate in pairs of phases of
// duration each, the order swapped every pair, because on a VM the cost of
// a fork and exec drifts by a third within minutes: a ratio is only taken
// between neighbours. It prints every phase, then the median ratio.
func benchExec(n, pairs int, interval, duration time.Duration, cpuProfile string) error {
	var y strings.Builder
	y.WriteString("metrics_listen: \"\"\nservices:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&y, "  - {name: svc%d, prefixes: [%s], interval: %s, checks: [{type: exec, command: [/bin/true]}]}\n", i, hostPrefix(i), interval)
	}
	cfg, err := config.Parse("bench.yaml", []byte(y.String()))
	if err != nil {
		return err
	}
	fmt.Printf("%d services × 1 exec check (/bin/true) at %s; %d pairs of %s phases (GOMAXPROCS=%d)\n", n, interval, pairs, duration, runtime.GOMAXPROCS(0))
	stopProfile, err := startProfile(cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	fmt.Printf("%-10s %8s %8s %14s %14s %14s %12s\n", "", "checks", "failed", "self ms/check", "child ms/check", "total ms/check", "ctx sw/check")
	reasons := map[string]int{}
	var ratios []float64
	var daemonSum, bareSum execPhase
	for pair := 0; pair < pairs; pair++ {
		var d, b execPhase
		if pair%2 == 0 {
			if d, err = daemonPhase(cfg, duration, reasons); err != nil {
				return err
			}
			b = barePhase(n, interval, duration)
		} else {
			b = barePhase(n, interval, duration)
			if d, err = daemonPhase(cfg, duration, reasons); err != nil {
				return err
			}
		}
		d.print("daemon")
		b.print("bare loop")
		fmt.Printf("%-10s daemon's exec checks took p50 %s, p99 %s, max %s; %d services withdrawn from its start on\n", "",
			d.latency.quantile(0.5), d.latency.quantile(0.99), d.latency.max.Round(time.Microsecond), d.withdrawn)
		ratios = append(ratios, d.perCheck()/b.perCheck())
		fmt.Printf("%-10s %.2f×\n", "ratio", ratios[len(ratios)-1])
		daemonSum, bareSum = daemonSum.plus(d), bareSum.plus(b)
	}
	fmt.Println()
	daemonSum.print("daemon")
	bareSum.print("bare loop")
	slices.Sort(ratios)
	fmt.Printf("daemon / bare loop: median %.2f× of %d pairs (%.2f–%.2f×), all phases %.2f× the CPU per exec check (goal: ≤ 1.25×); the daemon's failures by reason: %v\n",
		ratios[len(ratios)/2], len(ratios), ratios[0], ratios[len(ratios)-1], daemonSum.perCheck()/bareSum.perCheck(), reasons)
	return nil
}

// execPhase is what one phase of benchExec cost.
type execPhase struct {
	usage          rusage
	checks, failed int
	elapsed        time.Duration
	latency        *histogram // the daemon's checks, from the round's start; nil for the bare loop
	withdrawn      int        // the daemon's services that went down, from its start on
}

func (p execPhase) perCheck() float64 {
	return (p.usage.self() + p.usage.children).Seconds() * 1000 / float64(max(p.checks, 1))
}

func (p execPhase) plus(q execPhase) execPhase {
	return execPhase{usage: p.usage.plus(q.usage), checks: p.checks + q.checks, failed: p.failed + q.failed, elapsed: p.elapsed + q.elapsed}
}

func (p execPhase) print(name string) {
	per := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(max(p.checks, 1)) }
	fmt.Printf("%-10s %8d %8d %14.3f %14.3f %14.3f %12.1f   (%.1f%% of a core)\n", name, p.checks, p.failed, per(p.usage.self()),
		per(p.usage.children), p.perCheck(), float64(p.usage.switches)/float64(max(p.checks, 1)),
		100*(p.usage.self()+p.usage.children).Seconds()/p.elapsed.Seconds())
}

// daemonPhase runs cfg through the real supervisor, with the daemon's own
// check builder (exec checks bounded, sharing what it shares), and
// measures duration of it once the offsets have settled; it counts the
// failures' reasons into reasons.
func daemonPhase(cfg *config.Config, duration time.Duration, reasons map[string]int) (execPhase, error) {
	var advertised []netip.Prefix
	for _, s := range cfg.Services {
		advertised = append(advertised, s.Prefixes[0])
	}
	var mu sync.Mutex
	p := execPhase{latency: new(histogram)}
	measuring := false
	log := logrus.New()
	log.SetOutput(io.Discard)
	sup := advertise.New(ifaddrtest.New(advertised...), "lo", advertise.Options{Log: log, NewChecker: checker.NewBuilder(checker.MaxExecInFlight()).New, OnRound: func(r advertise.Round) {
		mu.Lock()
		defer mu.Unlock()
		if r.To == status.Down && r.From != status.Down {
			p.withdrawn++
		}
		if !measuring {
			return
		}
		p.checks += len(r.Results)
		for _, c := range r.Results {
			p.latency.add(c.Latency)
			if c.Err != nil {
				p.failed++
				if reasons[checker.Reason(c.Err)]++; reasons[checker.Reason(c.Err)] == 1 {
					fmt.Printf("first %s: %v (after %s)\n", checker.Reason(c.Err), c.Err, c.Latency.Round(time.Millisecond))
				}
			}
		}
	}})
	if err := startAndSettle(sup, cfg); err != nil {
		return p, err
	}
	mu.Lock()
	measuring = true
	mu.Unlock()
	before, start := usage(), time.Now()
	time.Sleep(duration)
	mu.Lock()
	measuring = false
	mu.Unlock()
	p.usage, p.elapsed = usage().minus(before), time.Since(start)
	sup.Stop(context.Background(), config.OnExitKeep)
	return p, nil
}

// barePhase runs /bin/true from one goroutine per service, each at the
// service's spread over the interval, for duration.
func barePhase(n int, interval, duration time.Duration) execPhase {
	var mu sync.Mutex
	var p execPhase
	var wg sync.WaitGroup
	stop := make(chan struct{})
	before, start := usage(), time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * interval / time.Duration(n))
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				err := exec.Command("/bin/true").Run()
				mu.Lock()
				p.checks++
				if err != nil {
					p.failed++
				}
				mu.Unlock()
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	time.Sleep(duration)
	close(stop)
	wg.Wait()
	p.usage, p.elapsed = usage().minus(before), time.Since(start)
	return p
}
