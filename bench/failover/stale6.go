package main

import (
	"cmp"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/integration/lab"
)

// A withdrawal kind is one way node 1 takes its /128 out of service, as a
// sequence of `ip` steps; the router's route is checked after each.
type withdrawalKind struct {
	name, what string
	steps      [][]string // ip -batch lines, one batch per step
}

// The kinds the stale-next-hop study compares: the daemon's removal
// without a last-resort interface, its move to last resort (the add
// first, one batch), the same move with the delete first, and a drain
// (the move, then the removal from last resort once the router routes
// to the others only).
func withdrawalKinds() []withdrawalKind {
	v6, lo, lr := lab.AnycastV6.String(), "lo", lab.LastResortDev
	add := func(dev string) string { return "addr add " + v6 + " dev " + dev + " nodad" }
	del := func(dev string) string { return "addr del " + v6 + " dev " + dev }
	return []withdrawalKind{
		{"remove", "off lo (no last resort)", [][]string{{del(lo)}}},
		{"move", "to last resort, add first (the daemon's move)", [][]string{{add(lr), del(lo)}}},
		{"move-del-first", "to last resort, delete first", [][]string{{del(lo), add(lr)}}},
		{"drain", "to last resort, then off it once the router left the node", [][]string{{add(lr), del(lo)}, {del(lr)}}},
	}
}

// staleCell counts one kind's withdrawals at one delay after the return.
type staleCell struct{ trials, stale int }

// holdFor is how long after the router's OSPFv3 database shows node 1's
// withdrawal its route may still use node 1 before the next hop counts as
// stale: the router follows within milliseconds when it follows at all.
const holdFor = 3 * time.Second

// stale6Trials measures how often the router keeps an ECMP next hop to
// node 1 for its /128 after node 1 withdrew it (FRRouting/frr#13579;
// docs/frr.md). No daemon runs: node 1's /128 is moved with ip, by each
// kind, a delay after the router has routed to both nodes again. A
// withdrawal is stale when, holdFor after the router's OSPFv3 database
// shows node 1 no longer advertising the /128 at a normal metric, the
// router still routes it via node 1.
//
// fresh restarts an ospf6d before each withdrawal ("node": node 1's,
// "router": the router's; "" none), or builds a new lab for each ("lab",
// with newLab): the earlier lab runs saw the stale hop only in withdrawals
// made seconds after the daemons came up.
func stale6Trials(a *lab.AnycastLab, trials int, delays []time.Duration, fresh string, newLab func() (*lab.AnycastLab, func(), error)) error {
	if a.Opts.BGP || !a.Opts.LastResort {
		return fmt.Errorf("-trial stale6 needs the OSPF lab with last-resort interfaces")
	}
	kinds := withdrawalKinds()
	cells := map[string]*staleCell{}
	cell := func(k string, d time.Duration) *staleCell {
		key := fmt.Sprintf("%s/%s", k, d)
		if cells[key] == nil {
			cells[key] = &staleCell{}
		}
		return cells[key]
	}
	fmt.Printf("stale6: fresh %q; %d trials per kind and delay; a withdrawal is stale when the router still routes %s via node 1 %s after its OSPFv3 database shows the withdrawal\n",
		cmp.Or(fresh, "none"), trials, lab.AnycastV6, holdFor)
	if fresh != "lab" {
		if err := addOnLo(a); err != nil {
			return err
		}
	}
	for i := 0; i < trials; i++ {
		for _, d := range delays {
			for _, k := range kinds {
				trialLab, done := a, func() {}
				if fresh == "lab" {
					l, closeLab, err := newLab()
					if err != nil {
						return err
					}
					if err := addOnLo(l); err != nil {
						closeLab()
						return err
					}
					trialLab, done = l, closeLab
				}
				stale, err := withdrawOnce(trialLab, k, d, fresh)
				done()
				if err != nil {
					return fmt.Errorf("trial %d (%s, delay %s): %w", i+1, k.name, d, err)
				}
				c := cell(k.name, d)
				c.trials++
				if len(stale) > 0 {
					c.stale++
					fmt.Printf("trial %2d %-15s delay %-4s STALE %s\n", i+1, k.name, d, strings.Join(stale, "; "))
				}
			}
		}
		fmt.Printf("trial %2d done\n", i+1)
	}
	fmt.Printf("\n%-15s %-8s %8s %8s   %s\n", "kind", "delay", "stale", "of", "what")
	for _, k := range kinds {
		for _, d := range delays {
			c := cell(k.name, d)
			fmt.Printf("%-15s %-8s %8d %8d   %s\n", k.name, d, c.stale, c.trials, k.what)
		}
	}
	fmt.Printf("\ndelay: from the router routing via both nodes again to the withdrawal; FRR: %s\n", frrVersion())
	return nil
}

