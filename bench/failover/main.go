// Command failover measures, on the FRR lab, how fast the router stops and
// resumes sending traffic to a node whose service breaks and recovers, over
// N trials: detection (service change → address change on the node, both
// timestamped by the kernel through `ip -ts monitor`), propagation (address
// change → router FIB change) and their total, against the floor the
// configuration allows, and the DNS queries lost under load. With -trial
// drain it drains and undrains node 1 instead and counts the queries lost
// per cycle. With -trial stale6 no daemon runs: node 1's /128 is withdrawn
// by each kind of move (a removal, a move to last resort in either order,
// a drain), a set delay after the router routes to both nodes again, and
// it counts the withdrawals after which the router kept a next hop to
// node 1 (the stale OSPFv3 next hop of docs/frr.md). With -trial steady
// it starts every node's daemon and measures, per node and minute of a
// steady fleet that nobody scrapes, the vtysh calls and the CPU of ospfd,
// ospf6d and the daemon (-nodes 16 -routers 2: the fleet lab). Root only.
//
// With -protocol bgp the lab is the BGP one: the router is an eBGP upstream
// and propagation is the node's bgpd telling it.
//
// With -frr 10 it runs itself again, with the same flags, chrooted into a
// Debian 13 root (FRR 10.3, cached in /var/cache/anycast-watchdog-tests as
// the integration tier's): the same lab on the other FRR.
//
//	go run ./bench/failover [-protocol ospf|bgp] [-trial break|drain|stale6|steady] [-nodes 2] [-routers 1] [-duration 1m] [-delays 1s,6s] [-fresh node|router] [-trials 20] [-qps 100] [-last-resort=true] [-binary ./anycast-watchdog] [-frr host|10]
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
)

func main() {
	trials := flag.Int("trials", 20, "number of break/repair trials")
	binary := flag.String("binary", "./anycast-watchdog", "the anycast-watchdog binary")
	interval := flag.Duration("interval", time.Second, "service interval")
	fast := flag.Duration("fast-interval", 200*time.Millisecond, "service fast_interval")
	rise := flag.Int("rise", 3, "service rise")
	fall := flag.Int("fall", 2, "service fall")
	minArrival0 := flag.Bool("min-arrival-0", true, "set `timers lsa min-arrival 0` on every router")
	lastResort := flag.Bool("last-resort", true, "give every node a last-resort interface (off: withdrawals and drains remove at once)")
	trial := flag.String("trial", "break", "break: the service breaks and recovers; drain: node 1 is drained and undrained; stale6: node 1's /128 is withdrawn by each kind of move, no daemon, counting stale OSPFv3 next hops")
	delays := flag.String("delays", "1s,6s", "stale6: the waits from the router routing via both nodes to the withdrawal")
	nodes := flag.Int("nodes", 2, "anycast nodes in the lab")
	routers := flag.Int("routers", 1, "routers in the lab (1 or 2)")
	duration := flag.Duration("duration", time.Minute, "steady: how long to measure")
	fresh := flag.String("fresh", "", "stale6: restart this ospf6d before each withdrawal: node (node 1's) or router; lab: build a new lab for each; empty: none")
	qps := flag.Int("qps", 100, "DNS queries per second from the router to the anycast address")
	spfHold := flag.Int("spf-hold", 10, "every router's initial SPF hold in ms (`timers throttle spf 0 HOLD 1000`; docs/frr.md's recipe: 10)")
	protocol := flag.String("protocol", "ospf", "ospf: the OSPF lab; bgp: the BGP lab (an eBGP upstream, docs/bgp.md's recipe; implies -last-resort)")
	frrVersion := flag.String("frr", "host", "host: this machine's FRR; 10: Debian 13's FRR 10.3, in a chroot of its root")
	flag.Parse()
	switch *frrVersion {
	case "host":
	case "10":
		if err := inDebian13(*binary); err != nil {
			fmt.Fprintln(os.Stderr, "failover:", err)
			os.Exit(1)
		}
		return
	default:
		fmt.Fprintln(os.Stderr, "failover: -frr is host or 10")
		os.Exit(2)
	}
	if *protocol != "ospf" && *protocol != "bgp" {
		fmt.Fprintln(os.Stderr, "failover: -protocol is ospf or bgp")
		os.Exit(2)
	}
	o := lab.AnycastOptions{Nodes: *nodes, Routers: *routers, Interval: *interval, FastInterval: *fast, Rise: *rise, Fall: *fall, MinArrival0: *minArrival0,
		LastResort: *lastResort, SPFHold: *spfHold, BGP: *protocol == "bgp",
		// Its trials fail the same node again and again: the default
		// flap damping would hold it at last resort from the third on.
		Damping: "{mode: off}"}
	if *trial != "break" && *trial != "drain" && *trial != "stale6" && *trial != "steady" {
		fmt.Fprintln(os.Stderr, "failover: -trial is break, drain, stale6 or steady")
		os.Exit(2)
	}
	var waits []time.Duration
	for _, d := range strings.Split(*delays, ",") {
		w, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			fmt.Fprintf(os.Stderr, "failover: -delays %q: %v\n", *delays, err)
			os.Exit(2)
		}
		waits = append(waits, w)
	}
	if *fresh != "" && *fresh != "node" && *fresh != "router" && *fresh != "lab" {
		fmt.Fprintln(os.Stderr, "failover: -fresh is node, router, lab or empty")
		os.Exit(2)
	}
	if err := run(*binary, *trial, *trials, *qps, stale6Options{*fresh, waits}, *duration, o); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

