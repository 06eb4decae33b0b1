// Command demo shows what anycast-watchdog does, in a throwaway network
// namespace: a DNS server and the daemon guarding the anycast addresses on
// the namespace's loopback. It breaks the DNS server, shows the addresses
// withdrawn, repairs it, shows them restored, prints the measured times and
// cleans up, also on Ctrl-C. Run it as root: make demo.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
)

var (
	anycastV4 = netip.MustParsePrefix("192.0.2.53/32")
	anycastV6 = netip.MustParsePrefix("2001:db8::53/128")
)

func main() {
	binary := flag.String("binary", "./anycast-watchdog", "the anycast-watchdog binary to run")
	flag.Parse()
	if err := demo(*binary); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Printf("%s  "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func demo(binary string) error {
	binary, err := filepath.Abs(binary)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "aw-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l, err := lab.New(dir)
	if err != nil {
		return err
	}
	defer l.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ns, err := l.AddNamespace(fmt.Sprintf("aw-demo-%d", os.Getpid()%100000))
	if err != nil {
		return err
	}
	say("created network namespace %s, a stand-in for one anycast DNS node", ns.Name)
	dns, err := ns.DNSServer("dnsmasq", "198.51.100.99")
	if err != nil {
		return err
	}
	say("started a DNS server (dnsmasq) on 127.0.0.1:53 in it")

	config := filepath.Join(dir, "config.yaml")
	os.WriteFile(config, []byte(`metrics_listen: ""
services:
  - name: dns
    prefixes: [192.0.2.53/32, 2001:db8::53/128]
    interval: 500ms
    fast_interval: 100ms
    timeout: 300ms
    rise: 3
    fall: 2
    checks:
      - type: dns
        server: 127.0.0.1:53
        query: health.example.
        answer_contains: 198.51.100.99
`), 0o644)
	say("anycast-watchdog guards 192.0.2.53/32 and 2001:db8::53/128 with a DNS check every 500 ms (rise 3, fall 2)")
	daemon, err := ns.Start("anycast-watchdog", binary, "run", "--config", config)
	if err != nil {
		return err
	}
	show := func() {
		out, _ := ns.Run("ip", "-br", "addr", "show", "dev", "lo")
		say("loopback now: %s", strings.Join(strings.Fields(string(out))[2:], " "))
	}
	both := func(present bool) func() bool {
		return func() bool { return ns.Has("lo", anycastV4) == present && ns.Has("lo", anycastV6) == present }
	}
	step := func(what string, present bool) (time.Duration, error) {
		took, ok := lab.WaitFor(ctx, 10*time.Second, both(present))
		if ctx.Err() != nil {
			return 0, fmt.Errorf("interrupted; cleaning up")
		}
		if !ok {
			return 0, fmt.Errorf("%s did not happen; daemon log:\n%s", what, daemon.Log())
		}
		say("%s after %s", what, took.Round(time.Millisecond))
		show()
		return took, nil
	}

	show()
	rise, err := step("the service passed 3 rounds in a row: addresses ADDED", true)
	if err != nil {
		return err
	}
	say("(ospfd would now advertise them; routers send this node its share of clients)")

	say("breaking the service: stopping the DNS server")
	dns.Stop(2 * time.Second)
	withdraw, err := step("2 failing rounds: addresses WITHDRAWN", false)
	if err != nil {
		return err
	}
	say("(ospfd stops advertising them; clients go to the other nodes instead of a black hole)")

	say("repairing the service: starting the DNS server again")
	if _, err := ns.DNSServer("dnsmasq", "198.51.100.99"); err != nil {
		return err
	}
	restore, err := step("3 passing rounds: addresses RESTORED", true)
	if err != nil {
		return err
	}

	fmt.Println()
	fmt.Println("What the daemon logged:")
	for _, line := range strings.Split(strings.TrimSpace(daemon.Log()), "\n") {
		fmt.Println("  " + line)
	}
	fmt.Println()
	fmt.Printf("measured: first advertisement %s, withdrawal %s after the failure, restore %s after the repair\n",
		rise.Round(time.Millisecond), withdraw.Round(time.Millisecond), restore.Round(time.Millisecond))
	fmt.Printf("worst case for this config: withdraw ≤ interval + (fall-1)×fast_interval = 600 ms; restore ≤ interval + (rise-1)×fast_interval = 700 ms\n")
	daemon.Stop(3 * time.Second)
	say("stopped the daemon (on_exit: keep) and removed the namespace")
	return nil
}
