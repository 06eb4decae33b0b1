// Package ifaddrtest is an interface in memory with the same methods as
// *ifaddr.Controller, for tests and benchmarks that exercise everything
// but ip itself.
package ifaddrtest

import (
	"context"
	"net/netip"
	"slices"
	"sync"

	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
)

// Interface is a loopback in memory, always up. Add and Del are
// idempotent, as ip's are made to be.
type Interface struct {
	mu      sync.Mutex
	present map[netip.Prefix]bool
}

// New returns an interface that has the given prefixes.
func New(present ...netip.Prefix) *Interface {
	i := &Interface{present: map[netip.Prefix]bool{}}
	for _, p := range present {
		i.present[p] = true
	}
	return i
}

// Show lists the prefixes, in order.
func (i *Interface) Show(context.Context) (ifaddr.Link, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	l := ifaddr.Link{Name: "lo", Up: true}
	for p := range i.present {
		l.Prefixes = append(l.Prefixes, p)
	}
	slices.SortFunc(l.Prefixes, netip.Prefix.Compare)
	return l, nil
}

// Add puts p on the interface.
func (i *Interface) Add(_ context.Context, p netip.Prefix) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.present[p] = true
	return nil
}

// Del takes p off the interface.
func (i *Interface) Del(_ context.Context, p netip.Prefix) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.present, p)
	return nil
}

// Has reports whether p is on the interface.
func (i *Interface) Has(p netip.Prefix) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.present[p]
}
