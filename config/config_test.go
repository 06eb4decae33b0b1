package config

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/trust"
)

var update = flag.Bool("update", false, "rewrite testdata/*.err from the current messages")

// Each testdata/invalid-*.yaml breaks one rule; its .err file holds the exact
// text an operator sees from check-config.
func TestInvalidConfigsReportEveryProblem(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			c, err := Load(f)
			if err == nil {
				t.Fatalf("Load(%s) accepted the file: %+v", f, c)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				if werr := os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644); werr != nil {
					t.Fatal(werr)
				}
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("missing golden file (run go test ./config -update): %v", rerr)
			}
			if got := err.Error() + "\n"; got != string(want) {
				t.Errorf("Load(%s) error:\n%s\nwant:\n%s", f, got, want)
			}
		})
	}
}

func TestFullConfigKeepsEveryValueAndNormalises(t *testing.T) {
	c, err := Load("testdata/valid-full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Interface: "lo", LastResortInterface: "lr0", OnExit: OnExitWithdraw, IP: "/sbin/ip", LogLevel: "debug", LogFormat: "json",
		FRR: FRR{Vtysh: "/usr/bin/vtysh", Pathspace: "node1", Timeout: 3 * time.Second, Verify: false,
			FleetInterval: 2 * time.Second, LastResortMetric: 60000},
		ControlSocket: "/run/aw/control.sock", StateDir: "/var/lib/aw", MetricsListen: "",
		Damping: Damping{Mode: "suppress", Penalty: 500, HalfLife: 10 * time.Minute, Suppress: 1500, Reuse: 750, MaxSuppress: time.Hour},
		Services: []Service{{
			Name:     "dns",
			Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32"), netip.MustParsePrefix("2001:db8::53/128")},
			Interval: time.Second, FastInterval: 200 * time.Millisecond, Timeout: 500 * time.Millisecond,
			Rise: 3, Fall: 2, FailOpen: false, DrainGrace: 5 * time.Second,
			// The keys it sets, the rest from the top-level block.
			Damping: Damping{Mode: "observe", Penalty: 500, HalfLife: 2 * time.Minute, Suppress: 1500, Reuse: 750, MaxSuppress: 20 * time.Minute},
			Checks: []Check{
				{Type: "dns", Timeout: 500 * time.Millisecond, Server: "127.0.0.1:53", Query: "health.example.",
					QType: "AAAA", Transport: "tcp", Rcode: "NXDOMAIN", AnswerContains: "198.51.100.99", OnFail: OnFailWithdraw},
				{Type: "tcp", Timeout: 500 * time.Millisecond, Address: "127.0.0.1:53", OnFail: OnFailDegrade},
				{Type: "http", Timeout: 500 * time.Millisecond, URL: "http://127.0.0.1:8080/healthz", Status: 204, BodyContains: "ok", OnFail: OnFailReport},
				{Type: "exec", Timeout: 900 * time.Millisecond, Command: []string{"/bin/true", "-H", "127.0.0.1"}, OnFail: OnFailWithdraw},
			},
			Units: []string{"unbound.service", "dnsdist@main.service"},
		}},
		Path: "testdata/valid-full.yaml",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", c, want)
	}
}

