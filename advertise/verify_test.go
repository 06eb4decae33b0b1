package advertise

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/frr"
)

// fakeFRR originates what the interface has (as ospfd would), unless told
// to leave prefixes out (not covered by its config), to fail, or to hang.
type fakeFRR struct {
	iface *fakeInterface
	mu    sync.Mutex
	skip  map[netip.Prefix]bool
	err   error
	hang  bool
	calls int
}

func (f *fakeFRR) Originated(ctx context.Context, v6 bool) ([]netip.Prefix, error) {
	f.mu.Lock()
	f.calls++
	err, hang := f.err, f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done() // vtysh against a frozen ospfd: only the deadline ends it
		return nil, &frr.Error{Kind: frr.Timeout, Daemon: "ospfd", Err: ctx.Err()}
	}
	if err != nil {
		return nil, err
	}
	link, _ := f.iface.Show(ctx)
	var out []netip.Prefix
	for _, p := range link.Prefixes {
		f.mu.Lock()
		skip := f.skip[p]
		f.mu.Unlock()
		if p.Addr().Is6() == v6 && !skip {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f *fakeFRR) set(fn func(f *fakeFRR)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// startVerified starts a world whose read-back is fake, with a short
// confirmation window.
func startVerified(t *testing.T, w *world, rb *fakeFRR, c *config.Config) {
	t.Helper()
	c.FRR.Verify = true
	w.sup.opts.ReadBack = func(config.FRR) ReadBack { return rb }
	w.sup.verify.window, w.sup.verify.every = 100*time.Millisecond, 50*time.Millisecond
	w.start(c)
}

func (w *world) verifyOf(name string, i int) VerifyStatus {
	for _, s := range w.sup.Status() {
		if s.Name == name {
			return s.Prefixes[i].Verify
		}
	}
	w.t.Fatalf("no service %q", name)
	return VerifyStatus{}
}

func TestVerifyConfirmsChanges(t *testing.T) {
	iface := newFakeInterface()
	w := newWorld(t, iface, map[string]bool{"dns": true})
	startVerified(t, w, &fakeFRR{iface: iface}, cfgOf(service("dns", "192.0.2.53/32", "2001:db8::53/128")))
	w.eventually("advertised: yes", func() bool {
		return w.verifyOf("dns", 0).Advertised == AdvertisedYes && w.verifyOf("dns", 1).Advertised == AdvertisedYes
	})
	w.checks["dns"].healthy.Store(false)
	w.eventually("advertised: no", func() bool { return w.verifyOf("dns", 0).Advertised == AdvertisedNo })
	if n := strings.Count(w.logText(), `msg="advertisement confirmed"`); n < 4 {
		t.Errorf("%d confirmations logged, want one per prefix per change:\n%s", n, w.logText())
	}
	if m := w.verifyOf("dns", 0).Mismatches; m != 0 {
		t.Errorf("%d mismatches", m)
	}
}

func TestVerifyReportsPrefixNotCoveredByFRR(t *testing.T) {
	iface := newFakeInterface("192.0.2.53/32")
	rb := &fakeFRR{iface: iface, skip: map[netip.Prefix]bool{netip.MustParsePrefix("192.0.2.53/32"): true}}
	w := newWorld(t, iface, map[string]bool{"dns": true})
	startVerified(t, w, rb, cfgOf(service("dns", "192.0.2.53/32")))
	w.eventually("a mismatch", func() bool { return w.verifyOf("dns", 0).Mismatches == 1 })
	st := w.verifyOf("dns", 0)
	if st.Advertised != AdvertisedNo || !strings.Contains(st.Reason, "the FRR configuration does not cover 192.0.2.53/32") {
		t.Errorf("status %+v", st)
	}
	time.Sleep(200 * time.Millisecond)
	if n := strings.Count(w.logText(), "does not advertise it"); n != 1 {
		t.Errorf("mismatch logged %d times, want once per episode:\n%s", n, w.logText())
	}
	rb.set(func(f *fakeFRR) { f.skip = nil }) // the operator fixes frr.conf
	w.eventually("advertised: yes", func() bool { return w.verifyOf("dns", 0).Advertised == AdvertisedYes })
	if !strings.Contains(w.logText(), "advertisement matches the interface again") {
		t.Errorf("no recovery line:\n%s", w.logText())
	}
}

func TestVerifyFRRDownIsUnknownAndRecovers(t *testing.T) {
	iface := newFakeInterface("192.0.2.53/32")
	rb := &fakeFRR{iface: iface, err: &frr.Error{Kind: frr.NotRunning, Daemon: "ospfd", Err: errors.New("exit status 1")}}
	w := newWorld(t, iface, map[string]bool{"dns": true})
	startVerified(t, w, rb, cfgOf(service("dns", "192.0.2.53/32")))
	w.eventually("unknown", func() bool { return w.verifyOf("dns", 0).Reason == "ospfd is not running" })
	if st := w.verifyOf("dns", 0); st.Advertised != AdvertisedUnknown {
		t.Errorf("status %+v", st)
	}
	if h := w.sup.FRRHealth(); len(h) != 1 || h[0].Daemon != "ospfd" || h[0].Error != "ospfd is not running" || h[0].Errors["not-running"] == 0 {
		t.Errorf("health %+v", h)
	}
	// Checks and address control go on while FRR is down.
	w.checks["dns"].healthy.Store(false)
	w.eventually("withdrawn", func() bool { return !iface.has("192.0.2.53/32") })

	rb.set(func(f *fakeFRR) { f.err = nil })
	w.eventually("known again", func() bool { return w.verifyOf("dns", 0).Advertised == AdvertisedNo })
	log := w.logText()
	if strings.Count(log, "cannot read back what FRR advertises") != 1 || !strings.Contains(log, "FRR read-back works again") {
		t.Errorf("health lines wrong:\n%s", log)
	}
}

// A hung vtysh must not delay a withdrawal.
func TestVerifyHangDoesNotDelayWithdrawal(t *testing.T) {
	iface := newFakeInterface("192.0.2.53/32")
	rb := &fakeFRR{iface: iface, hang: true}
	w := newWorld(t, iface, map[string]bool{"dns": true})
	startVerified(t, w, rb, cfgOf(service("dns", "192.0.2.53/32")))
	w.checks["dns"].healthy.Store(false)
	start := time.Now()
	w.eventually("withdrawn", func() bool { return !iface.has("192.0.2.53/32") })
	// interval 20ms + (fall-1) x 5ms, with slack for a busy machine.
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("withdrawal took %s with the read-back hung", took)
	}
}

func TestVerifyOff(t *testing.T) {
	iface := newFakeInterface("192.0.2.53/32")
	w := newWorld(t, iface, map[string]bool{"dns": true})
	w.start(cfgOf(service("dns", "192.0.2.53/32"))) // no ReadBack
	if st := w.verifyOf("dns", 0); st.Advertised != AdvertisedUnknown || !strings.Contains(st.Reason, "read-back is off") {
		t.Errorf("status %+v", st)
	}
}
