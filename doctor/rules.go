package doctor

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
)

// ospfFamily is one OSPF daemon as the rules see it.
type ospfFamily struct {
	fam            frr.Family
	daemon, router string // "ospfd", "router ospf"
	stmt           string // its router-id statement
}

// ospfFamilies are ospfd and ospf6d, in the order findings are listed.
var ospfFamilies = []ospfFamily{
	{frr.IPv4, frr.IPv4.IGPDaemon(), frr.IPv4.IGPRouter(), "ospf router-id"},
	{frr.IPv6, frr.IPv6.IGPDaemon(), frr.IPv6.IGPRouter(), "ospf6 router-id"},
}

// minArrivalMeasured is what the lab measured with the default min-arrival.
const minArrivalMeasured = "a restore right after a withdrawal reached the neighbouring router after 6.6–8.1 s instead of 14–22 ms"

// vtyshUsable: without vtysh nothing below can be checked, and the daemon
// cannot confirm anything either.
func vtyshUsable(f Facts) []Finding {
	if e := f.VtyshError; e != nil {
		fix := "apt-get install frr, or set frr.vtysh to the vtysh program"
		if e.Kind == frr.PermissionDenied {
			fix = "adduser anycast-watchdog frrvty   (the daemon's user; then restart the daemon)"
		}
		return []Finding{{Severity: Error, Check: "vtysh", Object: f.Vtysh, Message: "cannot talk to FRR: " + e.Error() +
			"; nothing is confirmed and the fleet view is unknown", Evidence: e.Err.Error(), Fix: fix}}
	}
	var out []Finding
	for _, name := range []string{"ospfd", "ospf6d", "bgpd"} {
		if d := f.Daemons[name]; d.Running && d.Error != "" {
			out = append(out, Finding{Severity: Warning, Check: "daemon-unreadable", Object: name,
				Message: "runs but could not be read; its rules were skipped", Evidence: d.Error})
		}
	}
	for _, fam := range frr.Families() {
		ps := f.family(fam)
		if len(ps) == 0 {
			continue
		}
		igp := fam.IGPDaemon()
		if f.Daemons[igp].Running || f.Daemons["bgpd"].Running {
			continue
		}
		out = append(out, Finding{Severity: Error, Check: "no-routing-daemon", Object: joinPrefixes(ps),
			Message:  igp + " and bgpd are not running: nothing advertises these prefixes",
			Evidence: igp + " is not running", Fix: "enable " + igp + " in /etc/frr/daemons and restart frr"})
	}
	return out
}

// notCovered: an address that no OSPF statement covers is never
// advertised, so its withdrawal withdraws nothing either.
func notCovered(f Facts) []Finding {
	var out []Finding
	if d, ok := f.daemon("ospfd"); ok && len(f.family(frr.IPv4)) > 0 {
		router, hasRouter := d.Config.Block("router ospf")
		iface, _ := d.Config.Interface(f.Interface)
		for _, p := range f.family(frr.IPv4) {
			if !hasRouter {
				out = append(out, Finding{Severity: Error, Check: "ospf-not-configured", Object: p.String(),
					Message: "ospfd runs without `router ospf`: nothing is advertised", Evidence: "no router ospf in ospfd's running-config",
					Fix: "router ospf\n network " + p.String() + " area 0"})
				continue
			}
			if _, ok := networkCovering(router, p); ok || iface.Has("ip ospf area") || router.Has("redistribute connected") {
				continue
			}
			out = append(out, Finding{Severity: Error, Check: "ospf-not-covered", Object: p.String(),
				Message:  "no network statement covers it and " + f.Interface + " has no `ip ospf area`: ospfd never advertises it, so the watchdog's withdrawal withdraws nothing",
				Evidence: evidence("router ospf", router.Statements("network"), "no network statement"),
				Fix:      "router ospf\n network " + p.String() + " area " + firstArea(router)})
		}
	}
	if d, ok := f.daemon("ospf6d"); ok && len(f.family(frr.IPv6)) > 0 {
		router, hasRouter := d.Config.Block("router ospf6")
		for _, p := range f.family(frr.IPv6) {
			if !hasRouter {
				out = append(out, Finding{Severity: Error, Check: "ospf6-not-configured", Object: p.String(),
					Message: "ospf6d runs without `router ospf6`: nothing is advertised", Evidence: "no router ospf6 in ospf6d's running-config",
					Fix: "router ospf6\n!\ninterface " + f.Interface + "\n ipv6 ospf6 area 0\n ipv6 ospf6 passive"})
				continue
			}
			if ospf6Area(d.Config, f.Interface) != "" || router.Has("redistribute connected") {
				continue
			}
			iface, _ := d.Config.Interface(f.Interface)
			out = append(out, Finding{Severity: Error, Check: "ospf6-not-covered", Object: p.String(),
				Message:  f.Interface + " is in no OSPFv3 area: ospf6d never advertises it, so the watchdog's withdrawal withdraws nothing",
				Evidence: evidence("interface "+f.Interface, iface.Statements("ipv6 ospf6"), "no ipv6 ospf6 line"),
				Fix:      "interface " + f.Interface + "\n ipv6 ospf6 area 0\n ipv6 ospf6 passive"})
		}
	}
	return out
}

