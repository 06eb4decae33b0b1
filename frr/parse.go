package frr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
)

// maxAge is OSPF's MaxAge: an LSA of this age is being flushed and no
// longer advertises anything, though `show … database` still lists it for a
// few seconds after a withdrawal.
const maxAge = 3600

// Advertiser is one router advertising a prefix: in OSPF at a metric, in
// BGP normal or last resort (the graceful-shutdown community).
type Advertiser struct {
	RouterID   string
	Metric     int
	LastResort bool // set by BGP only; OSPF's last resort is its metric
}

// Fleet is who advertises each prefix as one router sees it: from its
// link-state database (IPv4 stub links of router-LSAs, or IPv6 prefixes of
// intra-area-prefix LSAs), to which the verifier adds bgpd's iBGP paths;
// each prefix with every router that advertises it.
type Fleet struct {
	RouterID string // this router
	Prefixes map[netip.Prefix][]Advertiser
}

// Originated lists the prefixes this router itself advertises.
func (d Fleet) Originated() []netip.Prefix {
	var out []netip.Prefix
	for p, advs := range d.Prefixes {
		if slices.ContainsFunc(advs, func(a Advertiser) bool { return a.RouterID == d.RouterID }) {
			out = append(out, p)
		}
	}
	return out
}

// add records that router advertises p at metric; a router seen twice (in
// two areas) counts once, at its lowest metric.
func (d *Fleet) add(p netip.Prefix, router string, metric int) {
	advs := d.Prefixes[p]
	if i := slices.IndexFunc(advs, func(a Advertiser) bool { return a.RouterID == router }); i >= 0 {
		advs[i].Metric = min(advs[i].Metric, metric)
		return
	}
	d.Prefixes[p] = append(advs, Advertiser{RouterID: router, Metric: metric})
}

// routerLSA is one router-LSA of ospfd's JSON.
type routerLSA struct {
	LSAAge            int    `json:"lsaAge"`
	AdvertisingRouter string `json:"advertisingRouter"`
	Links             map[string]struct {
		LinkType       string `json:"linkType"`
		NetworkAddress string `json:"networkAddress"`
		NetworkMask    string `json:"networkMask"`
		Metric         int    `json:"tos0Metric"`
	} `json:"routerLinks"`
}

// routerLSDB is `show ip ospf database router json`, and its
// `self-originate` form. FRR 8.4 prints the latter in an older shape
// ("Router Link States": area → link-state ID → LSA); FRR 10 prints both
// in the first.
type routerLSDB struct {
	RouterID string `json:"routerId"`
	States   struct {
		Areas map[string][]routerLSA `json:"areas"` // area → the area's router-LSAs
	} `json:"routerLinkStates"`
	OldStates map[string]map[string]routerLSA `json:"Router Link States"`
}

// ParseRouterLSDB parses ospfd's router-LSAs (every router's, or this
// router's own: `show ip ospf database router [self-originate] json`, in
// either FRR's shape): a /32 on an interface that OSPF covers is a stub
// link of its router's LSA, at the interface's cost (0 on lo).
func ParseRouterLSDB(data []byte) (Fleet, error) {
	var doc routerLSDB
	if err := decodeAll(data, &doc); err != nil {
		return Fleet{}, fmt.Errorf("parse router LSAs: %w", err)
	}
	if doc.RouterID == "" {
		return Fleet{}, errors.New("parse router LSAs: no routerId: not the output of show ip ospf database router json")
	}
	var lsas []routerLSA
	for _, area := range doc.States.Areas {
		lsas = append(lsas, area...)
	}
	for _, area := range doc.OldStates {
		for _, lsa := range area {
			lsas = append(lsas, lsa)
		}
	}
	d := Fleet{RouterID: doc.RouterID, Prefixes: map[netip.Prefix][]Advertiser{}}
	for _, lsa := range lsas {
		if lsa.LSAAge >= maxAge {
			continue
		}
		for _, l := range lsa.Links {
			if l.LinkType != "Stub Network" {
				continue
			}
			p, err := stubPrefix(l.NetworkAddress, l.NetworkMask)
			if err != nil {
				return Fleet{}, fmt.Errorf("parse router LSAs: %w", err)
			}
			d.add(p, lsa.AdvertisingRouter, l.Metric)
		}
	}
	return d, nil
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

// ospf6Instance is `show ipv6 ospf6 json`, for the router ID.
type ospf6Instance struct {
	RouterID string `json:"routerId"`
}

// intraPrefixLSDB is `show ipv6 ospf6 database intra-prefix detail json`.
type intraPrefixLSDB struct {
	Areas []struct {
		LSAs []struct {
			Age               int    `json:"age"`
			Type              string `json:"type"`
			AdvertisingRouter string `json:"advertisingRouter"`
			Prefixes          []struct {
				Prefix string `json:"prefix"`
				Metric int    `json:"metric"`
			} `json:"prefix"`
		} `json:"lsa"`
	} `json:"areaScopedLinkStateDb"`
}

// ParseOSPF6LSDB parses ospf6d's answer to two commands in one call, back
// to back: `show ipv6 ospf6 json` (this router's ID) and `show ipv6 ospf6
// database intra-prefix [self-originated] detail json` (every router's
// prefixes, or this router's, each at its interface's cost).
func ParseOSPF6LSDB(data []byte) (Fleet, error) {
	var self ospf6Instance
	var db intraPrefixLSDB
	if err := decodeAll(data, &self, &db); err != nil {
		return Fleet{}, fmt.Errorf("parse intra-prefix LSAs: %w", err)
	}
	if self.RouterID == "" {
		return Fleet{}, errors.New("parse intra-prefix LSAs: no routerId: not the output of show ipv6 ospf6 json")
	}
	d := Fleet{RouterID: self.RouterID, Prefixes: map[netip.Prefix][]Advertiser{}}
	for _, area := range db.Areas {
		for _, lsa := range area.LSAs {
			if lsa.Age >= maxAge || lsa.Type != "Intra-Prefix" {
				continue
			}
			for _, p := range lsa.Prefixes {
				pfx, err := netip.ParsePrefix(p.Prefix)
				if err != nil {
					return Fleet{}, fmt.Errorf("parse intra-prefix LSAs: prefix %q: %w", p.Prefix, err)
				}
				d.add(pfx, lsa.AdvertisingRouter, p.Metric)
			}
		}
	}
	return d, nil
}

// decodeAll decodes one JSON document of data into each of vs, in order:
// vtysh prints one per -c, back to back, and nothing when the daemon has no
// instance.
func decodeAll(data []byte, vs ...any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	for i, v := range vs {
		if err := dec.Decode(v); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%d of %d answers: the output ends early", i, len(vs))
			}
			return err
		}
	}
	return nil
}
