//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/doctor"
	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
)

// doctorCase is docs/frr.md's recipe with exactly one mistake, made in a fresh
// namespace with a real FRR.
type doctorCase struct {
	name string
	// edit changes the recipe's FRR files (by file name) before the start.
	edit func(files map[string]string)
	// noLastResort leaves the last-resort interface uncreated; stray adds
	// an address to lo; vtysh and user change how doctor is run.
	noLastResort bool
	stray        string
	vtysh        string
	user         string
	// want is every error and warning doctor must report, and no other:
	// "severity check object".
	want []string
}

// bgpOnly replaces OSPF by docs/bgp.md's recipe, passed through edit.
func bgpOnly(edit func(string) string) func(map[string]string) {
	return func(files map[string]string) {
		delete(files, "ospfd.conf")
		delete(files, "ospf6d.conf")
		b, err := lab.NodeBGPFiles("n", "203.0.113.1")
		if err != nil {
			panic(err)
		}
		if edit != nil {
			b["bgpd.conf"] = edit(b["bgpd.conf"])
		}
		files["bgpd.conf"] = b["bgpd.conf"]
	}
}

func replaceIn(file, old, new string) func(map[string]string) {
	return func(files map[string]string) {
		if !strings.Contains(files[file], old) {
			panic(fmt.Sprintf("%s has no %q", file, old))
		}
		files[file] = strings.Replace(files[file], old, new, 1)
	}
}