// summarised: a summary swallows the host route, so a withdrawal changes
// nothing for the routers beyond it.
func summarised(f Facts) []Finding {
	var out []Finding
	for _, c := range ospfFamilies {
		d, ok := f.daemon(c.daemon)
		if !ok {
			continue
		}
		router, _ := d.Config.Block(c.router)
		for _, st := range router.Statements("area") {
			if len(st) < 4 || st[2] != "range" {
				continue
			}
			r, err := netip.ParsePrefix(st[3])
			if err != nil {
				continue
			}
			for _, p := range f.family(c.fam) {
				if r.Bits() < p.Bits() && r.Contains(p.Addr()) {
					out = append(out, Finding{Severity: Error, Check: "summary-range", Object: p.String(),
						Message:  "inside a summary configured here: routers beyond the area border see only " + r.String() + ", which stays while any node of the range is up, so a withdrawal there changes nothing and traffic goes to the border, not to the nearest node",
						Evidence: c.router + ": " + strings.Join(st, " "),
						Fix:      c.router + "\n no " + strings.Join(st, " ")})
				}
			}
		}
		for _, a := range d.Aggregates {
			for _, p := range f.family(c.fam) {
				if a.Prefix.Bits() >= p.Bits() || !a.Prefix.Contains(p.Addr()) || a.Prefix.Bits() == 0 {
					continue
				}
				sev, check, why := Error, "summary-lsa", "a summary LSA: routers beyond that border route to the border, not to the nearest node, and keep doing so when nodes withdraw"
				if a.Type == frr.External {
					sev, check, why = Warning, "external-lsa", "an external LSA (a redistributed aggregate): routers that lose every node's host route still send the traffic along it"
				}
				out = append(out, Finding{Severity: sev, Check: check, Object: p.String(),
					Message:  "covered by " + a.Prefix.String() + " that router " + a.AdvertisingRouter + " originates, " + why + "; the anycast prefix must never be summarised",
					Evidence: fmt.Sprintf("%s LSA %s from %s in %s's database", a.Type, a.Prefix, a.AdvertisingRouter, c.daemon),
					Fix:      "on router " + a.AdvertisingRouter + ": remove the range or redistribution that makes " + a.Prefix.String() + ", or exclude " + p.String() + " from it"})
			}
		}
	}
	return out
}

// routerID: nodes that share a router-id are one router to OSPF, and a
// router-id that is a managed address disappears with it.
func routerID(f Facts) []Finding {
	var out []Finding
	for _, c := range ospfFamilies {
		d, ok := f.daemon(c.daemon)
		if !ok || d.RouterID == "" {
			continue
		}
		id, err := netip.ParseAddr(d.RouterID)
		if err != nil {
			continue
		}
		ev := c.daemon + " router-id " + d.RouterID
		for _, p := range f.Managed {
			if p.Addr() == id {
				out = append(out, Finding{Severity: Error, Check: "router-id-anycast", Object: c.daemon,
					Message:  "its router-id is the anycast address " + p.String() + ": every node claims the same router, and OSPF treats their LSAs as one router's",
					Evidence: ev, Fix: c.router + "\n " + c.stmt + " <this node's own unicast loopback address>"})
			}
		}
		if f.AddressError == "" && !f.hasAddress(id) && !managedAddr(f.Managed, id) {
			out = append(out, Finding{Severity: Warning, Check: "router-id-foreign", Object: c.daemon,
				Message:  "its router-id is not an address of this node: another router may have it, and then the two are one router to OSPF",
				Evidence: ev + "; not on any interface", Fix: c.router + "\n " + c.stmt + " <this node's own unicast loopback address>"})
		}
	}
	return out
}

