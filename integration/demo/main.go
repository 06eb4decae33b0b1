// Command demo shows what anycast-watchdog does, on a lab it builds in
// network namespaces: a router and two anycast DNS nodes, each node with
// FRR (ospfd, ospf6d), a last-resort interface in OSPF at cost 65535, a
// DNS server on 192.0.2.53 and 2001:db8::53, and anycast-watchdog. It breaks
// node 1's DNS server and shows the route withdrawn (through last resort)
// and the traffic moving to node 2; breaks node 2 too and shows the address
// kept reachable at last resort on node 2 rather than gone; repairs node 1
// and shows the traffic return to it alone; then repairs node 2, prints the measured
// times and cleans up, also on Ctrl-C. With -protocol bgp the same story
// runs on BGP: the router is an upstream peering eBGP with the nodes, which
// peer iBGP with each other. Run it as root: make demo (PROTOCOL=bgp).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
)

const (
	interval = 500 * time.Millisecond
	fast     = 100 * time.Millisecond
	rise     = 3
	fall     = 2
)

// words are what differs in the telling between the two protocols.
type words struct {
	protocol, daemons, lastResort, seen string
}

var told = map[string]words{
	"ospf": {protocol: "OSPF", daemons: "zebra+ospfd+ospf6d",
		lastResort: "a last-resort interface (OSPF cost 65535)",
		seen:       "in its own OSPF database, another node advertising them at normal cost"},
	"bgp": {protocol: "BGP", daemons: "zebra+bgpd",
		lastResort: "a last-resort interface (its bgpd marks them graceful-shutdown and prepends the AS path toward the upstream)",
		seen:       "over iBGP, another node advertising them without the last-resort marking"},
}

