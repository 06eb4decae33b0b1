package lab

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

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
}

// LastResortDev is the nodes' last-resort interface, the daemon's default.
const LastResortDev = "anycast-lr"

// AnycastLab is a router and anycast nodes on point-to-point links, each
// node with FRR, a DNS server answering on the anycast addresses and on
// 127.0.0.1, and anycast-watchdog.
type AnycastLab struct {
	*Lab
	Opts      AnycastOptions
	Router    *Namespace
	RouterFRR *FRR
	Nodes     []*Node
}

// Node is one anycast host.
type Node struct {
	Index     int
	NS        *Namespace
	FRR       *FRR
	DNS       *Process
	Watchdog  *Process
	RouterDev string // the router's interface toward this node
	Config    string // the watchdog's configuration file
	lab       *AnycastLab
}

// NewAnycastLab builds the topology and starts FRR and the DNS servers;
// the watchdogs are started by the caller (StartWatchdog). prefix names the
// namespaces: <prefix>-r, <prefix>-n1, …
func (l *Lab) NewAnycastLab(prefix string, o AnycastOptions) (*AnycastLab, error) {
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	a := &AnycastLab{Lab: l, Opts: o}
	var err error
	if a.Router, err = l.AddNamespace(prefix + "-r"); err != nil {
		return nil, err
	}
	// Forward, and hash ECMP flows on ports too, so that queries from one
	// client (each from a new port) spread over the nodes.
	for _, k := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		"net.ipv4.fib_multipath_hash_policy=1", "net.ipv6.fib_multipath_hash_policy=1"} {
		if _, err := a.Router.Run("sysctl", "-qw", k); err != nil {
			return nil, err
		}
	}
	if _, err := a.Router.Run("ip", "addr", "add", "203.0.113.254/32", "dev", "lo"); err != nil {
		return nil, err
	}
	var routerIfs []string
	for i := 1; i <= o.Nodes; i++ {
		ns, err := l.AddNamespace(fmt.Sprintf("%s-n%d", prefix, i))
		if err != nil {
			return nil, err
		}
		rdev, ndev := fmt.Sprintf("r-n%d", i), fmt.Sprintf("n%d-r", i)
		if err := l.Link(a.Router, rdev, fmt.Sprintf("198.51.100.%d/31", 2*(i-1)), ns, ndev, fmt.Sprintf("198.51.100.%d/31", 2*(i-1)+1)); err != nil {
			return nil, err
		}
		routerIfs = append(routerIfs, rdev)
		rid := routerID(i)
		if _, err := ns.Run("ip", "addr", "add", rid+"/32", "dev", "lo"); err != nil {
			return nil, err
		}
		covered := true
		for _, u := range o.Uncovered {
			covered = covered && u != i
		}
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
		f, err := ns.StartFRR(OSPFConfig{RouterID: rid, Interfaces: []string{ndev}, Networks: networks,
			LoInOSPF6: covered, MinArrival0: o.MinArrival0, LastResort: lr, SPFHold: o.SPFHold})
		if err != nil {
			return nil, err
		}
		n := &Node{Index: i, NS: ns, FRR: f, RouterDev: rdev, lab: a, Config: filepath.Join(l.Dir, ns.Name+".yaml")}
		if err := n.StartDNS(); err != nil {
			return nil, err
		}
		a.Nodes = append(a.Nodes, n)
	}
	if a.RouterFRR, err = a.Router.StartFRR(OSPFConfig{RouterID: "203.0.113.254", Interfaces: routerIfs,
		Networks: []string{"198.51.100.0/24", "203.0.113.0/24"}, MinArrival0: o.MinArrival0, SPFHold: o.SPFHold}); err != nil {
		return nil, err
	}
	return a, nil
}

// WaitAdjacent waits until the router has a full adjacency to every node
// in OSPF and OSPFv3 (it reaches every node's router-id).
func (a *AnycastLab) WaitAdjacent(timeout time.Duration) error {
	for _, n := range a.Nodes {
		rid := netip.MustParsePrefix(routerID(n.Index) + "/32")
		if _, ok := WaitFor(timeout, func() bool { return len(a.Router.NextHops(rid)) > 0 }); !ok {
			out, _ := a.RouterFRR.Vtysh("show ip ospf neighbor")
			return fmt.Errorf("router never learned node %d's router-id; neighbors:\n%s\nrouter ospfd log:\n%s\nnode ospfd log:\n%s",
				n.Index, out, a.RouterFRR.Daemons["ospfd"].Log(), n.FRR.Daemons["ospfd"].Log())
		}
	}
	return nil
}

