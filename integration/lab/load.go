package lab

import (
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// QueryLoad sends a steady rate of DNS queries from a namespace to an
// anycast address, each from a fresh socket so that ECMP spreads them over
// the nodes, and records when each was sent and whether it was answered.
//
// Lock order: mu only.
type QueryLoad struct {
	stop chan struct{}
	done sync.WaitGroup

	mu     sync.Mutex
	failed []time.Time // send times of queries refused or unanswered in 500 ms
	sent   []time.Time
}

// StartQueryLoad sends qps queries a second for whoami.example. from ns to
// server port 53 until Stop.
func (ns *Namespace) StartQueryLoad(qps int, server netip.Addr) *QueryLoad {
	ld := &QueryLoad{stop: make(chan struct{})}
	ld.done.Add(1)
	go func() {
		defer ld.done.Done()
		// The sockets are opened on this one thread, moved into ns once
		// (and discarded at the end): a thread per query cannot keep up
		// with 100/s on a busy 2-core machine.
		runtime.LockOSThread()
		if err := ns.enter(); err != nil {
			return
		}
		tick := time.NewTicker(time.Second / time.Duration(qps))
		defer tick.Stop()
		for {
			select {
			case <-ld.stop:
				return
			case <-tick.C:
			}
			network := "udp4"
			if server.Is6() {
				network = "udp6"
			}
			pc, err := net.ListenPacket(network, ":0")
			if err != nil {
				continue
			}
			sent := time.Now()
			ld.done.Add(1)
			go func() {
				defer ld.done.Done()
				defer pc.Close()
				ok := queryOnce(pc, server)
				ld.mu.Lock()
				defer ld.mu.Unlock()
				ld.sent = append(ld.sent, sent)
				if !ok {
					ld.failed = append(ld.failed, sent)
				}
			}()
		}
	}()
	return ld
}

// Stop stops sending and waits for the answers (or timeouts) of the
// queries in flight.
func (ld *QueryLoad) Stop() {
	select {
	case <-ld.stop:
	default:
		close(ld.stop)
	}
	ld.done.Wait()
}

func queryOnce(pc net.PacketConn, server netip.Addr) bool {
	m := new(dns.Msg)
	m.SetQuestion("whoami.example.", dns.TypeA)
	buf, _ := m.Pack()
	pc.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := pc.WriteTo(buf, net.UDPAddrFromAddrPort(netip.AddrPortFrom(server, 53))); err != nil {
		return false
	}
	in := make([]byte, 512)
	n, _, err := pc.ReadFrom(in)
	if err != nil {
		return false
	}
	r := new(dns.Msg)
	return r.Unpack(in[:n]) == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
}

// Lost counts the queries sent in [from, to] that failed.
func (ld *QueryLoad) Lost(from, to time.Time) int { return ld.count(true, from, to) }

// Sent counts the queries sent in [from, to] whose outcome is known.
func (ld *QueryLoad) Sent(from, to time.Time) int { return ld.count(false, from, to) }

func (ld *QueryLoad) count(failed bool, from, to time.Time) int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	ts := ld.sent
	if failed {
		ts = ld.failed
	}
	n := 0
	for _, t := range ts {
		if !t.Before(from) && !t.After(to) {
			n++
		}
	}
	return n
}
