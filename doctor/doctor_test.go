package doctor

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
	"github.com/anycast-watchdog/anycast-watchdog/internal/golden"
	"github.com/anycast-watchdog/anycast-watchdog/status"
	"github.com/anycast-watchdog/anycast-watchdog/trust"
)

// The testdata files were captured from FRR 8.4.4 (testdata) and FRR 10.3
// (testdata/frr10, make capture-frr10) and iproute2 on a node set up as
// docs/frr.md's recipe says, plus a few mistakes (a BGP network statement
// without import-check, a stray 192.0.2.54 on lo), beside a router that
// summarises 192.0.2.0/24 into area 0 and redistributes a static
// 192.0.2.0/23 (testdata/capture.sh re-creates them, as root; with
// AW=path-to-binary it also runs doctor there, as docs/frr.md shows).

// fixtureSet is one FRR's captured files.
type fixtureSet struct{ name, dir string }

// frrFixtures are the FRRs whose captured files every audit test runs on.
func frrFixtures() []fixtureSet {
	return []fixtureSet{{"FRR 8.4.4", "testdata"}, {"FRR 10.3", filepath.Join("testdata", "frr10")}}
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var managed = []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32"), netip.MustParsePrefix("2001:db8::53/128")}

// captured builds Facts from the files captured in dir, each passed
// through edit (by file name) first, as a test's one mistake: an edit that
// changes nothing fails the test (the mistake would not be made).
func captured(t *testing.T, dir string, edit map[string]func(string) string) Facts {
	t.Helper()
	get := func(name string) string {
		s := read(t, dir, name)
		if e := edit[name]; e != nil {
			edited := e(s)
			if edited == s {
				t.Fatalf("the edit of %s/%s changed nothing", dir, name)
			}
			s = edited
		}
		return s
	}
	f := Facts{Interface: "lo", LastResortInterface: "anycast-lr", LastResortMetric: 65535, Managed: managed,
		Vtysh: "/usr/bin/vtysh", Daemons: map[string]Daemon{}}
	links, err := ifaddr.ParseShowAll([]byte(get("ip-addr-show.json")))
	if err != nil {
		t.Fatal(err)
	}
	f.Links = map[string][]netip.Prefix{}
	for _, l := range links {
		f.Links[l.Name] = l.Prefixes
	}
	v4, err := frr.ParseOSPFInstance([]byte(get("ospf-instance.json")))
	if err != nil {
		t.Fatal(err)
	}
	v6, err := frr.ParseOSPF6Instance([]byte(get("ospf6-instance.json")))
	if err != nil {
		t.Fatal(err)
	}
	f.Daemons["ospfd"] = Daemon{Running: true, Config: frr.ParseRunningConfig(get("running-config-ospfd.txt")), RouterID: v4.RouterID, Aggregates: v4.Aggregates}
	f.Daemons["ospf6d"] = Daemon{Running: true, Config: frr.ParseRunningConfig(get("running-config-ospf6d.txt")), RouterID: v6.RouterID}
	f.Daemons["bgpd"] = Daemon{Running: true, Config: frr.ParseRunningConfig(get("running-config-bgpd.txt"))}
	return f
}

// recipe is the captured node without its mistakes: bgpd stopped, the
// stray address gone, the router's summary and redistribution gone.
func recipe(t *testing.T, dir string, edit map[string]func(string) string) Facts {
	f := captured(t, dir, edit)
	f.Daemons["bgpd"] = Daemon{}
	f.Links["lo"] = slices.DeleteFunc(f.Links["lo"], func(p netip.Prefix) bool { return p.Addr() == netip.MustParseAddr("192.0.2.54") })
	d := f.Daemons["ospfd"]
	d.Aggregates = nil
	f.Daemons["ospfd"] = d
	return f
}

func checks(r Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, string(f.Severity)+" "+f.Check+" "+f.Object)
	}
	return out
}