func TestDoctorFindsEachMistake(t *testing.T) {
	if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
		t.Fatal("frr is missing: make test installs it")
	}
	bgp := func(body string) func(map[string]string) {
		return func(files map[string]string) {
			files["bgpd.conf"] = "router bgp 65001\n bgp router-id 203.0.113.1\n" + body + "!\n"
		}
	}
	cases := []doctorCase{
		{name: "recipe"},
		{name: "no network statement covers the /32", edit: replaceIn("ospfd.conf", " network 192.0.2.0/24 area 0\n", ""),
			want: []string{"error ospf-not-covered 192.0.2.53/32", "error last-resort-not-in-area anycast-lr"}},
		{name: "lo in no OSPFv3 area", edit: replaceIn("ospf6d.conf", "interface lo\n ipv6 ospf6 area 0\n", "interface lo\n"),
			want: []string{"error ospf6-not-covered 2001:db8::53/128"}},
		{name: "an area range around the /32", edit: replaceIn("ospfd.conf", " timers throttle", " area 0 range 192.0.2.0/24\n timers throttle"),
			want: []string{"error summary-range 192.0.2.53/32"}},
		{name: "a redistributed aggregate", edit: func(files map[string]string) {
			replaceIn("ospfd.conf", " timers throttle", " redistribute static\n timers throttle")(files)
			files["staticd.conf"] = "ip route 192.0.2.0/23 blackhole\n"
		}, want: []string{"warning external-lsa 192.0.2.53/32"}},
		{name: "router-id is the anycast address", edit: replaceIn("ospfd.conf", "ospf router-id 203.0.113.1", "ospf router-id 192.0.2.53"),
			want: []string{"error router-id-anycast ospfd"}},
		{name: "router-id of another node", edit: replaceIn("ospf6d.conf", "ospf6 router-id 203.0.113.1", "ospf6 router-id 203.0.113.99"),
			want: []string{"warning router-id-foreign ospf6d"}},
		{name: "lo not passive", edit: replaceIn("ospfd.conf", "interface lo\n ip ospf passive\n", "interface lo\n"),
			want: []string{"warning interface-not-passive lo"}},
		{name: "min-arrival at its default", edit: replaceIn("ospfd.conf", " timers lsa min-arrival 0\n", ""),
			want: []string{"warning min-arrival-default ospfd"}},
		{name: "vtysh missing", vtysh: "/nonexistent/vtysh", want: []string{"error vtysh /nonexistent/vtysh"}},
		{name: "user outside frrvty", user: "65534", want: []string{"error vtysh /usr/bin/vtysh"}},
		{name: "last-resort interface missing", noLastResort: true, want: []string{"warning last-resort-missing anycast-lr"}},
		{name: "last-resort interface in no OSPFv3 area", edit: replaceIn("ospf6d.conf", "interface anycast-lr\n ipv6 ospf6 area 0\n", "interface anycast-lr\n"),
			want: []string{"error last-resort-not-in-area anycast-lr"}},
		{name: "last-resort interface not passive", edit: replaceIn("ospfd.conf", "interface anycast-lr\n ip ospf passive\n", "interface anycast-lr\n"),
			want: []string{"warning last-resort-not-passive anycast-lr"}},
		{name: "last-resort interface at the default cost", edit: replaceIn("ospf6d.conf", " ipv6 ospf6 cost 65535\n", ""),
			want: []string{"error last-resort-cost anycast-lr"}},
		{name: "a stray address on lo", stray: "192.0.2.54/32", want: []string{"warning stray-address 192.0.2.54/32"}},
		{name: "a BGP network statement", edit: bgp(" address-family ipv4 unicast\n  network 192.0.2.53/32\n exit-address-family\n"),
			want: []string{"error bgp-network-statement 192.0.2.53/32"}},
		{name: "no bgp network import-check", edit: bgp(" no bgp network import-check\n"),
			want: []string{"warning bgp-no-import-check bgpd"}},
		{name: "BGP recipe, no OSPF", edit: bgpOnly(nil)},
		{name: "BGP without redistribute connected for IPv4", edit: bgpOnly(func(s string) string {
			return strings.Replace(s, "  redistribute connected route-map ANYCAST-V4\n", "", 1)
		}), want: []string{"error bgp-not-originated 192.0.2.53/32"}},
		{name: "BGP route-map without the last-resort entry", edit: bgpOnly(func(s string) string {
			return strings.Replace(s, " match interface anycast-lr\n", "", 1)
		}), want: []string{"warning bgp-last-resort-unmarked anycast-lr"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newLab(t)
			ns, err := l.AddNamespace(fmt.Sprintf("aw%d-d%d", os.Getpid()%100000, i))
			if err != nil {
				t.Fatal(err)
			}
			setup := [][]string{{"ip", "addr", "add", "203.0.113.1/32", "dev", "lo"}, {"ip", "addr", "add", "192.0.2.53/32", "dev", "lo"},
				{"ip", "addr", "add", "2001:db8::53/128", "dev", "lo"}}
			if !c.noLastResort {
				setup = append(setup, []string{"ip", "link", "add", lab.LastResortDev, "type", "ifb"}, []string{"ip", "link", "set", lab.LastResortDev, "up"})
			}
			if c.stray != "" {
				setup = append(setup, []string{"ip", "addr", "add", c.stray, "dev", "lo"})
			}
			for _, argv := range setup {
				if _, err := ns.Run(argv...); err != nil {
					t.Fatal(err)
				}
			}
			files, err := lab.OSPFConfig{RouterID: "203.0.113.1", Networks: []string{"198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"},
				LoInOSPF6: true, MinArrival0: true, LastResort: lab.LastResortDev}.Files(ns.Name)
			if err != nil {
				t.Fatal(err)
			}
			if c.edit != nil {
				c.edit(files)
			}
			fr, err := ns.StartFRRFiles(files)
			if err != nil {
				t.Fatal(err)
			}
			if conf, ok := files["bgpd.conf"]; ok && strings.Contains(conf, "redistribute connected") {
				// A case that expects no finding must not pass on a bgpd
				// that has not read its configuration yet.
				if _, ok := lab.WaitFor(5*time.Second, func() bool {
					out, _ := fr.Vtysh("show running-config")
					return strings.Contains(out, "redistribute connected")
				}); !ok {
					t.Fatal("bgpd never showed its configuration")
				}
			}
			vtysh := c.vtysh
			if vtysh == "" {
				vtysh = "/usr/bin/vtysh"
			}
			cfg := filepath.Join(l.Dir, "config.yaml")
			if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`interface: lo
frr: {vtysh: %q, pathspace: %q}
control_socket: %s/aw.sock
state_dir: %s/state
services:
  - name: dns
    prefixes: [192.0.2.53/32, 2001:db8::53/128]
    checks: [{type: dns, server: "127.0.0.1:53", query: health.example.}]
`, vtysh, ns.Name, l.Dir, l.Dir)), 0o644); err != nil {
				t.Fatal(err)
			}
			if c.user != "" {
				giveToNobody(t, l.Dir, filepath.Dir(binary))
			}
			// The daemons need a moment to read their files and (for an
			// external LSA) to originate: ask again until the findings
			// match, for up to 15 s.
			var got []string
			var out []byte
			var code int
			if _, ok := lab.WaitFor(15*time.Second, func() bool {
				got, out, code = runDoctor(t, ns, cfg, c.user)
				return slices.Equal(got, slices.Sorted(slices.Values(c.want)))
			}); !ok {
				t.Fatalf("doctor (exit %d) found:\n  %s\nwant:\n  %s\nits report:\n%s", code, strings.Join(got, "\n  "), strings.Join(c.want, "\n  "), out)
			}
			wantCode := 0
			if slices.ContainsFunc(c.want, func(s string) bool { return strings.HasPrefix(s, "error ") }) {
				wantCode = 1
			}
			if code != wantCode {
				t.Errorf("doctor exited %d, want %d", code, wantCode)
			}
			if c.name == "recipe" {
				text, _ := exec.Command("ip", "netns", "exec", ns.Name, binary, "doctor", "--config", cfg).CombinedOutput()
				t.Logf("doctor on the recipe:\n%s", text)
			}
		})
	}
}

// runDoctor runs `anycast-watchdog doctor --json` in ns (as user, if
// given) and returns its errors and warnings, sorted, as "severity check
// object", with its output and exit code.
func runDoctor(t *testing.T, ns *lab.Namespace, cfg, user string) ([]string, []byte, int) {
	t.Helper()
	argv := []string{"netns", "exec", ns.Name}
	if user != "" {
		argv = append(argv, "setpriv", "--reuid", user, "--regid", user, "--clear-groups")
	}
	argv = append(argv, binary, "doctor", "--json", "--config", cfg)
	cmd := exec.Command("ip", argv...)
	out, err := cmd.Output()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code != 1 {
		t.Fatalf("doctor: %v: %s", err, out)
	}
	var r doctor.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("doctor --json: %v: %s", err, out)
	}
	var got []string
	for _, f := range r.Findings {
		if f.Severity != doctor.Info {
			got = append(got, fmt.Sprintf("%s %s %s", f.Severity, f.Check, f.Object))
		}
	}
	slices.Sort(got)
	return got, out, code
}