// inDebian13 runs this program again, with the same flags but -frr and
// -binary, chrooted into a fresh copy of the cached Debian 13 root, and
// prints what it prints.
func inDebian13(binary string) error {
	dir, err := os.MkdirTemp("", "failover-frr10-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root, bin := filepath.Join(dir, "root"), filepath.Join(dir, "aw")
	if err := lab.Rootfs("/var/cache/anycast-watchdog-tests", root, lab.Trixie); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	for from, to := range map[string]string{self: "failover", binary: "anycast-watchdog"} {
		if out, err := exec.Command("cp", from, filepath.Join(bin, to)).CombinedOutput(); err != nil {
			return fmt.Errorf("copy %s: %v: %s", from, err, out)
		}
	}
	argv := []string{"/tmp/aw/failover", "-binary", "/tmp/aw/anycast-watchdog"}
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "frr" && f.Name != "binary" {
			argv = append(argv, "-"+f.Name+"="+f.Value.String())
		}
	})
	fmt.Println("in a Debian 13 root (FRR 10.3):", strings.Join(argv, " "))
	out, err := lab.RunInRoot(root, map[string]string{bin: "/tmp/aw"}, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, argv...)
	os.Stdout.Write(out)
	return err
}

// service is node 1's DNS server, run by the bench so that it knows when
// each health probe arrives and can break on command (REFUSED to all).
type service struct {
	mu     sync.Mutex
	broken bool
	probes []time.Time
}

func (s *service) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.mu.Lock()
	broken := s.broken
	if r.Question[0].Name == "health.example." {
		s.probes = append(s.probes, time.Now())
	}
	s.mu.Unlock()
	m := new(dns.Msg)
	if broken {
		m.SetRcode(r, dns.RcodeRefused)
		w.WriteMsg(m)
		return
	}
	m.SetReply(r)
	answer := "198.51.100.99"
	if r.Question[0].Name == "whoami.example." {
		answer = "203.0.113.1"
	}
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
		A: net.ParseIP(answer)}}
	w.WriteMsg(m)
}

func (s *service) set(broken bool) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broken = broken
	return time.Now()
}

// firstProbeAfter returns the first health probe at or after t.
func (s *service) firstProbeAfter(t time.Time, within time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, p := range s.probes {
			if !p.Before(t) {
				s.mu.Unlock()
				return p, true
			}
		}
		s.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, false
}

// event is one kernel notification seen by `ip -ts monitor`.
type event struct {
	at      time.Time
	deleted bool
	subject string // the address or route destination
}

var monitorLine = regexp.MustCompile(`^\[(\S+)\] (Deleted )?(?:\d+: \S+\s+inet6? )?(\S+)`)

// monitor streams `ip -ts -n NS monitor WHAT` into events until stop closes.
func monitor(ns, what string, stop <-chan struct{}) (<-chan event, error) {
	lines, err := lab.StreamLines(exec.Command("ip", "-ts", "-n", ns, "monitor", what), stop)
	if err != nil {
		return nil, err
	}
	ch := make(chan event, 1000)
	go func() {
		for line := range lines {
			m := monitorLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			at, err := time.ParseInLocation("2006-01-02T15:04:05.000000", m[1], time.Local)
			if err != nil {
				continue
			}
			ch <- event{at: at, deleted: m[2] != "", subject: m[3]}
		}
	}()
	return ch, nil
}

// waitEvent returns the first event on ch for subject (with the given
// deleted flag) stamped at or after since.
func waitEvent(ch <-chan event, subject string, deleted bool, since time.Time, within time.Duration) (time.Time, error) {
	timeout := time.After(within)
	for {
		select {
		case e := <-ch:
			if e.subject == subject && e.deleted == deleted && !e.at.Before(since) {
				return e.at, nil
			}
		case <-timeout:
			return time.Time{}, fmt.Errorf("no event for %s (deleted=%v) within %s", subject, deleted, within)
		}
	}
}

// drain empties ch of stale events.
func drain(ch <-chan event) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

