package frr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func sorted(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return ps
}

// The fixtures were captured from FRR 8.4.4 in the lab: node 1 with
// 203.0.113.1/32 (router-id), 192.0.2.53/32 and 2001:db8::53/128 on lo.
func TestParse(t *testing.T) {
	tests := []struct {
		file  string
		parse func([]byte) ([]netip.Prefix, error)
		want  []netip.Prefix
	}{
		{"ospf-router-self-present.json", ParseRouterLSAs, prefixes("192.0.2.53/32", "198.51.100.0/31", "203.0.113.1/32")},
		{"ospf-router-self-withdrawn.json", ParseRouterLSAs, prefixes("198.51.100.0/31", "203.0.113.1/32")},
		{"both-back-to-back.json", ParseRouterLSAs, prefixes("198.51.100.0/31", "203.0.113.1/32")},
		{"ospf6-intra-prefix-self-present.json", ParseIntraPrefixLSAs, prefixes("2001:db8::53/128")},
		// Just after the withdrawal the LSA is still listed, at MaxAge.
		{"ospf6-intra-prefix-self-withdrawn.json", ParseIntraPrefixLSAs, nil},
		{"ospf6-intra-prefix-self-flushed.json", ParseIntraPrefixLSAs, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := tt.parse(read(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sorted(got), tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRejectsBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"empty":             "",
		"not json":          "% Unknown command: show ip ospf database router self-originate json",
		"bad stub address":  `{"Router Link States":{"0.0.0.0":{"1.1.1.1":{"routerLinks":{"l":{"linkType":"Stub Network","networkAddress":"x","networkMask":"255.255.255.255"}}}}}}`,
		"non-contiguous":    `{"Router Link States":{"0.0.0.0":{"1.1.1.1":{"routerLinks":{"l":{"linkType":"Stub Network","networkAddress":"192.0.2.53","networkMask":"255.0.255.0"}}}}}}`,
		"wrong shape":       `{"Router Link States":[1,2,3]}`,
		"truncated":         `{"Router Link States":{"0.0.0.0":{`,
		"v6 bad prefix":     `{"areaScopedLinkStateDb":[{"lsa":[{"type":"Intra-Prefix","prefix":[{"prefix":"2001:db8::53"}]}]}]}`,
		"v6 wrong shape":    `{"areaScopedLinkStateDb":{"lsa":1}}`,
		"v6 prefix numeric": `{"areaScopedLinkStateDb":[{"lsa":[{"type":"Intra-Prefix","prefix":[{"prefix":53}]}]}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			parse := ParseRouterLSAs
			if strings.HasPrefix(name, "v6") {
				parse = ParseIntraPrefixLSAs
			}
			if got, err := parse([]byte(in)); err == nil {
				t.Errorf("parsed %q as %v, want an error", in, got)
			}
		})
	}
}

func TestClassifyStderr(t *testing.T) {
	tests := []struct {
		stderrFile string
		socket     error
		want       Kind
	}{
		{"vtysh-not-running.stderr", os.ErrNotExist, NotRunning},
		{"vtysh-daemon-stopped.stderr", os.ErrNotExist, NotRunning},
		{"vtysh-permission-denied.stderr", os.ErrPermission, PermissionDenied},
		// Older vtysh without the hint: the socket tells.
		{"vtysh-daemon-stopped.stderr", os.ErrPermission, PermissionDenied},
		{"vtysh-pathspace-warning.stderr", nil, Failed},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.stderrFile, tt.socket), func(t *testing.T) {
			if got := classifyStderr(string(read(t, tt.stderrFile)), tt.socket); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestHelperProcess plays vtysh: FAKE_VTYSH picks the behaviour measured on
// the real one.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("FAKE_VTYSH")
	if mode == "" {
		return
	}
	warn := "% Can't open configuration file /etc/frr/lab/vtysh.conf due to 'No such file or directory'."
	switch mode {
	case "present":
		fmt.Fprintln(os.Stderr, warn) // harmless under -N, exit 0
		os.Stdout.Write(read(t, "ospf-router-self-present.json"))
	case "stopped":
		fmt.Fprintf(os.Stderr, "%s\nExiting: failed to connect to any daemons.\n", warn)
		os.Exit(1)
	case "frozen":
		time.Sleep(time.Hour)
	case "args":
		fmt.Print(strings.Join(os.Args[3:], "|")) // after: binary -test.run=… --
	}
	os.Exit(0)
}

func fakeVtysh(t *testing.T, mode string) (string, command.Runner) {
	t.Setenv("FAKE_VTYSH", mode)
	run := func(ctx context.Context, argv ...string) ([]byte, error) {
		return command.Run(ctx, append([]string{os.Args[0], "-test.run=TestHelperProcess", "--"}, argv[1:]...)...)
	}
	return os.Args[0], run
}

func TestOriginatedThroughVtysh(t *testing.T) {
	ctx := context.Background()
	t.Run("present, with the harmless pathspace warning", func(t *testing.T) {
		vtysh, run := fakeVtysh(t, "present")
		// Generous: starting the race-built test binary is slow on a busy machine.
		got, err := New(run, vtysh, "lab", 10*time.Second).Originated(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(got, netip.MustParsePrefix("192.0.2.53/32")) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("ospfd stopped", func(t *testing.T) {
		vtysh, run := fakeVtysh(t, "stopped")
		_, err := New(run, vtysh, "lab-that-does-not-exist", 10*time.Second).Originated(ctx, false)
		var fe *Error
		if !errors.As(err, &fe) || fe.Kind != NotRunning || err.Error() != "ospfd is not running" {
			t.Errorf("error %v", err)
		}
	})
	t.Run("ospf6d frozen: the deadline fires", func(t *testing.T) {
		vtysh, run := fakeVtysh(t, "frozen")
		start := time.Now()
		_, err := New(run, vtysh, "lab", 200*time.Millisecond).Originated(ctx, true)
		var fe *Error
		if !errors.As(err, &fe) || fe.Kind != Timeout || err.Error() != "ospf6d did not answer in time (hung or overloaded)" {
			t.Errorf("error %v", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("took %s with a 200ms timeout", took)
		}
	})
	t.Run("vtysh missing", func(t *testing.T) {
		_, err := New(command.Run, "/nonexistent/vtysh", "", 10*time.Second).Originated(ctx, false)
		var fe *Error
		if !errors.As(err, &fe) || fe.Kind != VtyshMissing {
			t.Errorf("error %v", err)
		}
	})
	t.Run("argument vector", func(t *testing.T) {
		for _, tt := range []struct {
			pathspace string
			v6        bool
			want      string
		}{
			{"", false, "-d|ospfd|-c|" + showRouterLSAs},
			{"node1", true, "-N|node1|-d|ospf6d|-c|" + showIntraPrefixLSAs},
		} {
			var argv []string
			run := func(_ context.Context, a ...string) ([]byte, error) {
				argv = a
				return read(t, "ospf6-intra-prefix-self-present.json"), nil
			}
			New(run, "vtysh", tt.pathspace, time.Second).Originated(ctx, tt.v6)
			if got := strings.Join(argv[1:], "|"); got != tt.want || argv[0] != "vtysh" {
				t.Errorf("argv %q, want vtysh %s", argv, tt.want)
			}
		}
	})
}
