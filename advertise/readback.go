package advertise

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// ReadBack reads the local routing daemons: ospfd's and ospf6d's
// link-state databases (what this router originates and what every other
// router of the area advertises), and bgpd's table (what this router
// originates, to how many peers it sends it, and which other anycast nodes
// it hears over iBGP). *frr.Client is the real one.
type ReadBack interface {
	// Running says whether a daemon runs here (its vty socket exists):
	// the verifier reads only the daemons that do, or that it has read
	// before.
	Running(daemon string) bool
	// LSDB reads the family's IGP database: the whole area's (frr.Area),
	// or this router's own LSAs (frr.Self).
	LSDB(ctx context.Context, fam frr.Family, scope frr.Scope) (frr.Fleet, error)
	// BGP reads both families' prefixes in one call; the result has an
	// entry per family with prefixes.
	BGP(ctx context.Context, prefixes []netip.Prefix) (map[frr.Family]frr.BGP, error)
}

// bgpRead is one family's part of a read of bgpd.
type bgpRead struct {
	asked bool // bgpd runs, or was read before
	table frr.BGP
	err   error
}

// readBGP reads bgpd for every managed prefix at once when it runs or was
// read before, and splits the answer by family.
func readBGP(ctx context.Context, rb ReadBack, prefixes []netip.Prefix, seen map[string]bool) map[frr.Family]bgpRead {
	out := map[frr.Family]bgpRead{}
	if !rb.Running(bgpd) && !seen[bgpd] {
		return out
	}
	tables, err := rb.BGP(ctx, prefixes)
	for _, p := range prefixes {
		out[frr.FamilyOf(p)] = bgpRead{asked: true, table: tables[frr.FamilyOf(p)], err: err}
	}
	return out
}

const bgpd = "bgpd"

// errNoFleetThroughBGP is the fleet view of a family that only bgpd
// advertises, when no iBGP session is up: other nodes' paths could not
// arrive, so their absence says nothing.
var errNoFleetThroughBGP = errors.New("bgpd has no established iBGP session, so this node cannot see the other anycast nodes " +
	"(peer with them or with a route reflector to share the fleet view); failing open holds prefixes at last resort")

// familyRead is one read of every routing daemon serving one address
// family: the IGP's database, bgpd's table, or both.
type familyRead struct {
	scope frr.Scope  // of the IGP's database
	ospf  *frr.Fleet // nil: not read, or failed
	bgp   *frr.BGP   // nil: not read, failed, or no `router bgp`
	read  []string   // the daemons asked, in order
	errs  map[string]error
	first error // the first failure, or that no daemon serves the family
}

// readFamily asks the family's IGP daemon for its database in scope, when
// it runs or was read before (seen), and takes bgpd's part of the read
// from bgp. A daemon that never ran is not an error, unless no daemon
// serves the family at all.
func readFamily(ctx context.Context, rb ReadBack, fam frr.Family, scope frr.Scope, bgp bgpRead, seen map[string]bool) familyRead {
	r := familyRead{scope: scope, errs: map[string]error{}}
	igp := fam.IGPDaemon()
	if rb.Running(igp) || seen[igp] {
		r.read = append(r.read, igp)
		db, err := rb.LSDB(ctx, fam, scope)
		if r.errs[igp] = err; err == nil {
			r.ospf = &db
		}
	}
	if bgp.asked {
		r.read = append(r.read, bgpd)
		if r.errs[bgpd] = bgp.err; bgp.err == nil && bgp.table.Configured {
			r.bgp = &bgp.table
		}
	}
	for _, d := range r.read {
		if r.errs[d] != nil {
			r.first = r.errs[d]
			return r
		}
	}
	if r.ospf == nil && r.bgp == nil {
		r.first = &frr.Error{Kind: frr.NotConfigured, Daemon: eitherDaemon(fam),
			Err: fmt.Errorf("neither runs here with an instance (`%s`, `router bgp`): nothing advertises %s", fam.IGPRouter(), fam)}
	}
	return r
}