type sample struct{ detection, propagation, total, floor, overhead time.Duration }

// stale6Options are -trial stale6's flags.
type stale6Options struct {
	fresh  string
	delays []time.Duration
}

func run(binary, trial string, trials, qps int, s6 stale6Options, duration time.Duration, o lab.AnycastOptions) error {
	stop := make(chan struct{})
	defer close(stop)
	binary, _ = filepath.Abs(binary)
	o.Binary = binary
	l, cleanup, err := lab.NewTemp("aw-bench-failover-")
	if err != nil {
		return err
	}
	defer cleanup()
	a, err := l.NewAnycastLab(fmt.Sprintf("awbf%d", os.Getpid()%10000), o)
	if err != nil {
		return err
	}
	if err := a.WaitAdjacent(20 * time.Second); err != nil {
		return err
	}
	switch trial {
	case "stale6":
		return stale6Trials(a, trials, s6.delays, s6.fresh, func() (*lab.AnycastLab, func(), error) {
			l, done, err := lab.NewTemp("aw-bench-stale6-")
			if err != nil {
				return nil, nil, err
			}
			b, err := l.NewAnycastLab(fmt.Sprintf("awbs%d", os.Getpid()%10000), o)
			if err == nil {
				err = b.WaitAdjacent(20 * time.Second)
			}
			if err != nil {
				done()
				return nil, nil, err
			}
			return b, done, nil
		})
	case "steady":
		return steady(a, duration)
	}
	n1 := a.Nodes[0]
	n1.DNS.Stop(2 * time.Second) // replaced by the bench's own server
	svc := &service{}
	pc, err := n1.NS.ListenPacket("udp4", "0.0.0.0:53")
	if err != nil {
		return err
	}
	srv := &dns.Server{PacketConn: pc, Handler: svc}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	for _, n := range a.Nodes {
		if err := n.StartWatchdog(); err != nil {
			return err
		}
	}
	addrs, err := monitor(n1.NS.Name, "address", stop)
	if err != nil {
		return err
	}
	routes, err := monitor(a.Router.Name, "route", stop)
	if err != nil {
		return err
	}
	if _, ok := lab.WaitFor(20*time.Second, func() bool { v4, v6 := a.Routes(); return len(v4) == 2 && len(v6) == 2 }); !ok {
		return fmt.Errorf("the router never had both nodes; node 1 log:\n%s", n1.Watchdog.Log())
	}
	ld := a.Router.StartQueryLoad(qps, lab.AnycastV4.Addr())
	defer ld.Stop()

	routing := fmt.Sprintf("OSPF, router min-arrival 0: %v, SPF hold %d ms", o.MinArrival0, o.SPFHold)
	if o.BGP {
		routing = "BGP, eBGP upstream, timers 1 3, docs/frr.md's recipe"
	}
	fmt.Printf("config: interval %s, fast_interval %s, rise %d, fall %d; %s; last-resort interface: %v; %d trials at %d queries/s\n",
		o.Interval, o.FastInterval, o.Rise, o.Fall, routing, o.LastResort || o.BGP, trials, qps)
	if trial == "drain" {
		return drainTrials(a, binary, trials, ld)
	}
	anycast := lab.AnycastV4.Addr().String()
	var withdraw, restore []sample
	var lostW, lostR []int
	for i := 0; i < trials; i++ {
		time.Sleep(time.Duration(i%7) * o.Interval / 7) // vary the phase against the probe grid
		drain(addrs)
		drain(routes)
		broke := svc.set(true)
		removed, err := waitEvent(addrs, lab.AnycastV4.String(), true, broke, 10*time.Second)
		if err != nil {
			return fmt.Errorf("trial %d withdraw: %w; log:\n%s", i, err, n1.Watchdog.Log())
		}
		fib, err := waitEvent(routes, anycast, false, removed, 10*time.Second)
		if err != nil {
			return fmt.Errorf("trial %d withdraw: router: %w", i, err)
		}
		first, _ := svc.firstProbeAfter(broke, 2*o.Interval)
		withdraw = append(withdraw, measure(broke, removed, fib, first.Sub(broke)+time.Duration(o.Fall-1)*o.FastInterval))
		time.Sleep(time.Second)
		lostW = append(lostW, ld.Lost(broke.Add(-time.Second), fib.Add(500*time.Millisecond)))

		drain(addrs)
		drain(routes)
		repaired := svc.set(false)
		added, err := waitEvent(addrs, lab.AnycastV4.String(), false, repaired, 10*time.Second)
		if err != nil {
			return fmt.Errorf("trial %d restore: %w", i, err)
		}
		fib, err = waitEvent(routes, anycast, false, added, 15*time.Second)
		if err != nil {
			return fmt.Errorf("trial %d restore: router: %w", i, err)
		}
		first, _ = svc.firstProbeAfter(repaired, 2*o.Interval)
		restore = append(restore, measure(repaired, added, fib, first.Sub(repaired)+time.Duration(o.Rise-1)*o.FastInterval))
		time.Sleep(time.Second)
		lostR = append(lostR, ld.Lost(repaired.Add(-500*time.Millisecond), fib.Add(500*time.Millisecond)))
		fmt.Printf("trial %2d: withdraw total %6s (floor %6s)  restore total %6s (floor %6s)  lost %d/%d\n", i+1,
			ms(withdraw[i].total), ms(withdraw[i].floor), ms(restore[i].total), ms(restore[i].floor), lostW[i], lostR[i])
	}
	fmt.Println()
	table("withdraw", withdraw, lostW)
	table("restore", restore, lostR)
	fmt.Println("\ndetection: service change → address change on the node; propagation: → router FIB change;")
	fmt.Println("floor: wait for the next probe + (fall−1 or rise−1) × fast_interval; overhead = total − floor;")
	fmt.Printf("lost: queries at %d/s from the router (ECMP over both nodes) refused or unanswered in the trial\n", qps)
	return nil
}