func replace(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

func TestRecipeHasNoFinding(t *testing.T) {
	for _, v := range frrFixtures() {
		t.Run(v.name, func(t *testing.T) {
			if r := Audit(recipe(t, v.dir, nil)); len(r.Findings) != 0 {
				t.Errorf("findings on the recipe: %v", checks(r))
			}
		})
	}
}

// Each case is the recipe with exactly one mistake: the audit reports that
// finding and no other.
func TestEachMistakeIsFound(t *testing.T) {
	cases := []struct {
		name  string
		edit  map[string]func(string) string
		facts func(f *Facts, all Facts) // all: the captured node with every mistake
		want  []string
	}{
		{name: "IPv4 prefix covered by no network statement",
			edit: map[string]func(string) string{"running-config-ospfd.txt": replace(" network 192.0.2.0/24 area 0\n", "")},
			want: []string{"error ospf-not-covered 192.0.2.53/32", "error last-resort-not-in-area anycast-lr"}},
		{name: "lo in no OSPFv3 area",
			edit: map[string]func(string) string{"running-config-ospf6d.txt": replace("interface lo\n ipv6 ospf6 area 0\n", "interface lo\n")},
			want: []string{"error ospf6-not-covered 2001:db8::53/128"}},
		{name: "ospfd without router ospf",
			edit: map[string]func(string) string{"running-config-ospfd.txt": func(s string) string { return s[:strings.Index(s, "router ospf")] }},
			want: []string{"error ospf-not-configured 192.0.2.53/32", "error last-resort-not-in-area anycast-lr"}},
		{name: "area range around the anycast prefix",
			edit: map[string]func(string) string{"running-config-ospfd.txt": replace(" timers lsa min-arrival 0\n", " timers lsa min-arrival 0\n area 0 range 192.0.2.0/24\n")},
			want: []string{"error summary-range 192.0.2.53/32"}},
		{name: "summary LSA in the database", facts: func(f *Facts, all Facts) {
			*f = all
			f.Daemons["bgpd"] = Daemon{}
			dropStray(f)
			keepAggregates(f, frr.Summary)
		},
			want: []string{"error summary-lsa 192.0.2.53/32"}},
		{name: "external LSA in the database", facts: func(f *Facts, all Facts) {
			*f = all
			f.Daemons["bgpd"] = Daemon{}
			dropStray(f)
			keepAggregates(f, frr.External)
		},
			want: []string{"warning external-lsa 192.0.2.53/32"}},
		{name: "router-id is the anycast address",
			edit: map[string]func(string) string{"ospf-instance.json": replace(`"routerId":"203.0.113.1"`, `"routerId":"192.0.2.53"`)},
			want: []string{"error router-id-anycast ospfd"}},
		{name: "router-id not an address of this node",
			edit: map[string]func(string) string{"ospf6-instance.json": replace(`"routerId":"203.0.113.1"`, `"routerId":"203.0.113.99"`)},
			want: []string{"warning router-id-foreign ospf6d"}},
		{name: "lo not passive",
			edit: map[string]func(string) string{"running-config-ospfd.txt": replace("interface lo\n ip ospf passive\n", "interface lo\n")},
			want: []string{"warning interface-not-passive lo"}},
		{name: "min-arrival at its default",
			edit: map[string]func(string) string{"running-config-ospf6d.txt": replace(" timers lsa min-arrival 0\n", "")},
			want: []string{"warning min-arrival-default ospf6d"}},
		{name: "vtysh missing",
			facts: func(f *Facts, all Facts) {
				f.VtyshError, f.Daemons = &frr.Error{Kind: frr.VtyshMissing, Daemon: "ospfd", Err: errors.New(`exec: "/usr/bin/vtysh": stat /usr/bin/vtysh: no such file or directory`)}, map[string]Daemon{}
			},
			want: []string{"error vtysh /usr/bin/vtysh"}},
		{name: "user not in frrvty",
			facts: func(f *Facts, all Facts) {
				f.VtyshError, f.Daemons = &frr.Error{Kind: frr.PermissionDenied, Daemon: "ospfd", Err: errors.New("exit status 1: Exiting: failed to connect to any daemons.")}, map[string]Daemon{}
			},
			want: []string{"error vtysh /usr/bin/vtysh"}},
		{name: "no routing daemon", facts: func(f *Facts, _ Facts) { f.Daemons = map[string]Daemon{"ospfd": {}, "ospf6d": {}, "bgpd": {}} },
			want: []string{"error no-routing-daemon 192.0.2.53/32", "error no-routing-daemon 2001:db8::53/128"}},
		{name: "last-resort interface missing", facts: func(f *Facts, _ Facts) { delete(f.Links, "anycast-lr") },
			want: []string{"warning last-resort-missing anycast-lr"}},
		{name: "last-resort interface not in OSPFv3",
			edit: map[string]func(string) string{"running-config-ospf6d.txt": replace("interface anycast-lr\n ipv6 ospf6 area 0\n", "interface anycast-lr\n")},
			want: []string{"error last-resort-not-in-area anycast-lr"}},
		{name: "last-resort interface not passive",
			edit: map[string]func(string) string{"running-config-ospfd.txt": replace(" ip ospf cost 65535\n ip ospf passive\n", " ip ospf cost 65535\n")},
			want: []string{"warning last-resort-not-passive anycast-lr"}},
		{name: "last-resort cost at the default",
			edit: map[string]func(string) string{"running-config-ospfd.txt": replace(" ip ospf cost 65535\n", "")},
			want: []string{"error last-resort-cost anycast-lr"}},
		{name: "last-resort cost below last_resort_metric",
			edit: map[string]func(string) string{"running-config-ospf6d.txt": replace(" ipv6 ospf6 cost 65535\n", " ipv6 ospf6 cost 100\n")},
			want: []string{"error last-resort-cost anycast-lr"}},
		{name: "prefix-suppression on lo", edit: map[string]func(string) string{"running-config-ospfd.txt": replace("interface lo\n ip ospf passive\n", "interface lo\n ip ospf passive\n ip ospf prefix-suppression\n")},
			want: []string{"error prefix-suppressed lo"}},
		{name: "prefix-suppression of the anycast address on lo", edit: map[string]func(string) string{"running-config-ospfd.txt": replace("interface lo\n ip ospf passive\n", "interface lo\n ip ospf passive\n ip ospf prefix-suppression 192.0.2.53\n")},
			want: []string{"error prefix-suppressed lo"}},
		{name: "prefix-suppression of another address on lo", edit: map[string]func(string) string{"running-config-ospfd.txt": replace("interface lo\n ip ospf passive\n", "interface lo\n ip ospf passive\n ip ospf prefix-suppression 203.0.113.1\n")}},
		{name: "prefix-suppression on the last-resort interface", edit: map[string]func(string) string{"running-config-ospfd.txt": replace(" ip ospf cost 65535\n", " ip ospf cost 65535\n ip ospf prefix-suppression\n")},
			want: []string{"error prefix-suppressed anycast-lr"}},
		{name: "prefix-suppression on a transit link", edit: map[string]func(string) string{"running-config-ospfd.txt": replace("interface n-r\n", "interface n-r\n ip ospf prefix-suppression\n")}},
		{name: "stray address on lo", facts: func(f *Facts, all Facts) { *f = all; f.Daemons["bgpd"] = Daemon{}; keepAggregates(f, "") },
			want: []string{"warning stray-address 192.0.2.54/32"}},
		{name: "an exec check's program that another user can change", facts: func(f *Facts, all Facts) {
			f.Untrusted = []UntrustedProgram{{Key: "services[0].checks[0].command[0]", Err: &trust.UntrustedError{
				Program: "/usr/local/lib/check.sh", Path: "/usr/local/lib", Owner: 65534, Group: 65534, Mode: fs.ModeDir | 0o755,
				Why: "is owned by uid 65534, neither root nor the daemon's user (uid 0)"}}}
		}, want: []string{"error untrusted-program /usr/local/lib/check.sh"}},
		{name: "a watched unit systemd does not know", facts: func(f *Facts, all Facts) {
			f.Units = []status.Unit{{Name: "unbound.service", LoadState: "loaded", ActiveState: "active", SubState: "running", Watched: true},
				{Name: "unbund.service", LoadState: "not-found", ActiveState: "inactive", SubState: "dead", Watched: true},
				{Name: "x@.service", Error: "read: Unit name x@.service is not valid."}}
		}, want: []string{"warning unit-not-loaded unbund.service", "warning unit-not-loaded x@.service"}},
		{name: "the system bus out of reach", facts: func(f *Facts, all Facts) {
			f.UnitsError = "connect to the system bus: dial unix /run/dbus/system_bus_socket: connect: no such file or directory"
		}, want: []string{"warning unit-watch system bus"}},
		{name: "BGP network statement and no import-check", facts: func(f *Facts, all Facts) { *f = all; dropStray(f); keepAggregates(f, "") },
			want: []string{"error bgp-network-statement 192.0.2.53/32", "warning bgp-no-import-check bgpd"}},
	}
	for _, v := range frrFixtures() {
		for _, c := range cases {
			t.Run(v.name+"/"+c.name, func(t *testing.T) {
				f := recipe(t, v.dir, c.edit)
				if c.facts != nil {
					c.facts(&f, captured(t, v.dir, nil))
				}
				got := checks(Audit(f))
				slices.Sort(got)
				want := slices.Sorted(slices.Values(c.want))
				if !slices.Equal(got, want) {
					t.Errorf("findings:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
				}
			})
		}
	}
}

func dropStray(f *Facts) {
	f.Links["lo"] = slices.DeleteFunc(f.Links["lo"], func(p netip.Prefix) bool { return p.Addr() == netip.MustParseAddr("192.0.2.54") })
}

func keepAggregates(f *Facts, t frr.AggregateType) {
	d := f.Daemons["ospfd"]
	d.Aggregates = slices.DeleteFunc(d.Aggregates, func(a frr.Aggregate) bool { return a.Type != t })
	f.Daemons["ospfd"] = d
}

// The captured node with every mistake, as the doctor command prints it:
// the JSON document only ever gains fields.
func TestReportGolden(t *testing.T) {
	r := Audit(captured(t, "testdata", nil))
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "report.txt", text.Bytes())
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "report.json", append(b, '\n'))
	if r.Errors != 2 || r.Warnings != 3 {
		t.Errorf("counts: %+v", r.Doctor)
	}
}

