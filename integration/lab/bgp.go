package lab

import (
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
)

// The BGP lab's autonomous systems: the upstream router's, and the one all
// anycast nodes share (the usual anycast design: one origin AS).
const (
	UpstreamAS = 64500
	AnycastAS  = 64512
)

// linkAddrs6 are the /127 IPv6 addresses of the link between the router
// and node i in the BGP lab, for its IPv6 sessions.
func linkAddrs6(i int) (router, node string) {
	return fmt.Sprintf("2001:db8:ffff:%d::/127", i), fmt.Sprintf("2001:db8:ffff:%d::1/127", i)
}

// bgpPeer is one BGP session of a node or the router.
type bgpPeer struct {
	Addr     string
	AS       int
	V6       bool
	Fleet    bool // another anycast node: iBGP, its paths tagged no-advertise
	Upstream bool // a node's upstream: last resort prepended
}

// nodeBGPTemplate is docs/bgp.md's recipe for a node, with the lab's
// sessions: eBGP to the upstream, iBGP to every other node for the fleet
// view. Keep it the same as docs/bgp.md's.
var nodeBGPTemplate = template.Must(template.New("bgpd").Parse(`hostname {{.Host}}
ip prefix-list ANYCAST-V4 seq 5 permit 192.0.2.0/24 ge 32
ipv6 prefix-list ANYCAST-V6 seq 5 permit 2001:db8::/48 ge 128
bgp community-list standard LAST-RESORT seq 5 permit graceful-shutdown
!
route-map ANYCAST-V4 permit 10
 match ip address prefix-list ANYCAST-V4
 match interface {{.LastResort}}
 set community graceful-shutdown additive
route-map ANYCAST-V4 permit 20
 match ip address prefix-list ANYCAST-V4
!
route-map ANYCAST-V6 permit 10
 match ipv6 address prefix-list ANYCAST-V6
 match interface {{.LastResort}}
 set community graceful-shutdown additive
route-map ANYCAST-V6 permit 20
 match ipv6 address prefix-list ANYCAST-V6
!
route-map UPSTREAM-OUT permit 10
 match community LAST-RESORT
 set as-path prepend {{.AS}} {{.AS}} {{.AS}}
route-map UPSTREAM-OUT permit 20
!
route-map FLEET-IN permit 10
 set community no-advertise additive
!
router bgp {{.AS}}
 bgp router-id {{.RouterID}}
 no bgp ebgp-requires-policy
{{range .Peers}} neighbor {{.Addr}} remote-as {{.AS}}
 neighbor {{.Addr}} timers 1 3
 neighbor {{.Addr}} timers connect 1
{{end}} !
 address-family ipv4 unicast
  redistribute connected route-map ANYCAST-V4
{{range .Peers}}{{if .V6}}  no neighbor {{.Addr}} activate
{{else if .Upstream}}  neighbor {{.Addr}} route-map UPSTREAM-OUT out
{{else if .Fleet}}  neighbor {{.Addr}} route-map FLEET-IN in
{{end}}{{end}} exit-address-family
 !
 address-family ipv6 unicast
  redistribute connected route-map ANYCAST-V6
{{range .Peers}}{{if .V6}}  neighbor {{.Addr}} activate
{{if .Upstream}}  neighbor {{.Addr}} route-map UPSTREAM-OUT out
{{else if .Fleet}}  neighbor {{.Addr}} route-map FLEET-IN in
{{end}}{{end}}{{end}} exit-address-family
!
`))

// routerBGPTemplate is the upstream: it spreads traffic over every node
// with the shortest AS path (maximum-paths).
var routerBGPTemplate = template.Must(template.New("bgpd").Parse(`hostname {{.Host}}
router bgp {{.AS}}
 bgp router-id {{.RouterID}}
 no bgp ebgp-requires-policy
{{range .Peers}} neighbor {{.Addr}} remote-as {{.AS}}
 neighbor {{.Addr}} timers 1 3
 neighbor {{.Addr}} timers connect 1
{{end}} !
 address-family ipv4 unicast
  maximum-paths 64
{{range .Peers}}{{if .V6}}  no neighbor {{.Addr}} activate
{{end}}{{end}} exit-address-family
 !
 address-family ipv6 unicast
  maximum-paths 64
{{range .Peers}}{{if .V6}}  neighbor {{.Addr}} activate
{{end}}{{end}} exit-address-family
!
`))

type bgpConfig struct {
	Host, RouterID, LastResort string
	AS                         int
	Peers                      []bgpPeer
}

// NodeBGPFiles renders docs/bgp.md's recipe for a node (router ID, AS
// 64512, the last-resort interface) with one upstream session to
// 198.51.100.0, for a test that needs the recipe's bgpd.conf alone.
func NodeBGPFiles(host, routerID string) (map[string]string, error) {
	return bgpConfig{Host: host, RouterID: routerID, LastResort: LastResortDev, AS: AnycastAS,
		Peers: []bgpPeer{{Addr: "198.51.100.0", AS: UpstreamAS, Upstream: true}}}.render(nodeBGPTemplate)
}

