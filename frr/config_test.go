package frr

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParseRunningConfig(t *testing.T) {
	text := "Building configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\nfrr defaults traditional\n!\n" +
		"interface lo\n ip ospf passive\nexit\n!\nrouter bgp 65001\n no bgp network import-check\n !\n address-family ipv4 unicast\n  network 192.0.2.53/32\n exit-address-family\nexit\n!\nend\n"
	rc := ParseRunningConfig(text)
	want := RunningConfig{Global: []string{"frr version 8.4.4", "frr defaults traditional"}, Blocks: []ConfigBlock{
		{Header: "interface lo", Lines: []string{"ip ospf passive"}},
		{Header: "router bgp 65001", Lines: []string{"no bgp network import-check", "address-family ipv4 unicast", "network 192.0.2.53/32", "exit-address-family"}},
	}}
	if !reflect.DeepEqual(rc, want) {
		t.Fatalf("got %+v\nwant %+v", rc, want)
	}
	bgp := rc.BlocksWithPrefix("router bgp")
	for _, c := range []struct {
		words string
		want  int
	}{{"network", 1}, {"no bgp network import-check", 1}, {"net", 0}, {"address-family ipv6", 0}} {
		if got := len(bgp[0].Statements(c.words)); got != c.want {
			t.Errorf("Statements(%q): %d, want %d", c.words, got, c.want)
		}
	}
	if _, ok := rc.Interface("eth0"); ok {
		t.Error("found an interface that is not there")
	}
}

func TestParseOSPFInstance(t *testing.T) {
	self := `{"routerId":"203.0.113.1"}`
	cases := []struct {
		name, data string
		want       []Aggregate
		err        string
	}{
		{name: "summary and external",
			data: self + `{"summaryLinkStates":{"areas":{"0.0.0.0":[{"lsaAge":14,"linkStateId":"192.0.2.0","advertisingRouter":"203.0.113.254","networkMask":24}]}}}` +
				`{"asExternalLinkStates":[{"lsaAge":13,"linkStateId":"192.0.2.0","advertisingRouter":"203.0.113.254","networkMask":23}]}`,
			want: []Aggregate{{Summary, netip.MustParsePrefix("192.0.2.0/24"), "203.0.113.254"}, {External, netip.MustParsePrefix("192.0.2.0/23"), "203.0.113.254"}}},
		{name: "a flushed LSA is left out",
			data: self + `{"summaryLinkStates":{"areas":{"0.0.0.0":[{"lsaAge":3600,"linkStateId":"192.0.2.0","advertisingRouter":"203.0.113.254","networkMask":24}]}}}{}`},
		{name: "no instance", data: `{}{}{}`, err: "no routerId"},
		{name: "bad mask", data: self + `{"summaryLinkStates":{"areas":{"0.0.0.0":[{"linkStateId":"192.0.2.0","networkMask":33}]}}}{}`, err: "no IPv4 prefix"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, err := ParseOSPFInstance([]byte(c.data))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || in.RouterID != "203.0.113.1" || !reflect.DeepEqual(in.Aggregates, c.want) {
				t.Errorf("got %+v, %v; want %v", in, err, c.want)
			}
		})
	}
}
