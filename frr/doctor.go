package frr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// AggregateType is the kind of LSA that can cover a host route.
type AggregateType string

const (
	Summary  AggregateType = "summary"  // type 3, made by an area border router
	External AggregateType = "external" // type 5, a redistributed route
)

// Aggregate is a summary or external LSA of the database.
type Aggregate struct {
	Type              AggregateType
	Prefix            netip.Prefix
	AdvertisingRouter string
}

// Instance is what doctor reads of one OSPF daemon besides its
// configuration: its router ID and, for ospfd, the LSAs that may cover a
// managed prefix.
type Instance struct {
	RouterID   string
	Aggregates []Aggregate
}

// showAggregates: ospfd's router ID, then the summary and external LSAs.
var showAggregates = []string{"show ip ospf json", "show ip ospf database summary json", "show ip ospf database external json"}

// prefixLSA is one summary or external LSA in FRR 8.4's database JSON.
type prefixLSA struct {
	LinkStateID       string `json:"linkStateId"`
	AdvertisingRouter string `json:"advertisingRouter"`
	NetworkMask       int    `json:"networkMask"`
	Age               int    `json:"lsaAge"`
}

// ParseOSPFInstance parses, back to back, `show ip ospf json`, `show ip
// ospf database summary json` and `show ip ospf database external json`.
func ParseOSPFInstance(data []byte) (Instance, error) {
	var self struct {
		RouterID string `json:"routerId"`
	}
	var summary struct {
		SummaryLinkStates struct {
			Areas map[string][]prefixLSA `json:"areas"`
		} `json:"summaryLinkStates"`
	}
	var external struct {
		External []prefixLSA `json:"asExternalLinkStates"`
	}
	if err := decodeAll(data, &self, &summary, &external); err != nil {
		return Instance{}, fmt.Errorf("parse ospfd's instance: %w", err)
	}
	if self.RouterID == "" {
		return Instance{}, errors.New("parse ospfd's instance: no routerId: not the output of show ip ospf json")
	}
	in := Instance{RouterID: self.RouterID}
	add := func(t AggregateType, l prefixLSA) error {
		if l.Age >= maxAge {
			return nil
		}
		addr, err := netip.ParseAddr(l.LinkStateID)
		if err != nil || !addr.Is4() || l.NetworkMask < 0 || l.NetworkMask > 32 {
			return fmt.Errorf("parse ospfd's %s LSAs: %q/%d is no IPv4 prefix", t, l.LinkStateID, l.NetworkMask)
		}
		in.Aggregates = append(in.Aggregates, Aggregate{Type: t, Prefix: netip.PrefixFrom(addr, l.NetworkMask).Masked(), AdvertisingRouter: l.AdvertisingRouter})
		return nil
	}
	for _, lsas := range summary.SummaryLinkStates.Areas {
		for _, l := range lsas {
			if err := add(Summary, l); err != nil {
				return Instance{}, err
			}
		}
	}
	for _, l := range external.External {
		if err := add(External, l); err != nil {
			return Instance{}, err
		}
	}
	return in, nil
}

// ParseOSPF6Instance parses `show ipv6 ospf6 json`: the router ID.
func ParseOSPF6Instance(data []byte) (Instance, error) {
	var self ospf6Instance
	if err := decodeAll(data, &self); err != nil {
		return Instance{}, fmt.Errorf("parse ospf6d's instance: %w", err)
	}
	if self.RouterID == "" {
		return Instance{}, errors.New("parse ospf6d's instance: no routerId: not the output of show ipv6 ospf6 json")
	}
	return Instance{RouterID: self.RouterID}, nil
}

// RunningConfig reads one daemon's `show running-config`.
func (c *Client) RunningConfig(ctx context.Context, daemon string) (RunningConfig, error) {
	out, err := c.show(ctx, daemon, []string{"show running-config"})
	if err != nil {
		return RunningConfig{}, err
	}
	return ParseRunningConfig(string(out)), nil
}

// Instance reads the family's OSPF router ID and, for ospfd, the summary
// and external LSAs.
func (c *Client) Instance(ctx context.Context, fam Family) (Instance, error) {
	show, parse := showAggregates, ParseOSPFInstance
	if fam == IPv6 {
		show, parse = []string{"show ipv6 ospf6 json"}, ParseOSPF6Instance
	}
	return showParsed(ctx, c, fam.IGPDaemon(), show, parse)
}