// notPassive: the anycast interface must never form adjacencies.
func notPassive(f Facts) []Finding {
	return passiveFindings(f, f.Interface, "interface-not-passive", "the anycast interface")
}

func passiveFindings(f Facts, dev, check, what string) []Finding {
	var out []Finding
	if d, ok := f.daemon("ospfd"); ok && len(f.family(frr.IPv4)) > 0 {
		router, _ := d.Config.Block("router ospf")
		iface, _ := d.Config.Interface(dev)
		if !iface.Has("ip ospf passive") && !router.Has("passive-interface default") && !router.Has("passive-interface "+dev) {
			out = append(out, Finding{Severity: Warning, Check: check, Object: dev,
				Message:  what + " is not passive in OSPF: ospfd sends hellos there and any host on it could become a neighbour",
				Evidence: evidence("interface "+dev, iface.Statements("ip ospf"), "no ip ospf passive"),
				Fix:      "interface " + dev + "\n ip ospf passive"})
		}
	}
	if d, ok := f.daemon("ospf6d"); ok && len(f.family(frr.IPv6)) > 0 && ospf6Area(d.Config, dev) != "" {
		iface, _ := d.Config.Interface(dev)
		if !iface.Has("ipv6 ospf6 passive") {
			out = append(out, Finding{Severity: Warning, Check: check, Object: dev,
				Message:  what + " is not passive in OSPFv3",
				Evidence: evidence("interface "+dev, iface.Statements("ipv6 ospf6"), "no ipv6 ospf6 passive"),
				Fix:      "interface " + dev + "\n ipv6 ospf6 passive"})
		}
	}
	return out
}

// minArrival: with the default, a router drops a new copy of an LSA that
// comes less than a second after the last, and the restore waits for a
// retransmission.
func minArrival(f Facts) []Finding {
	var out []Finding
	for _, c := range ospfFamilies {
		d, ok := f.daemon(c.daemon)
		router, has := d.Config.Block(c.router)
		if !ok || !has || len(f.family(c.fam)) == 0 {
			continue
		}
		set := router.Statements("timers lsa min-arrival")
		if len(set) > 0 {
			if ms, err := strconv.Atoi(set[0][len(set[0])-1]); err == nil && ms < 1000 {
				continue
			}
		}
		out = append(out, Finding{Severity: Warning, Check: "min-arrival-default", Object: c.daemon,
			Message: "`timers lsa min-arrival` is at its default (1000 ms): " + minArrivalMeasured +
				" (measured, FRR 8.4); it matters on every router of the area, since the receiver drops the copy",
			Evidence: evidence(c.router, set, "no timers lsa min-arrival"),
			Fix:      c.router + "\n timers lsa min-arrival 0   (on every router of the area)"})
	}
	return out
}