// fleet is the family's view for the fleet store: every router the IGP
// sees advertising each prefix, with bgpd's paths from other nodes added,
// or why there is no view.
func (r familyRead) fleet() (frr.Fleet, error) {
	if r.first != nil {
		return frr.Fleet{}, r.first
	}
	var db frr.Fleet
	if r.ospf != nil {
		db = *r.ospf
	} else {
		db = frr.Fleet{RouterID: r.bgp.RouterID, Prefixes: map[netip.Prefix][]frr.Advertiser{}}
		if r.bgp.FleetPeers == 0 {
			return frr.Fleet{}, errNoFleetThroughBGP
		}
	}
	if r.bgp == nil {
		return db, nil
	}
	// Add bgpd's view to a copy: the IGP's database is not ours to change.
	merged := frr.Fleet{RouterID: db.RouterID, Prefixes: map[netip.Prefix][]frr.Advertiser{}}
	for p, advs := range db.Prefixes {
		merged.Prefixes[p] = slices.Clone(advs)
	}
	for p, bp := range r.bgp.Prefixes {
		advs := merged.Prefixes[p]
		if bp.Originated {
			advs = appendNew(advs, frr.Advertiser{RouterID: db.RouterID, LastResort: bp.LastResort})
		}
		for _, a := range bp.Fleet {
			advs = appendNew(advs, a)
		}
		if len(advs) > 0 {
			merged.Prefixes[p] = advs
		}
	}
	return merged, nil
}

// appendNew adds a unless its router is listed already (seen by the IGP,
// or over two iBGP sessions).
func appendNew(advs []frr.Advertiser, a frr.Advertiser) []frr.Advertiser {
	if slices.ContainsFunc(advs, func(b frr.Advertiser) bool { return b.RouterID == a.RouterID }) {
		return advs
	}
	return append(advs, a)
}

// verdict is what the daemons say of one prefix against the interface.
type verdict struct {
	advertised bool
	agrees     bool        // every daemon read agrees with the interface
	reason     string      // when not: what the first disagreement is
	bgp        *status.BGP // bgpd's part, when it was read
}

// judge compares each daemon's word on p with whether p is on an
// interface (present).
func (r familyRead) judge(p netip.Prefix, present bool) verdict {
	v := verdict{advertised: present, agrees: true}
	if r.bgp != nil {
		bp := r.bgp.Prefixes[p]
		v.bgp = &status.BGP{Originated: bp.Originated, PeersAdvertised: bp.AdvertisedTo, PeersEstablished: r.bgp.Established}
	}
	if r.ospf != nil {
		if adv := slices.Contains(r.ospf.Originated(), p); adv != present {
			return verdict{advertised: adv, reason: mismatchReason(p, present), bgp: v.bgp}
		}
	}
	if r.bgp != nil {
		bp := r.bgp.Prefixes[p]
		if adv := bp.Originated && bp.AdvertisedTo > 0; adv != present {
			return verdict{advertised: adv, reason: bgpMismatchReason(p, present, bp, *r.bgp), bgp: v.bgp}
		}
	}
	return v
}

func bgpMismatchReason(p netip.Prefix, present bool, bp frr.BGPPrefix, b frr.BGP) string {
	switch {
	case present && !bp.Originated:
		return "address is on the interface but bgpd does not originate it: the FRR configuration does not cover " +
			p.String() + "; redistribute connected through a route-map whose prefix-list permits it (README's BGP recipe)"
	case present:
		return fmt.Sprintf("bgpd originates %s but sends it to no BGP peer (%d of %d sessions established): no peer routes traffic here",
			p, b.Established, b.Peers)
	}
	return "address is off the interface but bgpd still originates " + p.String() +
		" (a network statement, or a static route redistributed?); traffic may still be drawn here"
}

// eitherDaemon names the family's two daemons together, for the failure
// that neither serves it: "ospfd/bgpd", "ospf6d/bgpd".
func eitherDaemon(fam frr.Family) string { return fam.IGPDaemon() + "/" + bgpd }
