package lab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
)

// The anycast lab's addresses, all from the documentation ranges.
var (
	AnycastV4 = netip.MustParsePrefix("192.0.2.53/32")
	AnycastV6 = netip.MustParsePrefix("2001:db8::53/128")
)

// AnycastOptions shape the lab.
type AnycastOptions struct {
	Binary       string // anycast-watchdog
	Nodes        int    // default 2
	Interval     time.Duration
	FastInterval time.Duration
	Rise, Fall   int
	// Uncovered lists nodes (1-based) whose FRR config does not cover
	// the anycast prefixes.
	Uncovered   []int
	MinArrival0 bool // `timers lsa min-arrival 0` on every router
	// LastResort gives every node a last-resort interface (LastResortDev,
	// an ifb: these test kernels have no dummy) in OSPF at cost 65535.
	LastResort bool
	// SPFHold is every router's initial SPF hold in ms; 0: the recipe's 10.
	SPFHold int
	// Routers is how many routers every node links to; default 1.
	Routers int
	// BGP runs the lab on BGP instead of OSPF: the router is an upstream
	// in AS 64500 peering eBGP with every node (IPv4 and IPv6 sessions),
	// the nodes share AS 64512 and peer iBGP with each other, each with
	// docs/bgp.md's recipe. One router only; it implies LastResort.
	BGP bool
	// Damping is every node's damping block (WatchdogConfig.Damping); ""
	// leaves the daemon's defaults.
	Damping string
}

// LastResortDev is the nodes' last-resort interface, the daemon's default.
const LastResortDev = "anycast-lr"

// AnycastLab is one or more routers and anycast nodes, each node on a
// point-to-point link to every router, each node with FRR, a DNS server
// answering on the anycast addresses and on 127.0.0.1, and anycast-watchdog.
type AnycastLab struct {
	*Lab
	Opts    AnycastOptions
	Routers []*Router
	// Router is Routers[0], the only one unless Opts.Routers > 1.
	Router *Router
	Nodes  []*Node
}

// Router is a namespace that routes between the nodes, with FRR. Router j
// (1-based) has 203.0.113.(255-j) on lo as its router-id.
type Router struct {
	*Namespace
	FRR *FRR
}

// Node is one anycast host.
type Node struct {
	Index    int
	NS       *Namespace
	FRR      *FRR
	DNS      *Process
	Watchdog *Process
	// RouterDev is every router's interface toward this node (the same
	// name in each router's namespace).
	RouterDev string
	Config    string // the watchdog's configuration file
	lab       *AnycastLab
}

// linkAddrs are the /31 addresses of the link between router j and node i
// (both 1-based): router j's links are in its own 128-address half of
// 198.51.100.0/24, so up to 64 nodes and 2 routers fit.
func linkAddrs(j, i int) (router, node string) {
	base := 128*(j-1) + 2*(i-1)
	return fmt.Sprintf("198.51.100.%d/31", base), fmt.Sprintf("198.51.100.%d/31", base+1)
}

// nodeDev is node i's interface toward router j: n<i>-r, n<i>-r2, …
func nodeDev(j, i int) string {
	if j == 1 {
		return fmt.Sprintf("n%d-r", i)
	}
	return fmt.Sprintf("n%d-r%d", i, j)
}

