package frr

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
)

// BGP is what bgpd says of one address family's managed prefixes: whether
// this router originates each, to how many established peers it is sent,
// and which other anycast nodes (iBGP peers, or clients of a route
// reflector) advertise it.
type BGP struct {
	// Configured is false when bgpd runs without `router bgp`: not an
	// error, there is nothing to read.
	Configured  bool
	RouterID    string
	AS          int
	Peers       int // configured in this family
	Established int // in state Established
	// FleetPeers counts established iBGP sessions (remote AS = local AS):
	// the sessions over which other anycast nodes' paths can arrive. With
	// none, this node cannot see the fleet through BGP.
	FleetPeers int
	Prefixes   map[netip.Prefix]BGPPrefix // every prefix asked about
}

// BGPPrefix is one prefix in bgpd's table.
type BGPPrefix struct {
	Originated bool // a valid path sourced here (redistributed or a network statement)
	Best       bool // that path is the best
	// LastResort: the local path carries the graceful-shutdown community
	// (RFC 8326) that docs/bgp.md's route-map sets on the last-resort interface.
	LastResort bool
	// AdvertisedTo counts the established peers it is in the
	// adjacency-RIB-out of (FRR's advertisedTo, the same source as
	// `neighbors P advertised-routes`).
	AdvertisedTo int
	// Fleet are the other nodes advertising it, learned over iBGP: by
	// originator ID when reflected, else the peer's router ID; LastResort
	// when the path carries graceful-shutdown.
	Fleet []Advertiser
}

// gracefulShutdown is RFC 8326's GRACEFUL_SHUTDOWN community (65535:0) as
// FRR's JSON names it.
const gracefulShutdown = "gracefulShutdown"

// bgpSummary is `show bgp ipv4|ipv6 unicast summary json`; `{}` when there
// is no instance.
type bgpSummary struct {
	RouterID string `json:"routerId"`
	AS       int    `json:"as"`
	Peers    map[string]struct {
		RemoteAS int    `json:"remoteAs"`
		LocalAS  int    `json:"localAs"`
		State    string `json:"state"`
	} `json:"peers"`
}

// bgpPrefix is `show bgp ipv4|ipv6 unicast X json`: `{}` when X is not in
// the table, `{"warning": …}` when there is no instance.
type bgpPrefix struct {
	Prefix       string              `json:"prefix"`
	AdvertisedTo map[string]struct{} `json:"advertisedTo"`
	Paths        []struct {
		Valid        bool   `json:"valid"`
		Sourced      bool   `json:"sourced"`
		OriginatorID string `json:"originatorId"`
		Bestpath     *struct {
			Overall bool `json:"overall"`
		} `json:"bestpath"`
		Community *struct {
			List []string `json:"list"`
		} `json:"community"`
		Peer struct {
			RouterID string `json:"routerId"`
			Type     string `json:"type"` // internal | external; absent for a local path
		} `json:"peer"`
	} `json:"paths"`
}

// byFamily splits prefixes into IPv4 then IPv6, each in the order given;
// a family without prefixes is left out.
func byFamily(prefixes []netip.Prefix) (families []Family, of map[Family][]netip.Prefix) {
	of = map[Family][]netip.Prefix{}
	for _, p := range prefixes {
		of[FamilyOf(p)] = append(of[FamilyOf(p)], p)
	}
	for _, fam := range Families() {
		if len(of[fam]) > 0 {
			families = append(families, fam)
		}
	}
	return families, of
}

// bgpShows are the commands of one BGP read: per family, its summary, then
// each of its prefixes.
func bgpShows(prefixes []netip.Prefix) []string {
	families, of := byFamily(prefixes)
	var shows []string
	for _, fam := range families {
		shows = append(shows, "show bgp "+fam.AFI()+" unicast summary json")
		for _, p := range of[fam] {
			shows = append(shows, "show bgp "+fam.AFI()+" unicast "+p.String()+" json")
		}
	}
	return shows
}

// BGP reads bgpd's view of prefixes, both families in one vtysh call: a
// call costs tens to hundreds of milliseconds on a busy host. The result
// has an entry per family that has prefixes.
func (c *Client) BGP(ctx context.Context, prefixes []netip.Prefix) (map[Family]BGP, error) {
	return showParsed(ctx, c, "bgpd", bgpShows(prefixes), func(data []byte) (map[Family]BGP, error) {
		return ParseBGP(data, prefixes)
	})
}

// ParseBGP parses bgpd's answers to bgpShows(prefixes): per family, the
// summary, then one document per prefix, in order.
func ParseBGP(data []byte, prefixes []netip.Prefix) (map[Family]BGP, error) {
	families, of := byFamily(prefixes)
	sums := make([]bgpSummary, len(families))
	docs := make([][]bgpPrefix, len(families))
	var vs []any
	for i, fam := range families {
		docs[i] = make([]bgpPrefix, len(of[fam]))
		vs = append(vs, &sums[i])
		for j := range docs[i] {
			vs = append(vs, &docs[i][j])
		}
	}
	if err := decodeAll(data, vs...); err != nil {
		return nil, fmt.Errorf("parse bgp table: %w", err)
	}
	out := map[Family]BGP{}
	for i, fam := range families {
		b, err := bgpFamily(sums[i], docs[i], of[fam])
		if err != nil {
			return nil, err
		}
		out[fam] = b
	}
	return out, nil
}

// ParseBGPSummary parses `show bgp ipv4|ipv6 unicast summary json` alone:
// the family's sessions, no prefix.
func ParseBGPSummary(data []byte) (BGP, error) {
	var sum bgpSummary
	if err := decodeAll(data, &sum); err != nil {
		return BGP{}, fmt.Errorf("parse bgp summary: %w", err)
	}
	return bgpFamily(sum, nil, nil)
}

// bgpFamily is one family's part of a BGP read.
func bgpFamily(sum bgpSummary, docs []bgpPrefix, prefixes []netip.Prefix) (BGP, error) {
	b := BGP{Prefixes: map[netip.Prefix]BGPPrefix{}}
	if sum.RouterID == "" {
		return b, nil // no `router bgp`
	}
	b.Configured, b.RouterID, b.AS = true, sum.RouterID, sum.AS
	for _, peer := range sum.Peers {
		b.Peers++
		if peer.State != "Established" {
			continue
		}
		b.Established++
		if peer.RemoteAS == peer.LocalAS {
			b.FleetPeers++
		}
	}
	for i, doc := range docs {
		p := prefixes[i]
		if doc.Prefix != "" && doc.Prefix != p.String() {
			return BGP{}, fmt.Errorf("parse bgp table: asked for %s, got %q", p, doc.Prefix)
		}
		var bp BGPPrefix
		for _, path := range doc.Paths {
			if !path.Valid {
				continue
			}
			lastResort := path.Community != nil && slices.Contains(path.Community.List, gracefulShutdown)
			if path.Sourced {
				bp.Originated, bp.LastResort = true, lastResort
				bp.Best = path.Bestpath != nil && path.Bestpath.Overall
				continue
			}
			if path.Peer.Type != "internal" {
				continue // another network's path, not one of our nodes
			}
			id := path.Peer.RouterID
			if path.OriginatorID != "" {
				id = path.OriginatorID
			}
			bp.Fleet = append(bp.Fleet, Advertiser{RouterID: id, LastResort: lastResort})
		}
		if bp.Originated {
			bp.AdvertisedTo = len(doc.AdvertisedTo)
		}
		b.Prefixes[p] = bp
	}
	return b, nil
}