func (c bgpConfig) render(t *template.Template) (map[string]string, error) {
	var b strings.Builder
	if err := t.Execute(&b, c); err != nil {
		return nil, err
	}
	return map[string]string{"bgpd.conf": b.String()}, nil
}

// nodeBGPPeers are node i's sessions among n nodes: the upstream (IPv4 and
// IPv6) and every other node's link addresses.
func nodeBGPPeers(i, n int) []bgpPeer {
	r4, _ := linkAddrs(1, i)
	r6, _ := linkAddrs6(i)
	peers := []bgpPeer{{Addr: hostOf(r4), AS: UpstreamAS, Upstream: true}, {Addr: hostOf(r6), AS: UpstreamAS, V6: true, Upstream: true}}
	for o := 1; o <= n; o++ {
		if o == i {
			continue
		}
		_, n4 := linkAddrs(1, o)
		_, n6 := linkAddrs6(o)
		peers = append(peers, bgpPeer{Addr: hostOf(n4), AS: AnycastAS, Fleet: true}, bgpPeer{Addr: hostOf(n6), AS: AnycastAS, V6: true, Fleet: true})
	}
	return peers
}

func routerBGPPeers(n int) []bgpPeer {
	var peers []bgpPeer
	for i := 1; i <= n; i++ {
		_, n4 := linkAddrs(1, i)
		_, n6 := linkAddrs6(i)
		peers = append(peers, bgpPeer{Addr: hostOf(n4), AS: AnycastAS}, bgpPeer{Addr: hostOf(n6), AS: AnycastAS, V6: true})
	}
	return peers
}

func hostOf(cidr string) string { return strings.SplitN(cidr, "/", 2)[0] }

// ShutSessions shuts down (or brings back) every BGP session of node n at
// its peers, the upstream's and the other nodes', as an operator's
// `neighbor … shutdown` or a failed peer would: n's bgpd then has none
// established.
func (a *AnycastLab) ShutSessions(n *Node, shut bool) error {
	no := ""
	if !shut {
		no = "no "
	}
	_, n4 := linkAddrs(1, n.Index)
	_, n6 := linkAddrs6(n.Index)
	type peer struct {
		frr *FRR
		as  int
	}
	peers := []peer{{a.Router.FRR, UpstreamAS}}
	for _, o := range a.Nodes {
		if o != n {
			peers = append(peers, peer{o.FRR, AnycastAS})
		}
	}
	for _, p := range peers {
		if out, err := p.frr.Vtysh("configure terminal", fmt.Sprintf("router bgp %d", p.as),
			no+"neighbor "+hostOf(n4)+" shutdown", no+"neighbor "+hostOf(n6)+" shutdown"); err != nil {
			return fmt.Errorf("vtysh in %s: %w: %s", p.frr.ns.Name, err, out)
		}
	}
	return nil
}

// setUpBGPLinks gives node i's link IPv6 addresses and routes to the other
// nodes' link addresses through the router, for the iBGP sessions.
func (a *AnycastLab) setUpBGPLinks(i int, node *Namespace, routerDev, nodeDev string) error {
	r6, n6 := linkAddrs6(i)
	r4, _ := linkAddrs(1, i)
	for _, argv := range [][]string{
		{"ip", "addr", "add", r6, "dev", routerDev, "nodad"},
	} {
		if _, err := a.Router.Run(argv...); err != nil {
			return err
		}
	}
	for _, argv := range [][]string{
		{"ip", "addr", "add", n6, "dev", nodeDev, "nodad"},
		{"ip", "route", "add", "198.51.100.0/25", "via", hostOf(r4)},
		{"ip", "-6", "route", "add", "2001:db8:ffff::/48", "via", hostOf(r6)},
	} {
		if _, err := node.Run(argv...); err != nil {
			return err
		}
	}
	return nil
}

// WaitEstablished waits until the router has every BGP session to every
// node established, IPv4 and IPv6.
func (a *AnycastLab) WaitEstablished(timeout time.Duration) error {
	want := len(a.Nodes)
	var last string
	if _, ok := WaitFor(timeout, func() bool {
		for _, fam := range frr.Families() {
			afi := fam.AFI()
			out, err := a.Router.FRR.Vtysh("show bgp " + afi + " unicast summary json")
			if err != nil {
				last = err.Error()
				return false
			}
			b, err := frr.ParseBGPSummary([]byte(out))
			if err != nil || b.Established != want {
				last = fmt.Sprintf("%s: %d of %d sessions established (%v)", afi, b.Established, want, err)
				return false
			}
		}
		return true
	}); !ok {
		out, _ := a.Router.FRR.Vtysh("show bgp summary")
		return fmt.Errorf("router %s: BGP sessions not established in %s: %s\n%s\nrouter bgpd log:\n%s", a.Router.Name, timeout, last, out, a.Router.FRR.Daemons["bgpd"].Log())
	}
	return nil
}
