package frr

import "net/netip"

// Family is an address family, with the names FRR gives it.
type Family uint8

// The two families, IPv4 first.
const (
	IPv4 Family = iota
	IPv6
)

// Families lists both families, IPv4 first: the order reads and reports
// follow.
func Families() []Family { return []Family{IPv4, IPv6} }

// FamilyOf is p's family.
func FamilyOf(p netip.Prefix) Family {
	if p.Addr().Is6() {
		return IPv6
	}
	return IPv4
}

// String is "IPv4" or "IPv6".
func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// IGPDaemon names the OSPF daemon that advertises the family: ospfd or
// ospf6d. bgpd advertises both families.
func (f Family) IGPDaemon() string {
	if f == IPv6 {
		return "ospf6d"
	}
	return "ospfd"
}

// IGPRouter is the family's OSPF instance in the running-config:
// "router ospf" or "router ospf6".
func (f Family) IGPRouter() string { return "router " + f.IGPDaemon()[:len(f.IGPDaemon())-1] }

// AFI is the family's word in bgpd's commands and configuration: "ipv4"
// or "ipv6".
func (f Family) AFI() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}