// bgpRecipe is a BGP-only node with docs/bgp.md's recipe (captured by
// frr/testdata/capture-bgp.sh), its running-config passed through edit.
func bgpRecipe(t *testing.T, dir string, edit func(string) string) Facts {
	f := recipe(t, dir, nil)
	conf := read(t, dir, "running-config-bgpd-recipe.txt")
	if edit != nil {
		if conf == edit(conf) {
			t.Fatalf("the edit of %s's BGP recipe changed nothing", dir)
		}
		conf = edit(conf)
	}
	f.Daemons = map[string]Daemon{"ospfd": {}, "ospf6d": {}, "bgpd": {Running: true, Config: frr.ParseRunningConfig(conf)}}
	return f
}

// The BGP recipe gives no finding; each mistake in it gives its own.
func TestBGPOrigination(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(string) string
		want []string
	}{
		{name: "the recipe"},
		{name: "IPv4 not redistributed", edit: replace("  redistribute connected route-map ANYCAST-V4\n", ""),
			want: []string{"error bgp-not-originated 192.0.2.53/32"}},
		{name: "IPv6 redistributed without a route-map", edit: replace("redistribute connected route-map ANYCAST-V6", "redistribute connected"),
			want: []string{"warning bgp-redistribute-unfiltered bgpd"}},
		{name: "the route-map is not defined", edit: replace("redistribute connected route-map ANYCAST-V4", "redistribute connected route-map ANYCAST"),
			want: []string{"error bgp-route-map-missing ANYCAST"}},
		{name: "no entry for the last-resort interface", edit: replace("route-map ANYCAST-V6 permit 10\n match interface anycast-lr\n", "route-map ANYCAST-V6 permit 10\n"),
			want: []string{"warning bgp-last-resort-unmarked anycast-lr"}},
	} {
		for _, v := range frrFixtures() {
			t.Run(v.name+"/"+c.name, func(t *testing.T) {
				got := checks(Audit(bgpRecipe(t, v.dir, c.edit)))
				if !slices.Equal(got, c.want) {
					t.Errorf("findings %q, want %q", got, c.want)
				}
			})
		}
	}
}

// Gather judges every program the configuration has the daemon run.
func TestGatherFindsUntrustedPrograms(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "check.sh")
	os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755)
	os.Chmod(prog, 0o777)
	cfg := &config.Config{IP: "/bin/true", FRR: config.FRR{Vtysh: "/nonexistent/vtysh"}, Services: []config.Service{
		{Name: "dns", Checks: []config.Check{{Type: config.CheckTCP, Address: "127.0.0.1:53"}, {Type: config.CheckExec, Command: []string{prog}}}}}}
	got := judgePrograms(cfg, trust.Self())
	if len(got) != 1 || got[0].Key != "services[0].checks[1].command[0]" || got[0].Err.Path != prog {
		t.Fatalf("untrusted %+v, want only %s", got, prog)
	}
	r := Audit(Facts{Untrusted: got})
	if len(r.Findings) != 1 || r.Findings[0].Fix != "chmod go-w "+prog || !strings.Contains(r.Findings[0].Evidence, "is writable by everyone") {
		t.Errorf("findings %+v", r.Findings)
	}
}
