package doctor

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
)

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
			redist := b.AddressFamily(header).Statements("redistribute connected")
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

// anyNetwork reports whether a network statement of b names one of ps.
func anyNetwork(b frr.ConfigBlock, ps []netip.Prefix) bool {
	for _, st := range b.Statements("network") {
		if p, err := netip.ParsePrefix(st[1]); err == nil && slices.Contains(ps, p) {
			return true
		}
	}
	return false
}