// NewAnycastLab builds the topology and starts FRR and the DNS servers;
// the watchdogs are started by the caller (StartWatchdog). prefix names the
// namespaces: <prefix>-r, <prefix>-n1, …
func (l *Lab) NewAnycastLab(prefix string, o AnycastOptions) (*AnycastLab, error) {
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	if o.Routers == 0 {
		o.Routers = 1
	}
	if o.Nodes > 64 || o.Routers > 2 {
		return nil, fmt.Errorf("the lab's addresses fit 64 nodes and 2 routers, not %d and %d", o.Nodes, o.Routers)
	}
	if o.BGP {
		if o.Routers > 1 {
			return nil, fmt.Errorf("the BGP lab has one upstream router, not %d", o.Routers)
		}
		o.LastResort = true
	}
	a := &AnycastLab{Lab: l, Opts: o}
	for j := 1; j <= o.Routers; j++ {
		name := prefix + "-r"
		if j > 1 {
			name = fmt.Sprintf("%s-r%d", prefix, j)
		}
		ns, err := l.AddNamespace(name)
		if err != nil {
			return nil, err
		}
		// Forward, and hash ECMP flows on ports too, so that queries from
		// one client (each from a new port) spread over the nodes.
		for _, k := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
			"net.ipv4.fib_multipath_hash_policy=1", "net.ipv6.fib_multipath_hash_policy=1"} {
			if _, err := ns.Run("sysctl", "-qw", k); err != nil {
				return nil, err
			}
		}
		if _, err := ns.Run("ip", "addr", "add", RouterAddr(j)+"/32", "dev", "lo"); err != nil {
			return nil, err
		}
		a.Routers = append(a.Routers, &Router{Namespace: ns})
	}
	a.Router = a.Routers[0]
	routerIfs := make([][]string, o.Routers)
	for i := 1; i <= o.Nodes; i++ {
		ns, err := l.AddNamespace(fmt.Sprintf("%s-n%d", prefix, i))
		if err != nil {
			return nil, err
		}
		rdev := fmt.Sprintf("r-n%d", i)
		var nodeIfs []string
		for j, r := range a.Routers {
			raddr, naddr := linkAddrs(j+1, i)
			if err := l.Link(r.Namespace, rdev, raddr, ns, nodeDev(j+1, i), naddr); err != nil {
				return nil, err
			}
			routerIfs[j] = append(routerIfs[j], rdev)
			nodeIfs = append(nodeIfs, nodeDev(j+1, i))
		}
		if o.BGP {
			if err := a.setUpBGPLinks(i, ns, rdev, nodeDev(1, i)); err != nil {
				return nil, err
			}
		}
		rid := routerID(i)
		if _, err := ns.Run("ip", "addr", "add", rid+"/32", "dev", "lo"); err != nil {
			return nil, err
		}
		covered := !slices.Contains(o.Uncovered, i)
		networks := []string{"198.51.100.0/24", "203.0.113.0/24"}
		if covered {
			networks = append(networks, "192.0.2.0/24")
		}
		lr := ""
		if o.LastResort {
			lr = LastResortDev
			for _, argv := range [][]string{{"ip", "link", "add", lr, "type", "ifb"}, {"ip", "link", "set", lr, "up"}} {
				if _, err := ns.Run(argv...); err != nil {
					return nil, err
				}
			}
		}
		var f *FRR
		if o.BGP {
			files, ferr := bgpConfig{Host: ns.Name, RouterID: rid, LastResort: lr, AS: AnycastAS, Peers: nodeBGPPeers(i, o.Nodes)}.render(nodeBGPTemplate)
			if ferr != nil {
				return nil, ferr
			}
			f, err = ns.StartFRRFiles(files)
		} else {
			f, err = ns.StartFRR(OSPFConfig{RouterID: rid, Interfaces: nodeIfs, Networks: networks,
				LoInOSPF6: covered, MinArrival0: o.MinArrival0, LastResort: lr, SPFHold: o.SPFHold})
		}
		if err != nil {
			return nil, err
		}
		n := &Node{Index: i, NS: ns, FRR: f, RouterDev: rdev, lab: a, Config: filepath.Join(l.Dir, ns.Name+".yaml")}
		if err := n.StartDNS(); err != nil {
			return nil, err
		}
		a.Nodes = append(a.Nodes, n)
	}
	if o.BGP {
		files, err := bgpConfig{Host: a.Router.Name, RouterID: RouterAddr(1), AS: UpstreamAS, Peers: routerBGPPeers(o.Nodes)}.render(routerBGPTemplate)
		if err != nil {
			return nil, err
		}
		if a.Router.FRR, err = a.Router.StartFRRFiles(files); err != nil {
			return nil, err
		}
		return a, nil
	}
	for j, r := range a.Routers {
		var err error
		if r.FRR, err = r.StartFRR(OSPFConfig{RouterID: RouterAddr(j + 1), Interfaces: routerIfs[j],
			Networks: []string{"198.51.100.0/24", "203.0.113.0/24"}, MinArrival0: o.MinArrival0, SPFHold: o.SPFHold}); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// RouterAddr is router j's (1-based) router-id and loopback address.
func RouterAddr(j int) string { return fmt.Sprintf("203.0.113.%d", 255-j) }

// WaitAdjacent waits until every router has a full adjacency to every
// node (it routes to every node's router-id over its direct link).
func (a *AnycastLab) WaitAdjacent(timeout time.Duration) error {
	if a.Opts.BGP {
		return a.WaitEstablished(timeout)
	}
	deadline := time.Now().Add(timeout)
	for _, r := range a.Routers {
		for _, n := range a.Nodes {
			rid := netip.MustParsePrefix(routerID(n.Index) + "/32")
			if _, ok := WaitFor(time.Until(deadline), func() bool { return slices.Contains(r.NextHops(rid), n.RouterDev) }); !ok {
				out, _ := r.FRR.Vtysh("show ip ospf neighbor")
				return fmt.Errorf("router %s never learned node %d's router-id over its link; neighbors:\n%s\nrouter ospfd log:\n%s\nnode ospfd log:\n%s",
					r.Name, n.Index, out, r.FRR.Daemons["ospfd"].Log(), n.FRR.Daemons["ospfd"].Log())
			}
		}
	}
	return nil
}

// StartDNS starts the node's DNS server: health.example. answers
// 198.51.100.99 (what the watchdog checks), whoami.example. answers the
// node's router-id (which node a client reached). It binds the wildcard
// address and answers on the listed ones, as a DNS server in front of an
// anycast address should: with a socket per address (--bind-dynamic)
// queries are lost while the address moves between interfaces
// (docs/performance.md, "Drains").
func (n *Node) StartDNS() error {
	p, err := n.NS.Start("dnsmasq", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
		"--no-hosts", "--listen-address=127.0.0.1", "--listen-address="+AnycastV4.Addr().String(),
		"--listen-address="+AnycastV6.Addr().String(), "--port=53", "--address=/health.example/198.51.100.99",
		fmt.Sprintf("--address=/whoami.example/203.0.113.%d", n.Index), "--user=root", "--group=root", "--pid-file", "--log-facility=-")
	if err != nil {
		return err
	}
	n.DNS = p
	if _, ok := WaitFor(3*time.Second, func() bool {
		_, err := n.NS.Query("127.0.0.1:53", "health.example.", 200*time.Millisecond)
		return err == nil
	}); !ok {
		return fmt.Errorf("dnsmasq in %s does not answer; log:\n%s", n.NS.Name, p.Log())
	}
	return nil
}

// WatchdogConfig is the node's standard configuration, for a test to
// change and Write to n.Config.
func (n *Node) WatchdogConfig() WatchdogConfig {
	o := n.lab.Opts
	return WatchdogConfig{OnExit: "keep", Pathspace: n.NS.Name, Verify: true, Dir: n.lab.Dir, Name: n.NS.Name,
		Interval: o.Interval, FastInterval: o.FastInterval, Rise: o.Rise, Fall: o.Fall, Damping: o.Damping}
}

// WriteConfig writes the standard configuration with on_exit set.
func (n *Node) WriteConfig(onExit string) error {
	c := n.WatchdogConfig()
	c.OnExit = onExit
	return c.Write(n.Config)
}

// StartWatchdog starts anycast-watchdog in the node (writing its config
// first if there is none).
func (n *Node) StartWatchdog() error { return n.StartWatchdogVia() }

// StartWatchdogVia is StartWatchdog with the daemon started through a
// program that execs it (env PATH=…, setpriv …), so the PID stays its own.
func (n *Node) StartWatchdogVia(wrapper ...string) error {
	if _, err := os.Stat(n.Config); err != nil {
		if err := n.WriteConfig("keep"); err != nil {
			return err
		}
	}
	argv := append(append([]string{}, wrapper...), n.lab.Opts.Binary, "run", "--config", n.Config)
	p, err := n.NS.Start("anycast-watchdog", argv...)
	if err != nil {
		return err
	}
	n.Watchdog = p
	return nil
}

// routerID is node i's router-id, also the address on its lo.
func routerID(i int) string { return fmt.Sprintf("203.0.113.%d", i) }

// RoutesVia reports whether the router routes p via exactly the devices
// want. An extra IPv6 next hop also counts as gone when the router's own
// OSPFv3 database shows its node withdrew p; such next hops are returned as
// stale. ospf6d (8.4.4 and 10.3) sometimes keeps one for a minute and more
// (docs/frr.md, "Known problem: a stale OSPFv3 next hop"): the node did withdraw.
func (a *AnycastLab) RoutesVia(p netip.Prefix, want []string) (ok bool, stale []string) {
	got := a.Router.NextHops(p)
	if slices.Equal(got, want) {
		return true, nil
	}
	extra := slices.DeleteFunc(slices.Clone(got), func(dev string) bool { return slices.Contains(want, dev) })
	if !p.Addr().Is6() || a.Opts.BGP || len(extra) == 0 || len(got)-len(extra) != len(want) {
		return false, nil // IPv4, or one of want is missing
	}
	for _, n := range a.Nodes {
		if slices.Contains(extra, n.RouterDev) && a.Router.InOSPF6(n, p) {
			return false, nil
		}
	}
	return true, extra
}

// InOSPF6 reports whether the router's OSPFv3 database holds p in an
// Intra-Area-Prefix LSA of node n at a normal metric (below the lab's
// last-resort cost, 65535): a next hop to n is then no stale one. When
// vtysh cannot tell, it says yes.
func (r *Router) InOSPF6(n *Node, p netip.Prefix) bool {
	out, err := r.FRR.Vtysh("show ipv6 ospf6 json", "show ipv6 ospf6 database intra-prefix detail json")
	if err != nil {
		return true
	}
	db, err := frr.ParseOSPF6LSDB([]byte(out))
	return err != nil || slices.ContainsFunc(db.Prefixes[p], func(a frr.Advertiser) bool {
		return a.RouterID == routerID(n.Index) && a.Metric < lastResortCost
	})
}

// lastResortCost is the cost of the nodes' last-resort interface.
const lastResortCost = 65535

// Status is `anycast-watchdog status` on the node, as an operator reads it.
func (n *Node) Status() (string, error) {
	out, err := exec.Command(n.lab.Opts.Binary, "status", "--socket", n.Socket()).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("status: %w: %s", err, out)
	}
	return string(out), nil
}

// Loopback is the node's unicast address (its router-id, on lo), which
// every router reaches.
func (n *Node) Loopback() string { return routerID(n.Index) }

// Socket is the watchdog's control socket.
func (n *Node) Socket() string { return filepath.Join(n.lab.Dir, n.NS.Name+".sock") }

// Has reports whether both anycast prefixes are on the node's loopback.
func (n *Node) Has() (v4, v6 bool) {
	return n.NS.Has("lo", AnycastV4), n.NS.Has("lo", AnycastV6)
}

// Routes returns the router's next-hop devices for the anycast /32 and /128.
func (a *AnycastLab) Routes() (v4, v6 []string) {
	return a.Router.NextHops(AnycastV4), a.Router.NextHops(AnycastV6)
}
