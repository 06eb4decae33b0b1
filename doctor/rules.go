package doctor

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
)

// ospfFamily is one OSPF daemon as the rules see it: its names, its
// statements, and where it takes an interface's area from.
type ospfFamily struct {
	fam            frr.Family
	daemon, router string // "ospfd", "router ospf"
	stmt           string // its router-id statement
	proto          string // "OSPF", "OSPFv3": its name in messages
	iface          string // "ip ospf": the first words of its interface statements
	check          string // "ospf": the first word of its own checks' names
	// areaUnderRouter: the area is given by network statements under the
	// router block (ospfd); else on the interface (ospf6d).
	areaUnderRouter bool
}

// ospfFamilies are ospfd and ospf6d, in the order findings are listed;
// every OSPF rule loops over them.
var ospfFamilies = []ospfFamily{
	{fam: frr.IPv4, daemon: frr.IPv4.IGPDaemon(), router: frr.IPv4.IGPRouter(), stmt: "ospf router-id", proto: "OSPF",
		iface: "ip ospf", check: "ospf", areaUnderRouter: true},
	{fam: frr.IPv6, daemon: frr.IPv6.IGPDaemon(), router: frr.IPv6.IGPRouter(), stmt: "ospf6 router-id", proto: "OSPFv3",
		iface: "ipv6 ospf6", check: "ospf6"},
}

// running returns the family's daemon when it runs, was read, and has
// managed prefixes of its family to advertise.
func (c ospfFamily) running(f Facts) (Daemon, bool) {
	d, ok := f.daemon(c.daemon)
	return d, ok && len(f.family(c.fam)) > 0
}

// inArea says whether d advertises what is on dev: the interface in an
// area (for IPv4, a network statement covering one of ps), or connected
// routes redistributed.
func (c ospfFamily) inArea(d Daemon, dev string, ps []netip.Prefix) bool {
	router, _ := d.Config.Block(c.router)
	iface, _ := d.Config.Interface(dev)
	switch {
	case router.Has("redistribute connected"), iface.Has(c.iface + " area"):
		return true
	case !c.areaUnderRouter:
		return d.Config.OSPF6Area(dev) != ""
	}
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { _, ok := router.NetworkCovering(p); return ok })
}

// areaEvidence shows where the family's area would be given, for dev.
func (c ospfFamily) areaEvidence(d Daemon, dev string) string {
	if c.areaUnderRouter {
		router, _ := d.Config.Block(c.router)
		return evidence(c.router, router.Statements("network"), "no network statement")
	}
	iface, _ := d.Config.Interface(dev)
	return evidence("interface "+dev, iface.Statements(c.iface), "no "+c.iface+" line")
}

// areaFix is the lines that put p, on dev, in the area.
func (c ospfFamily) areaFix(d Daemon, dev string, p netip.Prefix) string {
	if c.areaUnderRouter {
		router, _ := d.Config.Block(c.router)
		return c.router + "\n network " + p.String() + " area " + router.FirstArea()
	}
	return "interface " + dev + "\n " + c.iface + " area 0\n " + c.iface + " passive"
}

// minArrivalMeasured is what the lab measured with the default min-arrival.
const minArrivalMeasured = "a restore right after a withdrawal reached the neighbouring router after 6.6–8.1 s instead of 14–22 ms"