func main() {
	binary := flag.String("binary", "./anycast-watchdog", "the anycast-watchdog binary to run")
	protocol := flag.String("protocol", "ospf", "ospf or bgp: the routing protocol of the lab")
	flag.Parse()
	w, ok := told[*protocol]
	if !ok {
		fmt.Fprintln(os.Stderr, "demo: -protocol is ospf or bgp")
		os.Exit(2)
	}
	if err := demo(*binary, w); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Printf("%s  "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func demo(binary string, w words) error {
	binary, err := filepath.Abs(binary)
	if err != nil {
		return err
	}
	if _, err := os.Stat(binary); err != nil {
		return fmt.Errorf("no anycast-watchdog binary (make build): %w", err)
	}
	l, cleanup, err := lab.NewTemp("aw-demo-")
	if err != nil {
		return err
	}
	defer func() {
		cleanup()
		say("cleaned up: namespaces deleted, every process the demo started stopped")
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Printf("anycast-watchdog demo: one router, two anycast DNS nodes, %s between them.\n", w.protocol)
	fmt.Println("Both nodes carry 192.0.2.53/32 and 2001:db8::53/128 on their loopback; FRR on each")
	fmt.Println("advertises them; the router sends each query to one of them. anycast-watchdog on each")
	fmt.Printf("node checks its DNS server every %s and withdraws the addresses after %d failures:\n", interval, fall)
	fmt.Printf("it moves them to %s\n", w.lastResort)
	fmt.Printf("and removes them once it sees, %s.\n", w.seen)
	fmt.Println()

	say("building the lab: namespaces, veths, %s on each, dnsmasq and a last-resort interface on each node", w.daemons)
	a, err := l.NewAnycastLab(fmt.Sprintf("awdemo%d", os.Getpid()%10000), lab.AnycastOptions{
		Binary: binary, Interval: interval, FastInterval: fast, Rise: rise, Fall: fall, MinArrival0: true, LastResort: true,
		BGP: w.protocol == "BGP"})
	if err != nil {
		return err
	}
	if err := a.WaitAdjacent(20 * time.Second); err != nil {
		return err
	}
	say("%s is up between the router and both nodes", w.protocol)
	for _, n := range a.Nodes {
		if err := n.StartWatchdog(); err != nil {
			return err
		}
	}
	say("started anycast-watchdog on both nodes (rise %d, fall %d)", rise, fall)

	routes := func() string {
		v4, v6 := a.Routes()
		return fmt.Sprintf("192.0.2.53 via %s; 2001:db8::53 via %s", names(a, v4), names(a, v6))
	}
	var everyNode []string // router devices towards the nodes
	for _, n := range a.Nodes {
		everyNode = append(everyNode, n.RouterDev)
	}
	waitRoutes := func(want []string, what string) (time.Duration, error) {
		var stale []string
		took, ok := lab.WaitForContext(ctx, 20*time.Second, func() bool {
			ok4, _ := a.RoutesVia(lab.AnycastV4, want)
			ok6, stale6 := a.RoutesVia(lab.AnycastV6, want)
			stale = stale6
			return ok4 && ok6
		})
		if ok && len(stale) > 0 {
			say("the router keeps 2001:db8::53 via %s although its OSPFv3 database shows that node withdrew it: a known FRR ospf6d problem, see docs/frr.md", names(a, stale))
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("interrupted")
		}
		if !ok {
			return 0, fmt.Errorf("%s did not happen; node 1's watchdog log:\n%s", what, a.Nodes[0].Watchdog.Log())
		}
		return took, nil
	}
	if _, err := waitRoutes(everyNode, "the first advertisement"); err != nil {
		return err
	}
	say("router: %s", routes())
	say("a DNS client on the router asks 192.0.2.53 'whoami.example' 20 times: %s", traffic(a))

	fmt.Println()
	n1, n2 := a.Nodes[0], a.Nodes[1]
	say("BREAKING node 1: stopping its DNS server (the host and its FRR stay up)")
	logFrom := len(n1.Watchdog.Log())
	broke := time.Now()
	n1.DNS.Stop(2 * time.Second)
	if _, err := waitRoutes(everyNode[1:], "the withdrawal"); err != nil {
		return err
	}
	withdrawn := time.Since(broke)
	say("router: %s  (%s after the failure: node 1 moved its addresses to last resort)", routes(), withdrawn.Round(time.Millisecond))
	say("20 queries again: %s", traffic(a))
	gone, _ := lab.WaitForContext(ctx, 10*time.Second, func() bool { return where(n1) == "neither interface" })
	say("node 1 removed them from last resort %s later, having seen node 2's advertisement at normal (%s)", gone.Round(time.Millisecond), w.protocol)
	say("node 1's watchdog said:")
	grep(n1.Watchdog.Log()[logFrom:], "service down", "added address", "removed address")

	fmt.Println()
	say("BREAKING node 2 as well: every node fails, as with a bad shared dependency")
	log2From := len(n2.Watchdog.Log())
	n2.DNS.Stop(2 * time.Second)
	if _, ok := lab.WaitForContext(ctx, 10*time.Second, func() bool { return strings.HasPrefix(where(n2), "last resort") }); !ok {
		return fmt.Errorf("node 2 never moved to last resort; its log:\n%s", n2.Watchdog.Log())
	}
	time.Sleep(2 * time.Second) // a few fleet reads: nobody removes the last advertisement
	say("router: %s  (node 2 holds the address at last resort: it stays reachable, nobody took it off the network)", routes())
	say("node 1 is at %s (it sees node 2 advertising it, at last resort), node 2 at %s", where(n1), where(n2))
	say("node 2's watchdog said:")
	grep(n2.Watchdog.Log()[log2From:], "service down", "added address", "removed address")
	showStatus(n2)

	fmt.Println()
	say("REPAIRING node 1: starting its DNS server again")
	logFrom, log2From = len(n1.Watchdog.Log()), len(n2.Watchdog.Log())
	repaired := time.Now()
	if err := n1.StartDNS(); err != nil {
		return err
	}
	if _, err := waitRoutes(everyNode[:1], "the restore"); err != nil {
		return err
	}
	restored := time.Since(repaired)
	say("router: %s  (%s after the repair: node 1 alone, at normal cost)", routes(), restored.Round(time.Millisecond))
	say("20 queries again: %s", traffic(a))
	gone, _ = lab.WaitForContext(ctx, 10*time.Second, func() bool { return where(n2) == "neither interface" })
	say("node 2 removed its addresses from last resort %s later", gone.Round(time.Millisecond))
	say("node 1's watchdog said:")
	grep(n1.Watchdog.Log()[logFrom:], "service up", "added address", "removed address")
	say("node 2's watchdog said:")
	grep(n2.Watchdog.Log()[log2From:], "removed address")

	fmt.Println()
	say("REPAIRING node 2")
	if err := n2.StartDNS(); err != nil {
		return err
	}
	if _, err := waitRoutes(everyNode, "node 2's restore"); err != nil {
		return err
	}
	say("router: %s", routes())
	say("20 queries again: %s", traffic(a))

	fmt.Println()
	fmt.Printf("measured: withdrawn from the router %s after the failure, restored %s after the repair\n",
		withdrawn.Round(time.Millisecond), restored.Round(time.Millisecond))
	fmt.Printf("worst case for this config: withdraw ≈ interval + (fall-1)×fast_interval = %s (+ check time + %s);\n",
		interval+(fall-1)*fast, propagation[w.protocol])
	fmt.Printf("                            restore  ≈ interval + (rise-1)×fast_interval = %s (+ %s)\n",
		interval+(rise-1)*fast, propagation[w.protocol])
	return nil
}

// propagation is what docs/performance.md measured from the address change to the
// router's table.
var propagation = map[string]string{"OSPF": "OSPF ~20 ms", "BGP": "BGP ~130 ms"}

// traffic sends 20 queries from the router and counts answers per node.
func traffic(a *lab.AnycastLab) string {
	count := map[string]int{}
	for i := 0; i < 20; i++ {
		ans, err := a.Router.Query("192.0.2.53:53", "whoami.example.", 500*time.Millisecond)
		switch {
		case err != nil:
			count["no answer"]++
		case ans == "203.0.113.1":
			count["node 1"]++
		case ans == "203.0.113.2":
			count["node 2"]++
		default:
			count[ans]++
		}
	}
	var parts []string
	for k, v := range count {
		parts = append(parts, fmt.Sprintf("%d answered by %s", v, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// where says where node n holds the anycast /32.
func where(n *lab.Node) string {
	switch {
	case n.NS.Has("lo", lab.AnycastV4):
		return "lo"
	case n.NS.Has(lab.LastResortDev, lab.AnycastV4):
		return "last resort (" + lab.LastResortDev + ")"
	}
	return "neither interface"
}

// showStatus prints the node's status table, as an operator would see it.
func showStatus(n *lab.Node) {
	out, err := n.Status()
	if err != nil {
		say("status: %v", err)
		return
	}
	say("anycast-watchdog status on node %d:", n.Index)
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Println("      " + line)
	}
}

func names(a *lab.AnycastLab, devs []string) string {
	if len(devs) == 0 {
		return "(no route)"
	}
	var out []string
	for _, d := range devs {
		for _, n := range a.Nodes {
			if n.RouterDev == d {
				out = append(out, fmt.Sprintf("node %d", n.Index))
			}
		}
	}
	return strings.Join(out, " + ")
}

// grep prints the log lines that contain any of the phrases, shortened.
func grep(log string, phrases ...string) {
	for _, line := range strings.Split(log, "\n") {
		for _, p := range phrases {
			if strings.Contains(line, p) {
				if i := strings.Index(line, "level="); i >= 0 {
					line = line[i:]
				}
				fmt.Println("      " + line)
				break
			}
		}
	}
}