// lastResort: failing open needs the interface in the area, passive, and
// at a cost the fleet view counts as last resort.
func lastResort(f Facts) []Finding {
	dev := f.LastResortInterface
	if dev == "" {
		return nil
	}
	var out []Finding
	if _, exists := f.Links[dev]; f.AddressError == "" && !exists {
		out = append(out, Finding{Severity: Warning, Check: "last-resort-missing", Object: dev,
			Message:  "the last-resort interface does not exist: the daemon creates it as a dummy at start, and if it cannot (no dummy module), failing open is off on this node",
			Evidence: "ip -j addr show: no " + dev, Fix: "modprobe dummy; echo dummy > /etc/modules-load.d/anycast-watchdog.conf"})
	}
	if d, ok := f.daemon("ospfd"); ok && len(f.family(frr.IPv4)) > 0 {
		router, _ := d.Config.Block("router ospf")
		iface, _ := d.Config.Interface(dev)
		inArea := iface.Has("ip ospf area") || router.Has("redistribute connected")
		for _, p := range f.family(frr.IPv4) {
			_, covered := networkCovering(router, p)
			inArea = inArea || covered
		}
		if !inArea {
			out = append(out, Finding{Severity: Error, Check: "last-resort-not-in-area", Object: dev,
				Message:  "the last-resort interface is in no OSPF area: moving a prefix there withdraws it, so when every node fails the address vanishes instead of failing open",
				Evidence: evidence("router ospf", router.Statements("network"), "no network statement"),
				Fix:      "interface " + dev + "\n ip ospf area " + firstArea(router) + "\n ip ospf passive\n ip ospf cost " + strconv.Itoa(f.LastResortMetric)})
		} else {
			out = append(out, costFinding(f, dev, iface.Statements("ip ospf cost"), "ip ospf cost", "ospfd")...)
		}
	}
	if d, ok := f.daemon("ospf6d"); ok && len(f.family(frr.IPv6)) > 0 {
		iface, _ := d.Config.Interface(dev)
		if ospf6Area(d.Config, dev) == "" {
			out = append(out, Finding{Severity: Error, Check: "last-resort-not-in-area", Object: dev,
				Message:  "the last-resort interface is in no OSPFv3 area: moving an IPv6 prefix there withdraws it, so failing open cannot work for IPv6",
				Evidence: evidence("interface "+dev, iface.Statements("ipv6 ospf6"), "no ipv6 ospf6 area"),
				Fix:      "interface " + dev + "\n ipv6 ospf6 area 0\n ipv6 ospf6 passive\n ipv6 ospf6 cost " + strconv.Itoa(f.LastResortMetric)})
		} else {
			out = append(out, costFinding(f, dev, iface.Statements("ipv6 ospf6 cost"), "ipv6 ospf6 cost", "ospf6d")...)
		}
	}
	return append(out, passiveFindings(f, dev, "last-resort-not-passive", "the last-resort interface")...)
}

func costFinding(f Facts, dev string, set [][]string, stmt, daemon string) []Finding {
	cost := 10 // FRR's default interface cost at the default reference bandwidth
	if len(set) > 0 {
		if c, err := strconv.Atoi(set[0][len(set[0])-1]); err == nil {
			cost = c
		}
	}
	if cost >= f.LastResortMetric {
		return nil
	}
	return []Finding{{Severity: Error, Check: "last-resort-cost", Object: dev,
		Message: fmt.Sprintf("%s advertises the last-resort interface at cost %d, below frr.last_resort_metric %d: routers prefer it like any node, and every node's fleet view counts it as normal",
			daemon, cost, f.LastResortMetric),
		Evidence: evidence("interface "+dev, set, "no "+stmt+" (default 10)"),
		Fix:      fmt.Sprintf("interface %s\n %s %d", dev, stmt, f.LastResortMetric)}}
}

// strayAddresses: an address left from an old configuration on the
// anycast interfaces is advertised like the managed ones, by nobody's
// health check.
func strayAddresses(f Facts) []Finding {
	if f.AddressError != "" {
		return nil
	}
	var routerIDs []netip.Addr
	for _, d := range f.Daemons {
		if a, err := netip.ParseAddr(d.RouterID); err == nil {
			routerIDs = append(routerIDs, a)
		}
	}
	ospf, _ := f.Daemons["ospfd"].Config.Block("router ospf")
	var out []Finding
	for _, dev := range []string{f.Interface, f.LastResortInterface} {
		for _, a := range f.Links[dev] {
			ip := a.Addr()
			if dev == "" || ip.IsLoopback() || ip.IsLinkLocalUnicast() || managedAddr(f.Managed, ip) || containsAddr(routerIDs, ip) {
				continue
			}
			for _, p := range f.Managed {
				if !inRange(ospf, p, ip) {
					continue
				}
				out = append(out, Finding{Severity: Warning, Check: "stray-address", Object: a.String(),
					Message:  "on " + dev + " in the range of the managed " + p.String() + " but managed by no service (left from an old configuration?): it stays advertised whatever the checks say",
					Evidence: "ip -j addr show dev " + dev + ": " + a.String(),
					Fix:      "ip addr del " + a.String() + " dev " + dev + "   (or add it to a service's prefixes)"})
				break
			}
		}
	}
	return out
}

