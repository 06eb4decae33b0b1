package frr

import (
	"net/netip"
	"testing"
)

func TestFamily(t *testing.T) {
	for _, tt := range []struct {
		prefix                    string
		want                      Family
		name, daemon, router, afi string
	}{
		{"192.0.2.53/32", IPv4, "IPv4", "ospfd", "router ospf", "ipv4"},
		{"2001:db8::53/128", IPv6, "IPv6", "ospf6d", "router ospf6", "ipv6"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fam := FamilyOf(netip.MustParsePrefix(tt.prefix))
			if fam != tt.want || fam.String() != tt.name || fam.IGPDaemon() != tt.daemon || fam.IGPRouter() != tt.router || fam.AFI() != tt.afi {
				t.Errorf("%s: %v %q %q %q %q", tt.prefix, fam, fam, fam.IGPDaemon(), fam.IGPRouter(), fam.AFI())
			}
		})
	}
	if got := Families(); len(got) != 2 || got[0] != IPv4 || got[1] != IPv6 {
		t.Errorf("Families() = %v, want IPv4 then IPv6", got)
	}
}