// untrustedPrograms: a program that another user could change runs their
// code with the daemon's privileges (CAP_NET_ADMIN for ip).
func untrustedPrograms(f Facts) []Finding {
	var out []Finding
	for _, u := range f.Untrusted {
		out = append(out, Finding{Severity: Error, Check: "untrusted-program", Object: u.Err.Program,
			Message:  "another user could change this program (" + u.Key + ") and run code with the daemon's privileges; the daemon refuses it at load and fails the check that runs it",
			Evidence: u.Err.Error(), Fix: u.Err.Fix()})
	}
	return out
}

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
	for _, c := range ospfFamilies {
		d, ok := c.running(f)
		if !ok {
			continue
		}
		_, hasRouter := d.Config.Block(c.router)
		for _, p := range f.family(c.fam) {
			if !hasRouter {
				fix := c.areaFix(d, f.Interface, p)
				if !c.areaUnderRouter {
					fix = c.router + "\n!\n" + fix
				}
				out = append(out, Finding{Severity: Error, Check: c.check + "-not-configured", Object: p.String(),
					Message: c.daemon + " runs without `" + c.router + "`: nothing is advertised", Evidence: "no " + c.router + " in " + c.daemon + "'s running-config",
					Fix: fix})
				continue
			}
			if c.inArea(d, f.Interface, []netip.Prefix{p}) {
				continue
			}
			why := f.Interface + " is in no " + c.proto + " area"
			if c.areaUnderRouter {
				why = "no network statement covers it and " + f.Interface + " has no `" + c.iface + " area`"
			}
			out = append(out, Finding{Severity: Error, Check: c.check + "-not-covered", Object: p.String(),
				Message:  why + ": " + c.daemon + " never advertises it, so the watchdog's withdrawal withdraws nothing",
				Evidence: c.areaEvidence(d, f.Interface),
				Fix:      c.areaFix(d, f.Interface, p)})
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
	for _, c := range ospfFamilies {
		d, ok := c.running(f)
		if !ok || !c.inArea(d, dev, f.family(c.fam)) {
			continue // an interface in no area sends no hellos
		}
		router, _ := d.Config.Block(c.router)
		iface, _ := d.Config.Interface(dev)
		if iface.Has(c.iface+" passive") || router.Has("passive-interface default") || router.Has("passive-interface "+dev) {
			continue
		}
		out = append(out, Finding{Severity: Warning, Check: check, Object: dev,
			Message:  what + " is not passive in " + c.proto + ": " + c.daemon + " sends hellos there and any host on it could become a neighbour",
			Evidence: evidence("interface "+dev, iface.Statements(c.iface), "no "+c.iface+" passive"),
			Fix:      "interface " + dev + "\n " + c.iface + " passive"})
	}
	return out
}

// prefixSuppressed: `ip ospf prefix-suppression` (RFC 6860, FRR 9 and
// later) on the anycast or last-resort interface leaves the interface's
// addresses out of ospfd's router LSA, the anycast /32 with them: it is
// never advertised from there (measured, FRR 10.3: the router stopped
// routing the /32 to the node within 3 s). On transit links it is
// harmless, and shrinks the LSDB the fleet view reads. A statement naming
// an address that is not managed suppresses only that address.
func prefixSuppressed(f Facts) []Finding {
	c := ospfFamilies[0]
	d, ok := c.running(f)
	if !ok {
		return nil
	}
	var out []Finding
	for _, dev := range []string{f.Interface, f.LastResortInterface} {
		iface, has := d.Config.Interface(dev)
		if dev == "" || !has {
			continue
		}
		for _, st := range iface.Statements("ip ospf prefix-suppression") {
			if len(st) > 3 {
				if a, err := netip.ParseAddr(st[3]); err == nil && !managedAddr(f.Managed, a) {
					continue
				}
			}
			out = append(out, Finding{Severity: Error, Check: "prefix-suppressed", Object: dev,
				Message:  "ospfd suppresses the prefixes of " + dev + ": its router LSA leaves out the managed IPv4 prefixes there, so they are never advertised from it",
				Evidence: evidence("interface "+dev, [][]string{st}, ""),
				Fix:      "interface " + dev + "\n no " + strings.Join(st, " ") + "   (prefix-suppression belongs on transit links only)"})
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
	for _, c := range ospfFamilies {
		d, ok := c.running(f)
		if !ok {
			continue
		}
		iface, _ := d.Config.Interface(dev)
		if c.inArea(d, dev, f.family(c.fam)) {
			out = append(out, costFinding(f, dev, iface.Statements(c.iface+" cost"), c.iface+" cost", c.daemon)...)
			continue
		}
		router, _ := d.Config.Block(c.router)
		out = append(out, Finding{Severity: Error, Check: "last-resort-not-in-area", Object: dev,
			Message:  "the last-resort interface is in no " + c.proto + " area: moving a prefix there withdraws it, so when every node fails the address vanishes instead of failing open",
			Evidence: c.areaEvidence(d, dev),
			Fix: fmt.Sprintf("interface %s\n %s area %s\n %s passive\n %s cost %d", dev, c.iface, router.FirstArea(), c.iface, c.iface,
				f.LastResortMetric)})
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
	if n, ok := ospf.NetworkCovering(p); ok && n.Bits() < 32 {
		return n.Contains(ip)
	}
	bits := 24
	if ip.Is6() {
		bits = 64
	}
	r, _ := p.Addr().Prefix(bits)
	return r.Contains(ip)
}

// watchedUnits: a watched unit systemd does not know takes nothing out
// when its service dies (a typo, or the service not installed), and an
// unreachable bus leaves the checks alone to decide.
func watchedUnits(f Facts) []Finding {
	if f.UnitsError != "" {
		return []Finding{{Severity: Warning, Check: "unit-watch", Object: "system bus",
			Message:  "cannot read the watched units on the system bus: a unit's stop is noticed only by the checks, at their next round",
			Evidence: f.UnitsError, Fix: "systemctl status dbus   (the daemon's unit must reach /run/dbus/system_bus_socket: AF_UNIX)"}}
	}
	var out []Finding
	for _, u := range f.Units {
		switch {
		case u.Error != "":
			out = append(out, Finding{Severity: Warning, Check: "unit-not-loaded", Object: u.Name,
				Message: "systemd will not read this unit: watching it takes nothing out", Evidence: u.Error,
				Fix: "correct the name in units: (systemctl list-units --type=service)"})
		case u.LoadState != "loaded":
			out = append(out, Finding{Severity: Warning, Check: "unit-not-loaded", Object: u.Name,
				Message:  "systemd has no such unit loaded (" + u.LoadState + "): watching it takes nothing out until it is",
				Evidence: "LoadState=" + u.LoadState, Fix: "systemctl status " + u.Name + "   (a typo in units:, or the service not installed)"})
		}
	}
	return out
}
