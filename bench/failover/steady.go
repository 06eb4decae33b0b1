package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
	"github.com/anycast-watchdog/anycast-watchdog/internal/procstat"
)

// steady measures what a steady, healthy fleet costs its nodes' FRR, with
// nobody scraping or asking for status: per node and minute, the vtysh
// calls the daemon makes (counted by a wrapper it is configured to run)
// and the CPU of ospfd, ospf6d and the daemon itself, over d after the
// fleet has settled.
func steady(a *lab.AnycastLab, d time.Duration) error {
	calls := filepath.Join(a.Dir, "vtysh-calls")
	if err := os.MkdirAll(calls, 0o755); err != nil {
		return err
	}
	wrapper := filepath.Join(a.Dir, "vtysh-counting")
	// One line per call, in a file per pathspace (the -N argument).
	script := `#!/bin/sh
ps=default; prev=
for a in "$@"; do [ "$prev" = -N ] && ps=$a; prev=$a; done
echo x >> ` + calls + `/$ps
exec /usr/bin/vtysh "$@"
`
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return err
	}
	for _, n := range a.Nodes {
		c := n.WatchdogConfig()
		c.Vtysh = wrapper
		if err := c.Write(n.Config); err != nil {
			return err
		}
		if err := n.StartWatchdog(); err != nil {
			return err
		}
	}
	if _, ok := lab.WaitFor(60*time.Second, func() bool {
		v4, v6 := a.Routes()
		return len(v4) == len(a.Nodes) && len(v6) == len(a.Nodes)
	}); !ok {
		return fmt.Errorf("the router never routed to every node")
	}
	time.Sleep(15 * time.Second) // past the start's reads and the first re-verification
	type sample struct {
		calls                 int
		ospfd, ospf6d, daemon time.Duration
	}
	take := func(n *lab.Node) sample {
		b, _ := os.ReadFile(filepath.Join(calls, n.NS.Name))
		return sample{calls: strings.Count(string(b), "\n"), ospfd: procstat.Of(n.FRR.Daemons["ospfd"].PID()).Self,
			ospf6d: procstat.Of(n.FRR.Daemons["ospf6d"].PID()).Self, daemon: procstat.Of(n.Watchdog.PID()).Self}
	}
	before := map[int]sample{}
	for _, n := range a.Nodes {
		before[n.Index] = take(n)
	}
	time.Sleep(d)
	perMin := float64(time.Minute) / float64(d)
	var vtysh, ospfd, ospf6d, daemon []float64
	for _, n := range a.Nodes {
		after := take(n)
		b := before[n.Index]
		vtysh = append(vtysh, float64(after.calls-b.calls)*perMin)
		ospfd = append(ospfd, msOf(after.ospfd-b.ospfd)*perMin)
		ospf6d = append(ospf6d, msOf(after.ospf6d-b.ospf6d)*perMin)
		daemon = append(daemon, msOf(after.daemon-b.daemon)*perMin)
	}
	fmt.Printf("steady fleet of %d nodes, nobody scraping, over %s; per node and minute, median [min–max]:\n", len(a.Nodes), d)
	for _, row := range []struct {
		name string
		v    []float64
	}{{"vtysh calls", vtysh}, {"ospfd CPU ms", ospfd}, {"ospf6d CPU ms", ospf6d}, {"daemon CPU ms", daemon}} {
		sort.Float64s(row.v)
		fmt.Printf("  %-14s %7.1f  [%.1f–%.1f]\n", row.name, row.v[len(row.v)/2], row.v[0], row.v[len(row.v)-1])
	}
	return nil
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