func TestAbsentKeysTakeDefaults(t *testing.T) {
	c, err := Load("testdata/valid-minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Interface != "lo" || c.LastResortInterface != "anycast-lr" || c.IP != "/usr/sbin/ip" || c.OnExit != OnExitKeep || c.LogLevel != "info" || c.LogFormat != "text" ||
		c.FRR != (FRR{Vtysh: "/usr/bin/vtysh", Timeout: 2 * time.Second, Verify: true, FleetInterval: 5 * time.Second, LastResortMetric: 65535}) ||
		c.ControlSocket != "/run/anycast-watchdog/control.sock" || c.StateDir != "/var/lib/anycast-watchdog" ||
		c.MetricsListen != "127.0.0.1:9795" {
		t.Errorf("global defaults: %+v", c)
	}
	web := c.Services[0]
	if web.Interval != time.Second || web.FastInterval != 200*time.Millisecond || web.Timeout != 500*time.Millisecond ||
		web.Rise != 3 || web.Fall != 2 || !web.FailOpen || web.DrainGrace != 2*time.Second || web.Checks[0].Timeout != 500*time.Millisecond {
		t.Errorf("service defaults: %+v", web)
	}
	// The defaults: one or two withdrawals never damp, three a few
	// minutes apart do.
	if want := (Damping{Mode: "suppress", Penalty: 1000, HalfLife: 5 * time.Minute, Suppress: 2000, Reuse: 1000, MaxSuppress: 30 * time.Minute}); c.Damping != want || web.Damping != want {
		t.Errorf("damping defaults: top %+v, service %+v, want %+v", c.Damping, web.Damping, want)
	}
	// A service faster than the defaults gets them capped at its interval
	// rather than an error about keys it never wrote.
	fast := c.Services[1]
	if fast.FastInterval != 100*time.Millisecond || fast.Timeout != 100*time.Millisecond {
		t.Errorf("fast service: fast_interval %s timeout %s, want both 100ms", fast.FastInterval, fast.Timeout)
	}
	dns := fast.Checks[0]
	if dns.Server != "[::1]:5353" || dns.QType != "A" || dns.Transport != "udp" || dns.Rcode != "NOERROR" {
		t.Errorf("dns check defaults: %+v", dns)
	}
}

func TestEmptyServiceListIsValid(t *testing.T) {
	c, err := Load("testdata/valid-no-services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) != 0 {
		t.Errorf("services: %+v", c.Services)
	}
}

func TestLoadMissingFileNamesIt(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), "testdata/does-not-exist.yaml") || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("error %v, want a not-exist error naming the file", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestCheckString(t *testing.T) {
	c, err := Load("testdata/valid-full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range c.Services[0].Checks {
		got = append(got, ch.String())
	}
	want := []string{
		"dns 127.0.0.1:53 health.example./AAAA tcp",
		"tcp 127.0.0.1:53",
		"http http://127.0.0.1:8080/healthz",
		"exec /bin/true -H 127.0.0.1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// fakeSystem knows one user, prober (uid 1500, groups 1500 and 44).
type fakeSystem struct {
	self      int
	canSwitch bool
}

func (fakeSystem) LookupUser(name string) (*user.User, error) {
	switch name {
	case "prober", "1500":
		return &user.User{Uid: "1500", Gid: "1500", Username: "prober"}, nil
	case "daemon-itself":
		return &user.User{Uid: "998", Gid: "998", Username: "daemon-itself"}, nil
	}
	if _, err := strconv.Atoi(name); err == nil {
		return nil, user.UnknownUserIdError(1)
	}
	return nil, user.UnknownUserError(name)
}

func (fakeSystem) GroupIDs(u *user.User) ([]string, error) { return []string{u.Gid, "44"}, nil }

func (f fakeSystem) Self() (int, bool, error) { return f.self, f.canSwitch, nil }

func (fakeSystem) TrustProgram(path string) error { return trust.Program(path, trust.Self()) }

func TestExecCheckUser(t *testing.T) {
	for _, tc := range []struct {
		name, user string
		sys        fakeSystem
		want       *Credential
		wantErr    string
	}{
		{"by name", "prober", fakeSystem{0, true}, &Credential{UID: 1500, GID: 1500, Groups: []uint32{1500, 44}}, ""},
		{"by uid", "1500", fakeSystem{0, true}, &Credential{UID: 1500, GID: 1500, Groups: []uint32{1500, 44}}, ""},
		{"the daemon's own user needs no switch", "daemon-itself", fakeSystem{998, false}, nil, ""},
		{"unknown name", "nosuch", fakeSystem{0, true}, nil,
			`checks.yaml:7: services[0].checks[0].user: "nosuch": no such user`},
		{"unknown uid", "4242", fakeSystem{0, true}, nil,
			`checks.yaml:7: services[0].checks[0].user: "4242": no such user`},
		{"daemon cannot switch users", "prober", fakeSystem{998, false}, nil,
			`checks.yaml:7: services[0].checks[0].user: "prober": anycast-watchdog runs as uid 998 without CAP_SETUID and CAP_SETGID, ` +
				`so it cannot start checks as uid 1500; grant both (see anycast-watchdog.yaml(5)) or drop user`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := `services:
  - name: web
    prefixes: [192.0.2.80/32]
    checks:
      - type: exec
        command: [/bin/true]
        user: "` + tc.user + `"
`
			c, err := parse("checks.yaml", []byte(doc), tc.sys)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Services[0].Checks[0].Credential; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("credential %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestReloadableTo(t *testing.T) {
	running := &Config{Interface: "lo", LastResortInterface: "anycast-lr", ControlSocket: "/run/aw.sock", MetricsListen: "127.0.0.1:9795",
		StateDir: "/var/lib/aw", LogLevel: "info"}
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"log level may change", func(c *Config) { c.LogLevel = "debug" }, ""},
		{"interface", func(c *Config) { c.Interface = "dummy0" }, `new.yaml: interface cannot change on reload ("lo" → "dummy0"): restart the daemon`},
		{"control socket", func(c *Config) { c.ControlSocket = "/run/x.sock" }, `new.yaml: control_socket cannot change on reload ("/run/aw.sock" → "/run/x.sock"): restart the daemon`},
		{"metrics listener", func(c *Config) { c.MetricsListen = "" }, `new.yaml: metrics_listen cannot change on reload ("127.0.0.1:9795" → ""): restart the daemon`},
		{"last-resort interface", func(c *Config) { c.LastResortInterface = "" }, `new.yaml: last_resort_interface cannot change on reload ("anycast-lr" → ""): restart the daemon`},
		// The drains live in state_dir: a reload to another would forget them.
		{"state dir", func(c *Config) { c.StateDir = "/tmp/aw" }, `new.yaml: state_dir cannot change on reload ("/var/lib/aw" → "/tmp/aw"): restart the daemon`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := *running
			next.Path = "new.yaml"
			tc.change(&next)
			err := running.ReloadableTo(&next)
			if (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) {
				t.Errorf("ReloadableTo = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// An exec check program that others can change would run their code with
// the daemon's privileges: the load refuses it, naming the file, line, key,
// the component at fault, its owner and mode, and the fix. vtysh and ip are
// judged the same way; the rule's cases are package trust's tests.
func TestUntrustedProgramsAreRefused(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "check.sh")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(prog, 0o777) // past the umask
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte("ip: "+prog+"\nservices:\n  - name: web\n    prefixes: [203.0.113.80/32]\n    checks:\n      - type: exec\n        command: ["+prog+"]\n"), 0o644)
	_, err := Load(cfg)
	mode := fmt.Sprintf("(owner uid %d, group gid %d, mode -rwxrwxrwx)", os.Geteuid(), os.Getegid())
	for _, want := range []string{
		"2 problems:",
		cfg + ":1: ip: " + prog + " is writable by everyone " + mode,
		cfg + ":7: services[0].checks[0].command[0]: " + prog + " is writable by everyone " + mode +
			": another user could replace it and run code with the daemon's privileges; chmod go-w " + prog,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load = %v, want it to say %q", err, want)
		}
	}
	if _, err := LoadUnjudged(cfg); err != nil {
		t.Errorf("LoadUnjudged leaves programs to doctor, yet: %v", err)
	}
	if c, err := Load("testdata/valid-full.yaml"); err != nil || len(c.Warnings) != 0 {
		t.Errorf("root-owned programs in /bin: %v, warnings %q", err, c.Warnings)
	}
	// A missing vtysh is not refused: the read-back and doctor say so.
	os.WriteFile(cfg, []byte("frr:\n  vtysh: /nonexistent/vtysh\n"), 0o644)
	if _, err := Load(cfg); err != nil {
		t.Errorf("a missing vtysh: %v", err)
	}
}

func TestKeys(t *testing.T) {
	keys := Keys()
	for _, want := range []string{"interface", "frr.fleet_interval", "services", "services[].fail_open",
		"services[].checks[].type", "services[].checks[].answer_contains", "services[].checks[].user"} {
		if !slices.Contains(keys, want) {
			t.Errorf("Keys() lacks %q: %v", want, keys)
		}
	}
	for _, k := range keys {
		if strings.Contains(k, "credential") || strings.Contains(k, "path") && !strings.Contains(k, "pathspace") {
			t.Errorf("Keys() lists %q, which no file may set", k)
		}
	}
}

// A tls check: days in min_validity, its default, and the warning when it
// would withdraw on an expiring certificate that every node shares.
func TestTLSCheck(t *testing.T) {
	for _, tt := range []struct {
		name, check string
		validity    time.Duration
		warns       bool
	}{
		{"default, withdraw: warned", `{type: tls, address: 127.0.0.1:853, server_name: dns.example}`, 14 * 24 * time.Hour, true},
		{"days and hours, report", `{type: tls, address: "[::1]:853", server_name: dns.example, min_validity: 9d4h, on_fail: report}`, 9*24*time.Hour + 4*time.Hour, false},
		{"no validity asked, withdraw", `{type: tls, address: 127.0.0.1:853, server_name: dns.example, min_validity: 0s}`, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte("services:\n  - {name: dot, prefixes: [192.0.2.53/32], checks: [{type: tcp, address: 127.0.0.1:53}, "+tt.check+"]}\n"))
			if err != nil {
				t.Fatal(err)
			}
			ch := c.Services[0].Checks[1]
			if ch.MinValidity != tt.validity || ch.String() != "tls "+ch.Address+" dns.example" {
				t.Errorf("min_validity %s, described %q", ch.MinValidity, ch)
			}
			warned := len(c.Warnings) == 1 && strings.Contains(c.Warnings[0], "t.yaml:2: services[0].checks[1].on_fail: a tls check with min_validity 336h0m0s withdraws the service")
			if warned != tt.warns {
				t.Errorf("warnings %q, want a warning: %v", c.Warnings, tt.warns)
			}
		})
	}
}

// DNS over TLS: port 853 unless given, server_name required (testdata).
func TestDNSOverTLSDefaultsTo853(t *testing.T) {
	c, err := Parse("t.yaml", []byte("services:\n  - {name: dot, prefixes: [192.0.2.53/32], checks: [{type: dns, server: 127.0.0.1, query: health.example, transport: TLS, server_name: dns.example}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ch := c.Services[0].Checks[0]; ch.Server != "127.0.0.1:853" || ch.Transport != "tls" {
		t.Errorf("server %q, transport %q", ch.Server, ch.Transport)
	}
}