// drainTrials drains node 1, waits until its prefixes are gone (after
// drain_grace, with a last-resort interface), undrains it and waits until
// the router uses it again, trials times, counting the queries lost.
func drainTrials(a *lab.AnycastLab, binary string, trials int, ld *lab.QueryLoad) error {
	n1, n2 := a.Nodes[0], a.Nodes[1]
	cli := func(args ...string) error {
		out, err := exec.Command(binary, append(args, "--socket", n1.Socket())...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %v: %s", args, err, out)
		}
		return nil
	}
	total, lostTotal := 0, 0
	for i := 0; i < trials; i++ {
		start := time.Now()
		if err := cli("drain", "dns", "--reason", "bench"); err != nil {
			return err
		}
		if _, ok := lab.WaitFor(10*time.Second, func() bool {
			v4, _ := a.Routes()
			lo, lr := n1.NS.Has("lo", lab.AnycastV4), n1.NS.Has(lab.LastResortDev, lab.AnycastV4)
			return len(v4) == 1 && v4[0] == n2.RouterDev && !lo && !lr
		}); !ok {
			return fmt.Errorf("trial %d: node 1 never fully drained; log:\n%s", i, n1.Watchdog.Log())
		}
		drained := time.Since(start)
		if err := cli("undrain", "dns"); err != nil {
			return err
		}
		if _, ok := lab.WaitFor(10*time.Second, func() bool { v4, v6 := a.Routes(); return len(v4) == 2 && len(v6) == 2 }); !ok {
			return fmt.Errorf("trial %d: node 1 never returned", i)
		}
		time.Sleep(time.Second) // queries sent before this are answered or timed out
		end := time.Now().Add(-time.Second)
		lost, sent := ld.Lost(start, end), ld.Sent(start, end)
		total, lostTotal = total+sent, lostTotal+lost
		fmt.Printf("cycle %2d: drained in %6s; %d queries, %d lost\n", i+1, ms(drained), sent, lost)
	}
	fmt.Printf("\ndrain: %d cycles, %d queries, %d lost\n", trials, total, lostTotal)
	return nil
}

func measure(changed, addr, fib time.Time, floor time.Duration) sample {
	s := sample{detection: addr.Sub(changed), propagation: fib.Sub(addr), total: fib.Sub(changed), floor: floor}
	s.overhead = s.total - s.floor
	return s
}

func table(name string, samples []sample, lost []int) {
	fmt.Printf("%-9s %-12s %8s %8s %8s\n", name, "", "p50", "p90", "max")
	row := func(label string, get func(sample) time.Duration) {
		var d []time.Duration
		for _, s := range samples {
			d = append(d, get(s))
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		fmt.Printf("%-9s %-12s %8s %8s %8s\n", "", label, ms(pct(d, 50)), ms(pct(d, 90)), ms(d[len(d)-1]))
	}
	row("detection", func(s sample) time.Duration { return s.detection })
	row("propagation", func(s sample) time.Duration { return s.propagation })
	row("total", func(s sample) time.Duration { return s.total })
	row("floor", func(s sample) time.Duration { return s.floor })
	row("total−floor", func(s sample) time.Duration { return s.overhead })
	l := append([]int(nil), lost...)
	sort.Ints(l)
	fmt.Printf("%-9s %-12s %8d %8d %8d\n", "", "lost queries", l[(len(l)-1)*50/100], l[(len(l)-1)*90/100], l[len(l)-1])
}

func pct(sorted []time.Duration, p int) time.Duration { return sorted[(len(sorted)-1)*p/100] }

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}
