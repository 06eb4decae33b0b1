package ifaddr

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
)

// Link is what `ip -j addr show dev IF` says about one interface.
type Link struct {
	Name     string
	Up       bool // administratively up: a down loopback advertises nothing
	Prefixes []netip.Prefix
}

// Has reports whether p is configured on the link.
func (l Link) Has(p netip.Prefix) bool { return slices.Contains(l.Prefixes, p) }

type ipLink struct {
	Ifname   string   `json:"ifname"`
	Flags    []string `json:"flags"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		Prefixlen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

// ParseShow parses the output of `ip -j addr show dev IF`.
func ParseShow(data []byte) (Link, error) {
	links, err := ParseShowAll(data)
	if err != nil {
		return Link{}, err
	}
	if len(links) != 1 {
		return Link{}, fmt.Errorf("parse ip -j addr show: want one interface, got %d", len(links))
	}
	return links[0], nil
}

// ParseShowAll parses the output of `ip -j addr show`: every interface.
func ParseShowAll(data []byte) ([]Link, error) {
	var raw []ipLink
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse ip -j addr show: %w", err)
	}
	links := make([]Link, 0, len(raw))
	for _, rl := range raw {
		l := Link{Name: rl.Ifname, Up: slices.Contains(rl.Flags, "UP")}
		for _, a := range rl.AddrInfo {
			if a.Family != "inet" && a.Family != "inet6" {
				continue
			}
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				return nil, fmt.Errorf("parse ip -j addr show: address %q: %w", a.Local, err)
			}
			p, err := addr.Prefix(a.Prefixlen)
			if err != nil || p.Bits() != a.Prefixlen {
				return nil, fmt.Errorf("parse ip -j addr show: prefix length %d for %s", a.Prefixlen, addr)
			}
			// Keep the host bits: 192.0.2.53/24 on lo is not 192.0.2.0/24.
			l.Prefixes = append(l.Prefixes, netip.PrefixFrom(addr, a.Prefixlen))
		}
		links = append(links, l)
	}
	return links, nil
}