// inRange: for IPv4, a network statement covers both; for IPv6 (and
// without one), the same /24 or /64.
func inRange(ospf frr.ConfigBlock, p netip.Prefix, ip netip.Addr) bool {
	if p.Addr().Is4() != ip.Is4() {
		return false
	}
	if n, ok := networkCovering(ospf, p); ok && n.Bits() < 32 {
		return n.Contains(ip)
	}
	bits := 24
	if ip.Is6() {
		bits = 64
	}
	r, _ := p.Addr().Prefix(bits)
	return r.Contains(ip)
}

// bgpNetwork: a `network` statement keeps announcing the prefix while the
// IGP still reaches another anycast node.
func bgpNetwork(f Facts) []Finding {
	d, ok := f.daemon("bgpd")
	if !ok {
		return nil
	}
	var out []Finding
	for _, b := range d.Config.BlocksWithPrefix("router bgp") {
		if b.Has("no bgp network import-check") {
			out = append(out, Finding{Severity: Warning, Check: "bgp-no-import-check", Object: "bgpd",
				Message:  "`no bgp network import-check`: network statements announce their prefix whether or not this node has it",
				Evidence: b.Header + ": no bgp network import-check", Fix: b.Header + "\n bgp network import-check"})
		}
		for _, st := range b.Statements("network") {
			p, err := netip.ParsePrefix(st[1])
			if err != nil || !managedPrefix(f.Managed, p) {
				continue
			}
			af := frr.FamilyOf(p).AFI()
			out = append(out, Finding{Severity: Error, Check: "bgp-network-statement", Object: p.String(),
				Message:  "announced by a BGP network statement: removing the address does not withdraw it while the IGP still reaches another anycast node (measured, FRR 8.4); BGP must originate it from the connected route instead",
				Evidence: b.Header + ": " + strings.Join(st, " "),
				Fix: fmt.Sprintf("ip prefix-list ANYCAST seq 5 permit %s   (ipv6 prefix-list for IPv6)\nroute-map ANYCAST permit 10\n match ip address prefix-list ANYCAST\n%s\n address-family %s unicast\n  no network %s\n  redistribute connected route-map ANYCAST",
					p, b.Header, af, p)})
		}
	}
	return out
}

// networkCovering finds a `network N area A` whose N contains p.
func networkCovering(router frr.ConfigBlock, p netip.Prefix) (netip.Prefix, bool) {
	for _, st := range router.Statements("network") {
		if n, err := netip.ParsePrefix(st[1]); err == nil && n.Bits() <= p.Bits() && n.Contains(p.Addr()) {
			return n, true
		}
	}
	return netip.Prefix{}, false
}

// firstArea is the area of the first network statement, else 0.
func firstArea(router frr.ConfigBlock) string {
	for _, st := range router.Statements("network") {
		if len(st) >= 4 && st[2] == "area" {
			return st[3]
		}
	}
	return "0"
}

// ospf6Area is the OSPFv3 area of dev: `ipv6 ospf6 area A` on the
// interface, or `interface DEV area A` under router ospf6 (older FRR).
func ospf6Area(rc frr.RunningConfig, dev string) string {
	if iface, ok := rc.Interface(dev); ok {
		if st := iface.Statements("ipv6 ospf6 area"); len(st) > 0 && len(st[0]) > 3 {
			return st[0][3]
		}
	}
	router, _ := rc.Block("router ospf6")
	for _, st := range router.Statements("interface " + dev + " area") {
		if len(st) > 3 {
			return st[3]
		}
	}
	return ""
}

func evidence(block string, lines [][]string, none string) string {
	if len(lines) == 0 {
		return block + ": " + none
	}
	var parts []string
	for _, l := range lines {
		parts = append(parts, strings.Join(l, " "))
	}
	return block + ": " + strings.Join(parts, "; ")
}

func (f Facts) hasAddress(a netip.Addr) bool {
	for _, ps := range f.Links {
		for _, p := range ps {
			if p.Addr() == a {
				return true
			}
		}
	}
	return false
}

func managedAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

