package frr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
)

// maxAge is OSPF's MaxAge: an LSA of this age is being flushed and no
// longer advertises anything, though `show … database` still lists it for a
// few seconds after a withdrawal.
const maxAge = 3600

// routerLSAs is `show ip ospf database router self-originate json`.
type routerLSAs struct {
	RouterID string `json:"routerId"`
	// area → advertising router → LSA
	Areas map[string]map[string]struct {
		LSAAge int `json:"lsaAge"`
		Links  map[string]struct {
			LinkType       string `json:"linkType"`
			NetworkAddress string `json:"networkAddress"`
			NetworkMask    string `json:"networkMask"`
		} `json:"routerLinks"`
	} `json:"Router Link States"`
}

// ParseRouterLSAs returns the stub networks of the self-originated
// router-LSAs: a /32 on lo that OSPF covers is one of them.
func ParseRouterLSAs(data []byte) ([]netip.Prefix, error) {
	var doc routerLSAs
	if err := decodeOne(data, &doc); err != nil {
		return nil, fmt.Errorf("parse router LSAs: %w", err)
	}
	var out []netip.Prefix
	for _, routers := range doc.Areas {
		for _, lsa := range routers {
			if lsa.LSAAge >= maxAge {
				continue
			}
			for _, l := range lsa.Links {
				if l.LinkType != "Stub Network" {
					continue
				}
				p, err := stubPrefix(l.NetworkAddress, l.NetworkMask)
				if err != nil {
					return nil, fmt.Errorf("parse router LSAs: %w", err)
				}
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func stubPrefix(addr, mask string) (netip.Prefix, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("stub network address %q", addr)
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || !m.Is4() {
		return netip.Prefix{}, fmt.Errorf("stub network mask %q", mask)
	}
	ones, bits := net.IPMask(m.AsSlice()).Size()
	if bits == 0 {
		return netip.Prefix{}, fmt.Errorf("stub network mask %q is not contiguous", mask)
	}
	return netip.PrefixFrom(a, ones), nil
}

// intraPrefixLSAs is `show ipv6 ospf6 database intra-prefix self-originate
// detail json`.
type intraPrefixLSAs struct {
	Areas []struct {
		AreaID string `json:"areaId"`
		LSAs   []struct {
			Age      int    `json:"age"`
			Type     string `json:"type"`
			Prefixes []struct {
				Prefix string `json:"prefix"`
			} `json:"prefix"`
		} `json:"lsa"`
	} `json:"areaScopedLinkStateDb"`
}

// ParseIntraPrefixLSAs returns the prefixes of the self-originated
// Intra-Area-Prefix LSAs that are not being flushed.
func ParseIntraPrefixLSAs(data []byte) ([]netip.Prefix, error) {
	var doc intraPrefixLSAs
	if err := decodeOne(data, &doc); err != nil {
		return nil, fmt.Errorf("parse intra-prefix LSAs: %w", err)
	}
	var out []netip.Prefix
	for _, area := range doc.Areas {
		for _, lsa := range area.LSAs {
			if lsa.Age >= maxAge || lsa.Type != "Intra-Prefix" {
				continue
			}
			for _, p := range lsa.Prefixes {
				pfx, err := netip.ParsePrefix(p.Prefix)
				if err != nil {
					return nil, fmt.Errorf("parse intra-prefix LSAs: prefix %q: %w", p.Prefix, err)
				}
				out = append(out, pfx)
			}
		}
	}
	return out, nil
}

// decodeOne decodes the first JSON document of data; vtysh prints one per
// -c, back to back, and an empty answer when the daemon has no instance.
func decodeOne(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty output")
		}
		return err
	}
	return nil
}
