package frr

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The fixtures were captured from FRR 8.4.4, and from FRR 10.3
// (testdata/frr10, make capture-frr10), by testdata/capture-bgp.sh:
// nodes 203.0.113.1 (A, read here) and 203.0.113.2 (B) in AS 64512, iBGP
// with each other and eBGP to one upstream, with docs/frr.md's recipe; the
// prefix on lo of both ("both-primary"), B's on its last-resort interface
// ("other-last-resort"), both there ("both-last-resort"), A's removed
// ("self-absent"), both removed ("not-in-table"), A's upstream session shut
// ("upstream-down"), and no `router bgp` ("no-instance").
func TestParseBGP(t *testing.T) {
	v4, v6 := netip.MustParsePrefix("192.0.2.53/32"), netip.MustParsePrefix("2001:db8::53/128")
	b := func(id string, lr bool) []Advertiser { return []Advertiser{{RouterID: id, LastResort: lr}} }
	tests := []struct {
		file                          string
		prefix                        netip.Prefix
		configured                    bool
		peers, established, fleetPeer int
		want                          BGPPrefix
	}{
		{"bgp4-both-primary.json", v4, true, 2, 2, 1,
			BGPPrefix{Originated: true, Best: true, AdvertisedTo: 2, Fleet: b("203.0.113.2", false)}},
		{"bgp6-both-primary.json", v6, true, 2, 2, 1,
			BGPPrefix{Originated: true, Best: true, AdvertisedTo: 2, Fleet: b("203.0.113.2", false)}},
		{"bgp4-other-last-resort.json", v4, true, 2, 2, 1,
			BGPPrefix{Originated: true, Best: true, AdvertisedTo: 2, Fleet: b("203.0.113.2", true)}},
		{"bgp6-other-last-resort.json", v6, true, 2, 2, 1,
			BGPPrefix{Originated: true, Best: true, AdvertisedTo: 2, Fleet: b("203.0.113.2", true)}},
		{"bgp4-both-last-resort.json", v4, true, 2, 2, 1,
			BGPPrefix{Originated: true, Best: true, LastResort: true, AdvertisedTo: 2, Fleet: b("203.0.113.2", true)}},
		{"bgp4-self-absent.json", v4, true, 2, 2, 1,
			BGPPrefix{Fleet: b("203.0.113.2", true)}},
		{"bgp4-not-in-table.json", v4, true, 2, 2, 1, BGPPrefix{}},
		{"bgp4-upstream-down.json", v4, true, 2, 1, 1,
			BGPPrefix{Originated: true, Best: true, AdvertisedTo: 1}},
		{"bgp4-no-instance.json", v4, false, 0, 0, 0, BGPPrefix{}},
	}
	for _, tt := range tests {
		for _, file := range fixtures(t, tt.file) {
			t.Run(file, func(t *testing.T) {
				all, err := ParseBGP(read(t, file), []netip.Prefix{tt.prefix})
				if err != nil {
					t.Fatal(err)
				}
				got, ok := all[FamilyOf(tt.prefix)]
				if !ok || len(all) != 1 {
					t.Fatalf("families %v, want only the prefix's", all)
				}
				if got.Configured != tt.configured || got.Peers != tt.peers || got.Established != tt.established || got.FleetPeers != tt.fleetPeer {
					t.Errorf("configured %v, peers %d, established %d, fleet peers %d; want %v, %d, %d, %d",
						got.Configured, got.Peers, got.Established, got.FleetPeers, tt.configured, tt.peers, tt.established, tt.fleetPeer)
				}
				if tt.configured && (got.RouterID != "203.0.113.1" || got.AS != 64512) {
					t.Errorf("router %s AS %d, want 203.0.113.1 AS 64512", got.RouterID, got.AS)
				}
				if p := got.Prefixes[tt.prefix]; !reflect.DeepEqual(p, tt.want) {
					t.Errorf("prefix %s = %+v, want %+v", tt.prefix, p, tt.want)
				}
			})
		}
	}
}

func TestParseBGPSummary(t *testing.T) {
	data := read(t, "bgp4-upstream-down.json")
	b, err := ParseBGPSummary(data[:strings.Index(string(data), "\n}\n")+3])
	if err != nil || !b.Configured || b.Peers != 2 || b.Established != 1 || b.FleetPeers != 1 {
		t.Errorf("summary %+v, %v; want 2 peers, 1 established, 1 of them iBGP", b, err)
	}
}

func TestParseBGPRejectsBadInput(t *testing.T) {
	v4 := []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32")}
	for _, tt := range []struct{ name, data, want string }{
		{"empty", "", "0 of 2 answers"},
		{"summary only", `{"routerId":"203.0.113.1","as":64512,"peers":{}}`, "1 of 2 answers"},
		{"not json", "% Unknown command", "invalid character"},
		{"another prefix", `{"routerId":"203.0.113.1","peers":{}} {"prefix":"192.0.2.54/32","paths":[]}`, "asked for 192.0.2.53/32"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBGP([]byte(tt.data), v4)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// One call reads both families: IPv4's summary and prefixes, then IPv6's.
func TestBGPShows(t *testing.T) {
	got := bgpShows([]netip.Prefix{netip.MustParsePrefix("2001:db8::53/128"), netip.MustParsePrefix("192.0.2.53/32"), netip.MustParsePrefix("2001:db8::54/128")})
	want := []string{"show bgp ipv4 unicast summary json", "show bgp ipv4 unicast 192.0.2.53/32 json",
		"show bgp ipv6 unicast summary json", "show bgp ipv6 unicast 2001:db8::53/128 json", "show bgp ipv6 unicast 2001:db8::54/128 json"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The answers to both families' shows, back to back, parse into one BGP
// per family.
func TestParseBGPBothFamilies(t *testing.T) {
	v4, v6 := netip.MustParsePrefix("192.0.2.53/32"), netip.MustParsePrefix("2001:db8::53/128")
	data := append(read(t, "bgp4-both-primary.json"), read(t, "bgp6-other-last-resort.json")...)
	got, err := ParseBGP(data, []netip.Prefix{v6, v4})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[IPv4].Prefixes[v4].Originated || len(got[IPv4].Prefixes[v4].Fleet) != 1 || got[IPv4].Prefixes[v4].Fleet[0].LastResort ||
		!got[IPv6].Prefixes[v6].Fleet[0].LastResort {
		t.Errorf("got %+v", got)
	}
}

// A daemon runs when its vty socket exists; one we may not open counts
// (reading it then says permission denied).
func TestRunning(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bgpd.vty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := New(nil, "vtysh", "", time.Second)
	c.runDir = dir
	for daemon, want := range map[string]bool{"bgpd": true, "ospfd": false} {
		if got := c.Running(daemon); got != want {
			t.Errorf("Running(%s) = %v, want %v", daemon, got, want)
		}
	}
}