func managedPrefix(ps []netip.Prefix, q netip.Prefix) bool {
	for _, p := range ps {
		if p == q {
			return true
		}
	}
	return false
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func joinPrefixes(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

// bgpOrigination: where bgpd alone serves a family, removing the address
// withdraws the prefix only if bgpd originates it from the connected
// route (docs/bgp.md, "The recipe"): `redistribute connected` in the family's
// address-family, through a route-map that exists, keeps other connected
// routes out and tells the last-resort interface apart.
func bgpOrigination(f Facts) []Finding {
	d, ok := f.daemon("bgpd")
	if !ok {
		return nil
	}
	var out []Finding
	for _, b := range d.Config.BlocksWithPrefix("router bgp") {
		for _, fam := range frr.Families() {
			ps := f.family(fam)
			if len(ps) == 0 || f.Daemons[fam.IGPDaemon()].Running {
				continue // none, or the IGP originates them
			}
			afi, match := fam.AFI(), "match ip address prefix-list"
			if fam == frr.IPv6 {
				match = "match ipv6 address prefix-list"
			}
			header := "address-family " + afi + " unicast"
			redist := addressFamily(b, header).Statements("redistribute connected")
			recipe := fmt.Sprintf("%s\n %s\n  redistribute connected route-map ANYCAST-%s   (README's BGP recipe)", b.Header, header, strings.ToUpper(afi[2:]))
			if len(redist) == 0 {
				if !anyNetwork(b, ps) { // a network statement is bgpNetwork's finding
					out = append(out, Finding{Severity: Error, Check: "bgp-not-originated", Object: joinPrefixes(ps),
						Message:  "bgpd runs with " + b.Header + " but does not originate these (no redistribute connected in " + header + "): nothing advertises them",
						Evidence: b.Header + ": " + header + " has no redistribute connected", Fix: recipe})
				}
				continue
			}
			st := redist[0]
			if len(st) < 4 || st[2] != "route-map" {
				out = append(out, Finding{Severity: Warning, Check: "bgp-redistribute-unfiltered", Object: "bgpd",
					Message:  "redistribute connected without a route-map announces every connected route of this node (its links, its router ID) besides the anycast prefixes, and cannot mark last resort",
					Evidence: header + ": " + strings.Join(st, " "), Fix: recipe})
				continue
			}
			name := st[3]
			maps := d.Config.BlocksWithPrefix("route-map " + name + " ")
			if len(maps) == 0 {
				out = append(out, Finding{Severity: Error, Check: "bgp-route-map-missing", Object: name,
					Message:  "redistribute connected route-map " + name + ": the route-map is not defined, so nothing is redistributed",
					Evidence: header + ": " + strings.Join(st, " "), Fix: "define route-map " + name + " as README's BGP recipe does"})
				continue
			}
			if lr := f.LastResortInterface; lr != "" && !slices.ContainsFunc(maps, func(m frr.ConfigBlock) bool {
				return m.Has("match interface "+lr) && m.Has(match)
			}) {
				out = append(out, Finding{Severity: Warning, Check: "bgp-last-resort-unmarked", Object: lr,
					Message:  "route-map " + name + " does not tell the last-resort interface apart: a failing node holding a prefix at last resort is announced like a healthy one, and upstreams keep sending it traffic",
					Evidence: "no entry of route-map " + name + " has match interface " + lr,
					Fix:      fmt.Sprintf("route-map %s permit 5\n %s ANYCAST-%s\n match interface %s\n set community graceful-shutdown additive", name, match, strings.ToUpper(afi[2:]), lr)})
			}
		}
	}
	return out
}

// addressFamily is the part of a router block between header
// ("address-family ipv4 unicast") and exit-address-family.
func addressFamily(b frr.ConfigBlock, header string) frr.ConfigBlock {
	out := frr.ConfigBlock{Header: header}
	in := false
	for _, l := range b.Lines {
		switch {
		case l == header:
			in = true
		case l == "exit-address-family":
			in = false
		case in:
			out.Lines = append(out.Lines, l)
		}
	}
	return out
}

// anyNetwork reports whether a network statement of b names one of ps.
func anyNetwork(b frr.ConfigBlock, ps []netip.Prefix) bool {
	for _, st := range b.Statements("network") {
		if p, err := netip.ParsePrefix(st[1]); err == nil && slices.Contains(ps, p) {
			return true
		}
	}
	return false
}
