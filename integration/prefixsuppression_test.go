//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// configure applies lines in vtysh's configuration mode on f, failing
// the test on any error vtysh prints; unknown reports a command this FRR
// does not have.
func configure(t *testing.T, f *lab.FRR, lines ...string) (unknown bool) {
	t.Helper()
	out, err := f.Vtysh(append([]string{"configure terminal"}, lines...)...)
	if strings.Contains(out, "Unknown command") {
		return true
	}
	if err != nil || strings.Contains(out, "%") {
		t.Fatalf("vtysh configure %q: %v: %s", lines, err, out)
	}
	return false
}

// stubLinks counts the stub links in every router LSA of router's
// OSPFv2 database, and returns the JSON's size.
func stubLinks(t *testing.T, r *lab.Router) (stubs, size int) {
	t.Helper()
	out, err := r.FRR.Vtysh("show ip ospf database router json")
	if err != nil {
		t.Fatal(err)
	}
	var db struct {
		RouterLinkStates struct {
			Areas map[string][]struct {
				RouterLinks map[string]struct {
					LinkType string `json:"linkType"`
				} `json:"routerLinks"`
			} `json:"areas"`
		} `json:"routerLinkStates"`
	}
	if err := json.Unmarshal([]byte(out), &db); err != nil {
		t.Fatalf("router LSDB: %v", err)
	}
	for _, lsas := range db.RouterLinkStates.Areas {
		for _, lsa := range lsas {
			for _, l := range lsa.RouterLinks {
				if strings.Contains(l.LinkType, "Stub") {
					stubs++
				}
			}
		}
	}
	return stubs, len(out)
}

// `ip ospf prefix-suppression` (RFC 6860; FRR 9 and later) on the nodes'
// and the router's transit links drops those links' stub networks from the
// router LSAs: the LSDB every node's fleet view reads shrinks, and the
// daemon works as before (the router follows node 1's health, doctor finds
// nothing). On node 1's lo it takes the anycast /32 out of node 1's router
// LSA: the router stops routing it there, node 1's read-back says it is
// not advertised, and doctor names the mistake; OSPFv3 is untouched.
func TestPrefixSuppression(t *testing.T) {
	a := newFailOpenLab(t)
	n1 := a.Nodes[0]
	stubsBefore, sizeBefore := stubLinks(t, a.Router)
	if configure(t, n1.FRR, "interface n1-r", "ip ospf prefix-suppression") {
		t.Skip("this FRR's ospfd has no ip ospf prefix-suppression (FRR 9 added it)")
	}
	for _, n := range a.Nodes {
		configure(t, n.FRR, fmt.Sprintf("interface n%d-r", n.Index), "ip ospf prefix-suppression")
		configure(t, a.Router.FRR, "interface "+n.RouterDev, "ip ospf prefix-suppression")
	}
	// Each of the 3 links was two stub networks (one per end): 6 fewer.
	if _, ok := lab.WaitFor(5*time.Second, func() bool { s, _ := stubLinks(t, a.Router); return s == stubsBefore-6 }); !ok {
		s, _ := stubLinks(t, a.Router)
		t.Fatalf("prefix-suppression on every transit link: %d stub links, want %d", s, stubsBefore-6)
	}
	stubsAfter, sizeAfter := stubLinks(t, a.Router)
	t.Logf("prefix-suppression on every transit link: %d stub links in the router LSAs (%d bytes of JSON) before, %d (%d bytes) after",
		stubsBefore, sizeBefore, stubsAfter, sizeAfter)
	waitRoutes(t, a, devs(a.Nodes...), 5*time.Second, "every node still advertised")
	if got, out, _ := runDoctor(t, n1.NS, n1.Config, ""); len(got) != 0 {
		t.Fatalf("doctor on transit links' suppression: %v\n%s", got, out)
	}

	n1.DNS.Stop(2 * time.Second)
	took := waitRoutes(t, a, devs(a.Nodes[1:]...), 10*time.Second, "the router leaves node 1 when its DNS stops")
	if err := n1.StartDNS(); err != nil {
		t.Fatal(err)
	}
	back := waitRoutes(t, a, devs(a.Nodes...), 10*time.Second, "the router takes node 1 back")
	t.Logf("with prefix-suppression: the router left node 1 %s after its DNS stopped, took it back %s after it started",
		took.Round(time.Millisecond), back.Round(time.Millisecond))

	configure(t, n1.FRR, "interface lo", "ip ospf prefix-suppression")
	gone, ok := lab.WaitFor(5*time.Second, func() bool { v4, _ := a.Routes(); return slices.Equal(v4, devs(a.Nodes[1:]...)) })
	if !ok {
		v4, _ := a.Routes()
		t.Fatalf("prefix-suppression on node 1's lo: the router still routes the /32 via %v", v4)
	}
	if _, v6 := a.Routes(); !slices.Equal(v6, devs(a.Nodes...)) {
		t.Errorf("prefix-suppression on node 1's lo: the /128 via %v, want every node (OSPFv3 has no such statement)", v6)
	}
	v4Status := waitStatus(t, n1, 5*time.Second, "node 1's read-back sees its /32 unadvertised", func(st status.Document) bool {
		return serviceNamed(st, "dns").Prefixes[0].Advertised == status.AdvertisedNo
	}).Services[0].Prefixes[0]
	got, _, code := runDoctor(t, n1.NS, n1.Config, "")
	if !slices.Equal(got, []string{"error prefix-suppressed lo"}) || code != 1 {
		t.Errorf("doctor with lo suppressed: %v (exit %d), want error prefix-suppressed lo", got, code)
	}
	t.Logf("prefix-suppression on node 1's lo: the router dropped node 1's /32 %s later; node 1's status: %s present %v, advertised %q; doctor: %v",
		gone.Round(time.Millisecond), v4Status.Prefix, v4Status.Present, v4Status.Advertised, got)
	configure(t, n1.FRR, "interface lo", "no ip ospf prefix-suppression")
	waitRoutes(t, a, devs(a.Nodes...), 10*time.Second, "node 1 back once lo's suppression is gone")
}
