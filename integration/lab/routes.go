package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouteSampler reads every router's kernel routes for a set of prefixes at
// a fixed period, over netlink (an `ip` process per sample would cost more
// CPU than the lab has at 10 ms), and keeps every change it saw. It answers
// what a user of the routers would see: which next hops each router had,
// when, and how often that changed.
//
// Lock order: mu only; no call is made while holding it.
type RouteSampler struct {
	routers  []*Router
	prefixes []netip.Prefix
	handles  []*netlink.Handle
	names    []map[int]string // per router: link index → name
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	samples int
	current map[RouteKey][]string
	changes []RouteChange
	err     error
}

// RouteKey names one router's route to one prefix.
type RouteKey struct {
	Router int // index in AnycastLab.Routers
	Prefix netip.Prefix
}

// RouteChange is a sample that differed from the one before it.
type RouteChange struct {
	At time.Time
	RouteKey
	Devs []string // sorted next-hop devices; none: no route
}

// SampleRoutes starts sampling every router's routes to prefixes every
// period until Stop.
func (a *AnycastLab) SampleRoutes(period time.Duration, prefixes ...netip.Prefix) (*RouteSampler, error) {
	s := &RouteSampler{routers: a.Routers, prefixes: prefixes, current: map[RouteKey][]string{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, r := range a.Routers {
		h, names, err := r.netlink()
		if err != nil {
			s.closeHandles()
			return nil, err
		}
		s.handles, s.names = append(s.handles, h), append(s.names, names)
	}
	s.sample() // the first sample is there when SampleRoutes returns
	go s.loop(period)
	return s, nil
}

// netlink opens a netlink handle in the router's namespace and names its
// links (they are all made before the sampler starts).
func (r *Router) netlink() (*netlink.Handle, map[int]string, error) {
	nsh, err := netns.GetFromName(r.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("open namespace %s: %w", r.Name, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, nil, fmt.Errorf("netlink in %s: %w", r.Name, err)
	}
	links, err := h.LinkList()
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("links of %s: %w", r.Name, err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	return h, names, nil
}

func (s *RouteSampler) loop(period time.Duration) {
	defer close(s.done)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.sample()
		}
	}
}

func (s *RouteSampler) sample() {
	now := time.Now()
	type read struct {
		key  RouteKey
		devs []string
	}
	var reads []read
	var errs []error
	for i, h := range s.handles {
		for _, p := range s.prefixes {
			devs, err := nextHops(h, s.names[i], p)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.routers[i].Name, err))
				continue
			}
			reads = append(reads, read{RouteKey{i, p}, devs})
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	if s.err == nil && len(errs) > 0 {
		s.err = errors.Join(errs...)
	}
	for _, r := range reads {
		if old, seen := s.current[r.key]; !seen || !slices.Equal(old, r.devs) {
			s.current[r.key] = r.devs
			s.changes = append(s.changes, RouteChange{At: now, RouteKey: r.key, Devs: r.devs})
		}
	}
}

// nextHops reads the main table's route to p: its sorted next-hop devices.
func nextHops(h *netlink.Handle, names map[int]string, p netip.Prefix) ([]string, error) {
	family := unix.AF_INET
	if p.Addr().Is6() {
		family = unix.AF_INET6
	}
	dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	var routes []netlink.Route
	var err error
	for range 3 { // a dump interrupted by a change is read again
		if routes, err = h.RouteListFiltered(family, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("routes to %s: %w", p, err)
	}
	var devs []string
	for _, r := range routes {
		if r.LinkIndex != 0 {
			devs = append(devs, names[r.LinkIndex])
		}
		for _, nh := range r.MultiPath {
			devs = append(devs, names[nh.LinkIndex])
		}
	}
	slices.Sort(devs)
	return devs, nil
}

// Stop ends sampling and returns the first error a sample met, if any.
func (s *RouteSampler) Stop() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		<-s.done
		s.closeHandles()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *RouteSampler) closeHandles() {
	for _, h := range s.handles {
		h.Close()
	}
}

// Err is the first error a sample met so far, if any.
func (s *RouteSampler) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Samples is how many samples were taken so far.
func (s *RouteSampler) Samples() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// Now is the last sample of router r's route to p.
func (s *RouteSampler) Now(r int, p netip.Prefix) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current[RouteKey{r, p}]
}

// Changes returns the changes seen at or after since, oldest first.
func (s *RouteSampler) Changes(since time.Time) []RouteChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.changes, since, func(c RouteChange, t time.Time) int { return c.At.Compare(t) })
	return slices.Clone(s.changes[i:])
}

// Mismatch describes every router and prefix (of prefixes, or all
// sampled when none are given) whose last sample is not want, or "" when
// all are.
func (s *RouteSampler) Mismatch(want []string, prefixes ...netip.Prefix) string {
	if len(prefixes) == 0 {
		prefixes = s.prefixes
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for i, r := range s.routers {
		for _, p := range prefixes {
			if got := s.current[RouteKey{i, p}]; !slices.Equal(got, want) {
				fmt.Fprintf(&b, "%s routes %s via %v; ", r.Name, p, got)
			}
		}
	}
	return b.String()
}

// Wait polls the samples every millisecond until every router routes
// prefixes (all sampled when none are given) via exactly want, and returns
// how long after start the first sample of that state was taken (0 if it
// held before start).
func (s *RouteSampler) Wait(start time.Time, want []string, within time.Duration, prefixes ...netip.Prefix) (time.Duration, bool) {
	for {
		if s.Mismatch(want, prefixes...) == "" {
			return max(s.matchedAt(want).Sub(start), 0), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(time.Millisecond)
	}
}

// matchedAt is when the current state (every route via want) began: the
// latest change among the routes.
func (s *RouteSampler) matchedAt(want []string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var at time.Time
	for _, c := range s.changes {
		if slices.Equal(c.Devs, want) && c.At.After(at) {
			at = c.At
		}
	}
	return at
}
