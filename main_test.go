package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/doctor"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

func TestCommandLine(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `services:
  - name: web
    prefixes: [203.0.113.80/32]
    checks: [{type: tcp, address: "`+l.Addr().String()+`"}]
  - name: dns
    prefixes: [192.0.2.53/32]
    checks: [{type: tcp, address: "127.0.0.1:1"}]
`)
	bad := write("bad.yaml", "services:\n  - name: dns\n    rise: 0\n")

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  []string
	}{
		{name: "version", args: []string{"version"}, wantOut: []string{"anycast-watchdog "}},
		{name: "help", args: []string{"--help"}, wantOut: []string{"Usage: anycast-watchdog", "check-config"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: []string{`unknown command "frobnicate"`}},
		{name: "help command", args: []string{"help"}, wantOut: []string{"Usage: anycast-watchdog", "Commands to the running daemon"}},
		{name: "run with arguments", args: []string{"run", "--config", good, "now"}, wantCode: 2, wantErr: []string{`anycast-watchdog run: unexpected arguments ["now"]`}},
		{name: "version takes no flags", args: []string{"version", "--json"}, wantCode: 2, wantErr: []string{"flag provided but not defined: -json"}},
		{name: "check-config --help", args: []string{"check-config", "--help"}, wantOut: []string{"Usage: anycast-watchdog"}},
		{name: "unknown flag", args: []string{"run", "--cfg", good}, wantCode: 2, wantErr: []string{"flag provided but not defined: -cfg"}},
		{name: "check-config valid", args: []string{"check-config", "--config", good}, wantOut: []string{"valid, 2 services"}},
		{name: "check-config lists every problem", args: []string{"check-config", "--config", bad}, wantCode: 1,
			wantErr: []string{"3 problems:", "services[0].prefixes: at least one prefix is required",
				"services[0].rise: 0 must be at least 1", "services[0].checks: at least one check is required"}},
		{name: "check-config missing file", args: []string{"check-config", "--config", filepath.Join(dir, "nope.yaml")}, wantCode: 1,
			wantErr: []string{"read config: open " + filepath.Join(dir, "nope.yaml") + ": no such file or directory"}},
		{name: "run refuses a bad config", args: []string{"run", "--config", bad}, wantCode: 1, wantErr: []string{"not starting:", "3 problems"}},
		{name: "probe one passing service", args: []string{"probe", "--config", good, "web"},
			wantOut: []string{"SERVICE", "web      tcp " + l.Addr().String() + "  pass"}},
		{name: "probe reports failures and exits 1", args: []string{"probe", "--config", good}, wantCode: 1,
			wantOut: []string{"dns      tcp 127.0.0.1:1", "FAIL", "refused: dial tcp 127.0.0.1:1"}},
		{name: "doctor with extra arguments", args: []string{"doctor", "--config", good, "now"}, wantCode: 2, wantErr: []string{`anycast-watchdog doctor: unexpected arguments ["now"]`}},
		{name: "doctor with a bad config", args: []string{"doctor", "--config", bad}, wantCode: 2, wantErr: []string{"anycast-watchdog doctor:", "3 problems"}},
		{name: "doctor unknown flag", args: []string{"doctor", "--yaml"}, wantCode: 2, wantErr: []string{"flag provided but not defined: -yaml"}},
		{name: "probe unknown service", args: []string{"probe", "--config", good, "ntp"}, wantCode: 2, wantErr: []string{`no service "ntp"`}},
		{name: "status with no daemon", args: []string{"status", "--socket", filepath.Join(dir, "none.sock")}, wantCode: 1,
			wantErr: []string{"anycast-watchdog status: anycast-watchdog is not running: no control socket at " + filepath.Join(dir, "none.sock")}},
		{name: "drain needs services or --all", args: []string{"drain", "--socket", "x"}, wantCode: 2, wantErr: []string{"name services or give --all"}},
		{name: "drain not both", args: []string{"drain", "dns", "--all", "--socket", "x"}, wantCode: 2, wantErr: []string{"name services or give --all"}},
		{name: "check one service", args: []string{"check", "dns", "web", "--socket", "x"}, wantCode: 2, wantErr: []string{"name one service"}},
		{name: "status takes no names", args: []string{"status", "dns", "--socket", "x"}, wantCode: 2, wantErr: []string{"takes no service names"}},
		{name: "bad --for", args: []string{"drain", "dns", "--for", "soon", "--socket", "x"}, wantCode: 2, wantErr: []string{`invalid value "soon" for flag -for`}},
		{name: "drain --for 0", args: []string{"drain", "dns", "--for", "0", "--socket", "x"}, wantCode: 2,
			wantErr: []string{"--for 0s: want a positive duration such as 30m"}},
		{name: "client help", args: []string{"drain", "--help"}, wantOut: []string{"drain SVC…|--all"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := realMain(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tt.wantCode, &stdout, &stderr)
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, &stdout)
				}
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, &stderr)
				}
			}
		})
	}
}

// check-config asks systemd about the watched units: one it does not know,
// or cannot read, is a warning naming where the configuration lists it;
// a bus that cannot be asked is one warning.
func TestUnitWarnings(t *testing.T) {
	cfg, err := config.Parse("u.yaml", []byte(`services:
  - name: dns
    prefixes: [192.0.2.53/32]
    units: [unbound.service, unbund.service]
    checks: [{type: tcp, address: "127.0.0.1:53"}]
  - name: dot
    prefixes: [192.0.2.54/32]
    units: [unbund.service]
    checks: [{type: tcp, address: "127.0.0.1:853"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	known := func(_ context.Context, names []string) ([]status.Unit, error) {
		var out []status.Unit
		for _, n := range names {
			u := status.Unit{Name: n, LoadState: "loaded", ActiveState: "active", SubState: "running", Watched: true}
			if n == "unbund.service" {
				u.LoadState = "not-found"
			}
			out = append(out, u)
		}
		return out, nil
	}
	for _, tt := range []struct {
		name   string
		lookup doctor.UnitReader
		want   []string
	}{
		{"one not found, named twice", known, []string{
			"u.yaml: services[0].units[1]: unbund.service: systemd has it not-found; it takes nothing out until systemd loads it",
			"u.yaml: services[1].units[0]: unbund.service: systemd has it not-found; it takes nothing out until systemd loads it"}},
		{"no bus", func(context.Context, []string) ([]status.Unit, error) {
			return nil, errors.New("connect to the system bus: no such file or directory")
		}, []string{"u.yaml: units: cannot ask systemd about the watched units (connect to the system bus: no such file or directory); the daemon falls back to its checks while it cannot"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := unitWarnings(cfg, tt.lookup); !slices.Equal(got, tt.want) {
				t.Errorf("unitWarnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