// addOnLo puts the /128 on every node's lo at once, as daemons starting
// together do.
func addOnLo(a *lab.AnycastLab) error {
	for _, n := range a.Nodes {
		if _, err := n.NS.Run("ip", "addr", "add", lab.AnycastV6.String(), "dev", "lo"); err != nil {
			return err
		}
	}
	return nil
}

// withdrawOnce puts node 1's /128 back on lo (where it is not), restarts
// an ospf6d when fresh says so, waits until the router routes it via both
// nodes, waits delay, and withdraws it by k; it returns the steps after
// which the router kept a next hop to node 1.
func withdrawOnce(a *lab.AnycastLab, k withdrawalKind, delay time.Duration, fresh string) (stale []string, err error) {
	n1, n2 := a.Nodes[0], a.Nodes[1]
	v6 := lab.AnycastV6
	both, one := []string{n1.RouterDev, n2.RouterDev}, []string{n2.RouterDev}
	slices.Sort(both)
	if err := batch(n1.NS.Name, "addr add "+v6.String()+" dev lo", "addr del "+v6.String()+" dev "+lab.LastResortDev); err != nil {
		return nil, err
	}
	if f := map[string]*lab.FRR{"node": n1.FRR, "router": a.Router.FRR}[fresh]; f != nil {
		f.Daemons["ospf6d"].Stop(2 * time.Second)
		if err := f.Start("ospf6d"); err != nil {
			return nil, err
		}
	}
	if _, ok := lab.WaitFor(30*time.Second, func() bool { return slices.Equal(a.Router.NextHops(v6), both) }); !ok {
		return nil, fmt.Errorf("the router never routed %s via both nodes: %v", v6, a.Router.NextHops(v6))
	}
	time.Sleep(delay)
	for s, lines := range k.steps {
		if err := batch(n1.NS.Name, lines...); err != nil {
			return nil, err
		}
		if _, ok := lab.WaitFor(5*time.Second, func() bool { return !a.Router.InOSPF6(n1, v6) }); !ok {
			return nil, fmt.Errorf("the router's OSPFv3 database still shows node 1's %s", v6)
		}
		if _, ok := lab.WaitFor(holdFor, func() bool { return slices.Equal(a.Router.NextHops(v6), one) }); !ok {
			return append(stale, fmt.Sprintf("step %d: via %v", s+1, a.Router.NextHops(v6))), nil
		}
	}
	return nil, nil
}

// batch runs lines as one `ip -force -batch` in namespace ns, as the
// daemon moves an address (ifaddr.Controller.Move).
func batch(ns string, lines ...string) error {
	cmd := exec.Command("ip", "-n", ns, "-force", "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		// -force carries on past an address already gone or there.
		if !onlyAlready(string(out)) {
			return fmt.Errorf("ip -n %s -batch %q: %v: %s", ns, lines, err, out)
		}
	}
	return nil
}

// frrVersion is the installed frr package's version, or why it is unknown.
func frrVersion() string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "frr").Output()
	if err != nil {
		return "unknown: " + err.Error()
	}
	return string(out)
}

// onlyAlready reports whether every error ip printed is an address
// already there or already gone: the batch then did what it was for.
func onlyAlready(out string) bool {
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case strings.HasPrefix(line, "Command failed"),
			strings.Contains(line, "already assigned"), strings.Contains(line, "File exists"),
			strings.Contains(line, "address not found"), strings.Contains(line, "Cannot assign"):
		default:
			return false
		}
	}
	return true
}