// StartDNS starts the node's DNS server: health.example. answers
// 198.51.100.99 (what the watchdog checks), whoami.example. answers the
// node's router-id (which node a client reached).
func (n *Node) StartDNS() error {
	p, err := n.NS.Start("dnsmasq", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
		"--no-hosts", "--bind-dynamic", "--listen-address=127.0.0.1", "--listen-address="+AnycastV4.Addr().String(),
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
		Interval: o.Interval, FastInterval: o.FastInterval, Rise: o.Rise, Fall: o.Fall}
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
// stale. FRR 8.4.4's ospf6d sometimes keeps one for a minute and more
// (README, "Known problem: a stale OSPFv3 next hop"): the node did withdraw.
func (a *AnycastLab) RoutesVia(p netip.Prefix, want []string) (ok bool, stale []string) {
	got := a.Router.NextHops(p)
	if slices.Equal(got, want) {
		return true, nil
	}
	extra := slices.DeleteFunc(slices.Clone(got), func(dev string) bool { return slices.Contains(want, dev) })
	if !p.Addr().Is6() || len(extra) == 0 || len(got)-len(extra) != len(want) {
		return false, nil // IPv4, or one of want is missing
	}
	for _, n := range a.Nodes {
		if slices.Contains(extra, n.RouterDev) && a.inRouterOSPF6(n, p) {
			return false, nil
		}
	}
	return true, extra
}

// inRouterOSPF6 reports whether the router's OSPFv3 database holds p in an
// Intra-Area-Prefix LSA of node n; when vtysh cannot tell, it says yes.
func (a *AnycastLab) inRouterOSPF6(n *Node, p netip.Prefix) bool {
	out, err := a.RouterFRR.Vtysh("show ipv6 ospf6 json", "show ipv6 ospf6 database intra-prefix detail json")
	if err != nil {
		return true
	}
	db, err := frr.ParseOSPF6LSDB([]byte(out))
	return err != nil || slices.ContainsFunc(db.Prefixes[p], func(a frr.Advertiser) bool { return a.RouterID == routerID(n.Index) })
}

// Status is `anycast-watchdog status` on the node, as an operator reads it.
func (n *Node) Status() (string, error) {
	out, err := exec.Command(n.lab.Opts.Binary, "status", "--socket", n.Socket()).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("status: %w: %s", err, out)
	}
	return string(out), nil
}

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

// Query asks server a question of type A from inside ns and returns the
// answer's data.
func (ns *Namespace) Query(server, name string, timeout time.Duration) (answer string, err error) {
	if derr := ns.Do(func() {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		var r *dns.Msg
		if r, _, err = (&dns.Client{Timeout: timeout}).Exchange(m, server); err != nil {
			return
		}
		var answers []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				answers = append(answers, a.A.String())
			}
		}
		if r.Rcode != dns.RcodeSuccess || len(answers) == 0 {
			err = fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(answers))
			return
		}
		answer = strings.Join(answers, ",")
	}); derr != nil {
		return "", derr
	}
	return answer, err
}

// ListenPacket opens a packet socket inside ns; the returned conn may be
// used from any goroutine.
func (ns *Namespace) ListenPacket(network, addr string) (pc net.PacketConn, err error) {
	if derr := ns.Do(func() { pc, err = net.ListenPacket(network, addr) }); derr != nil {
		return nil, derr
	}
	return pc, err
}

// Listen opens a listening socket inside ns; it may be used from any
// goroutine.
func (ns *Namespace) Listen(network, addr string) (l net.Listener, err error) {
	if derr := ns.Do(func() { l, err = net.Listen(network, addr) }); derr != nil {
		return nil, derr
	}
	return l, err
}

// Get fetches http://addr/path from inside ns with a plain HTTP/1.0
// request (the connection is made in ns, and closed after the answer).
func (ns *Namespace) Get(addr, path string) (body string, err error) {
	var conn net.Conn
	if derr := ns.Do(func() { conn, err = net.DialTimeout("tcp", addr, 2*time.Second) }); derr != nil {
		return "", derr
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	head, body, ok := strings.Cut(string(b), "\r\n\r\n")
	if !ok || !strings.Contains(head, " 200 ") {
		return "", fmt.Errorf("GET %s%s: %.80q", addr, path, head)
	}
	return body, nil
}

// Do runs fn on an OS thread moved into ns's network namespace, so that the
// sockets fn opens belong to ns (and stay there when used elsewhere). The
// thread is discarded afterwards.
func (ns *Namespace) Do(fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := ns.enter(); err != nil {
			errc <- err
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

// enter moves the calling (locked) thread into ns's network namespace.
func (ns *Namespace) enter() error {
	f, err := os.Open(filepath.Join("/run/netns", ns.Name))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", ns.Name, err)
	}
	return nil
}
