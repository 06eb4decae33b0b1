package ifaddr

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
)

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// The fixtures were captured from iproute2 6.1 in a scratch namespace.
func TestParseShow(t *testing.T) {
	tests := []struct {
		file string
		want Link
	}{
		{"testdata/lo-with-anycast.json", Link{Name: "lo", Up: true, Prefixes: []netip.Prefix{
			pfx("127.0.0.1/8"), pfx("192.0.2.53/32"), pfx("2001:db8::53/128"), pfx("::1/128")}}},
		{"testdata/lo-plain.json", Link{Name: "lo", Up: true, Prefixes: []netip.Prefix{pfx("127.0.0.1/8"), pfx("::1/128")}}},
		{"testdata/lo-down.json", Link{Name: "lo", Up: false, Prefixes: []netip.Prefix{pfx("127.0.0.1/8")}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseShow(mustRead(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseShowRejectsBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"not json":        `Device "lo" does not exist.`,
		"no interface":    `[]`,
		"bad address":     `[{"ifname":"lo","addr_info":[{"family":"inet","local":"192.0.2.300","prefixlen":32}]}]`,
		"bad prefix len":  `[{"ifname":"lo","addr_info":[{"family":"inet","local":"192.0.2.3","prefixlen":33}]}]`,
		"two interfaces":  `[{"ifname":"lo"},{"ifname":"eth0"}]`,
		"truncated json":  `[{"ifname":"lo","addr_info":[{"fam`,
		"wrong json type": `{"ifname":"lo"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if l, err := ParseShow([]byte(in)); err == nil {
				t.Errorf("ParseShow(%q) = %+v, want an error", in, l)
			}
		})
	}
}

func TestParseShowKeepsHostBits(t *testing.T) {
	l, err := ParseShow([]byte(`[{"ifname":"lo","flags":["UP"],"addr_info":[{"family":"inet","local":"192.0.2.53","prefixlen":24}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if l.Has(pfx("192.0.2.53/32")) || !l.Has(netip.PrefixFrom(netip.MustParseAddr("192.0.2.53"), 24)) {
		t.Errorf("192.0.2.53/24 must not count as the /32: %+v", l)
	}
}

// exitError stands for *exec.ExitError: ip ran and exited non-zero.
type exitError struct{ code int }

func (e exitError) Error() string { return "exit status 2" }
func (e exitError) ExitCode() int { return e.code }

// fakeIP records each argv and answers with the canned stderr, if any.
type fakeIP struct {
	calls  [][]string
	stderr string
	err    error // a non-exit failure: not found, timeout
}

func (f *fakeIP) run(_ context.Context, argv ...string) ([]byte, error) {
	f.calls = append(f.calls, argv)
	switch {
	case f.err != nil:
		return nil, &command.Error{Argv: argv, Err: f.err}
	case f.stderr != "":
		return nil, &command.Error{Argv: argv, Err: exitError{2}, Stderr: f.stderr}
	}
	return nil, nil
}

func TestAddAndDel(t *testing.T) {
	tests := []struct {
		name     string
		op       string
		prefix   string
		stderr   string
		err      error
		wantArgv string
		wantErr  string
	}{
		{name: "add v4", op: "add", prefix: "192.0.2.53/32", wantArgv: "ip addr add 192.0.2.53/32 dev lo"},
		{name: "add v6 without DAD", op: "add", prefix: "2001:db8::53/128", wantArgv: "ip addr add 2001:db8::53/128 dev lo nodad"},
		{name: "del v4", op: "del", prefix: "192.0.2.53/32", wantArgv: "ip addr del 192.0.2.53/32 dev lo"},
		// Captured from iproute2 6.1 and from older iproute2.
		{name: "add present v4", op: "add", prefix: "192.0.2.53/32", stderr: "Error: ipv4: Address already assigned."},
		{name: "add present v6", op: "add", prefix: "2001:db8::53/128", stderr: "Error: ipv6: address already assigned."},
		{name: "add present, old ip", op: "add", prefix: "192.0.2.53/32", stderr: "RTNETLINK answers: File exists"},
		{name: "del absent v4", op: "del", prefix: "192.0.2.53/32", stderr: "Error: ipv4: Address not found."},
		{name: "del absent v6", op: "del", prefix: "2001:db8::53/128", stderr: "Error: ipv6: address not found."},
		{name: "del absent, old ip", op: "del", prefix: "192.0.2.53/32", stderr: "RTNETLINK answers: Cannot assign requested address"},
		{name: "add, no permission", op: "add", prefix: "192.0.2.53/32", stderr: "RTNETLINK answers: Operation not permitted",
			wantErr: "add 192.0.2.53/32 to lo: ip addr add 192.0.2.53/32 dev lo: exit status 2: RTNETLINK answers: Operation not permitted"},
		{name: "del, no device", op: "del", prefix: "192.0.2.53/32", stderr: `Cannot find device "lo"`,
			wantErr: `remove 192.0.2.53/32 from lo: ip addr del 192.0.2.53/32 dev lo: exit status 2: Cannot find device "lo"`},
		{name: "ip missing is not success", op: "del", prefix: "192.0.2.53/32", err: errors.New(`exec: "ip": executable file not found in $PATH`),
			wantErr: `remove 192.0.2.53/32 from lo: ip addr del 192.0.2.53/32 dev lo: exec: "ip": executable file not found in $PATH`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeIP{stderr: tt.stderr, err: tt.err}
			c := New(f.run, "ip", "lo")
			op := c.Add
			if tt.op == "del" {
				op = c.Del
			}
			err := op(context.Background(), pfx(tt.prefix))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("%s: %v, want success", tt.op, err)
			}
			if tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("%s error:\n%v\nwant:\n%s", tt.op, err, tt.wantErr)
			}
			if tt.wantArgv != "" && (len(f.calls) != 1 || strings.Join(f.calls[0], " ") != tt.wantArgv) {
				t.Errorf("ran %q, want %q", f.calls, tt.wantArgv)
			}
		})
	}
}

func TestShow(t *testing.T) {
	capture := mustRead(t, "testdata/lo-with-anycast.json")
	var argv []string
	c := New(func(_ context.Context, a ...string) ([]byte, error) { argv = a; return capture, nil }, "/usr/sbin/ip", "lo")
	l, err := c.Show(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(argv, " ") != "/usr/sbin/ip -j addr show dev lo" {
		t.Errorf("ran %q", argv)
	}
	if !l.Up || !l.Has(pfx("192.0.2.53/32")) || !l.Has(pfx("2001:db8::53/128")) {
		t.Errorf("Show = %+v", l)
	}
}

// scriptedIP answers each command (argv without the program) from a map;
// commands not in it succeed with no output.
type scriptedIP struct {
	calls   []string
	answers map[string]struct {
		out    string
		stderr string
		code   int
	}
}

func (s *scriptedIP) run(_ context.Context, argv ...string) ([]byte, error) {
	cmd := strings.Join(argv[1:], " ")
	s.calls = append(s.calls, cmd)
	a := s.answers[cmd]
	if a.code != 0 {
		return nil, &command.Error{Argv: argv, Err: exitError{a.code}, Stderr: a.stderr}
	}
	return []byte(a.out), nil
}

// The answers are iproute2 6.1's, captured on this kind of machine, whose
// kernel has no dummy type.
func TestEnsure(t *testing.T) {
	const (
		show    = "-j addr show dev anycast-lr"
		add     = "link add dev anycast-lr type dummy"
		up      = "link set dev anycast-lr up"
		downOut = `[{"ifname":"anycast-lr","flags":["BROADCAST","NOARP"],"addr_info":[]}]`
		upOut   = `[{"ifname":"anycast-lr","flags":["BROADCAST","NOARP","UP","LOWER_UP"],"addr_info":[]}]`
	)
	type answer = struct {
		out    string
		stderr string
		code   int
	}
	missing := answer{stderr: `Device "anycast-lr" does not exist.`, code: 1}
	for _, tt := range []struct {
		name      string
		answers   map[string]answer
		wantDone  string
		wantCalls []string
		wantErr   string
	}{
		{"up already", map[string]answer{show: {out: upOut}}, "", []string{show}, ""},
		{"down", map[string]answer{show: {out: downOut}}, "set up", []string{show, up}, ""},
		{"missing", map[string]answer{show: missing}, "created as a dummy interface and set up", []string{show, add, up}, ""},
		{"missing, no dummy in this kernel", map[string]answer{show: missing, add: {stderr: "Error: Unknown device type.", code: 2}},
			"", []string{show, add},
			"create anycast-lr as a dummy interface: ip link add dev anycast-lr type dummy: exit status 2: Error: Unknown device type."},
		{"created meanwhile by someone else", map[string]answer{show: missing, add: {stderr: "RTNETLINK answers: File exists", code: 2}},
			"created as a dummy interface and set up", []string{show, add, up}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ip := &scriptedIP{answers: tt.answers}
			done, err := New(ip.run, "ip", "anycast-lr").Ensure(context.Background())
			if done != tt.wantDone || !reflect.DeepEqual(ip.calls, tt.wantCalls) {
				t.Errorf("Ensure = %q, calls %q; want %q, %q", done, ip.calls, tt.wantDone, tt.wantCalls)
			}
			if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
	_, err := New((&scriptedIP{answers: map[string]answer{show: missing}}).run, "ip", "anycast-lr").Show(context.Background())
	if !errors.Is(err, ErrNoDevice) {
		t.Errorf("Show of a missing interface: %v, want ErrNoDevice", err)
	}
}

// Move is one ip -batch call, the add first or the delete first.
func TestMove(t *testing.T) {
	for _, tt := range []struct {
		name        string
		prefix      string
		deleteFirst bool
		stderr      string
		wantCmd     string
		wantErr     string
	}{
		{name: "v4", prefix: "192.0.2.53/32", wantCmd: "addr add 192.0.2.53/32 dev anycast-lr\naddr del 192.0.2.53/32 dev lo\n"},
		{name: "v6 without DAD", prefix: "2001:db8::53/128", wantCmd: "addr add 2001:db8::53/128 dev anycast-lr nodad\naddr del 2001:db8::53/128 dev lo\n"},
		{name: "v4 delete first", prefix: "192.0.2.53/32", deleteFirst: true, wantCmd: "addr del 192.0.2.53/32 dev lo\naddr add 192.0.2.53/32 dev anycast-lr\n"},
		// Captured from iproute2 6.1's -force -batch: each failure is
		// followed by the file and line that failed.
		{name: "already moved", prefix: "192.0.2.53/32",
			stderr: "Error: ipv4: Address already assigned.\nCommand failed /tmp/x.batch:1\nError: ipv4: Address not found.\nCommand failed /tmp/x.batch:2"},
		{name: "no such device", prefix: "192.0.2.53/32", stderr: "Cannot find device \"anycast-lr\"\nCommand failed /tmp/x.batch:1",
			wantErr: "move 192.0.2.53/32 from lo to anycast-lr: ip -force -batch FILE: exit status 2: Cannot find device \"anycast-lr\"\nCommand failed /tmp/x.batch:1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var argv []string
			var batch, replace string
			run := func(_ context.Context, a ...string) ([]byte, error) {
				if a[1] == "addr" {
					replace = strings.Join(a, " ")
					return nil, nil
				}
				argv = a
				b, err := os.ReadFile(a[len(a)-1])
				if err != nil {
					t.Fatal(err)
				}
				batch = string(b)
				if tt.stderr != "" {
					return nil, &command.Error{Argv: []string{"ip", "-force", "-batch", "FILE"}, Err: exitError{2}, Stderr: tt.stderr}
				}
				return nil, nil
			}
			err := New(run, "ip", "anycast-lr").Move(context.Background(), pfx(tt.prefix), "lo", !tt.deleteFirst)
			if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Fatalf("Move: %v, want %q", err, tt.wantErr)
			}
			if len(argv) != 4 || strings.Join(argv[:3], " ") != "ip -force -batch" {
				t.Errorf("ran %q", argv)
			}
			if tt.wantCmd != "" && batch != tt.wantCmd {
				t.Errorf("batch %q, want %q", batch, tt.wantCmd)
			}
			if replace != "" {
				t.Errorf("then ran %q", replace)
			}
			if _, err := os.Stat(argv[3]); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the batch file %s was left behind: %v", argv[3], err)
			}
		})
	}
}
