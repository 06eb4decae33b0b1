package advertise

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// While the interface is watched, it is read on each change the watch
// reports (a change by hand is put back at once) and every
// watchedReconcileEvery, not at every tick; a watch that fails is started
// again after a backoff, the interface read at every tick meanwhile, the
// failure logged once.
func TestWatchedInterfaceIsReadOnChanges(t *testing.T) {
	for _, tt := range []struct {
		name     string
		failures []error
		// reads in 60 s of the bubble's time once up and settled
		minReads, maxReads int
		logged             bool
	}{
		{name: "watched", minReads: 2, maxReads: 4},
		{name: "not watched for its first three tries", failures: []error{errors.New("watch the addresses of lo: ip monitor exited"),
			errors.New("x"), errors.New("y")}, minReads: 2, maxReads: 4, logged: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				iface := newFakeInterface("192.0.2.53/32")
				ctl := &watchedInterface{fakeInterface: iface, failures: tt.failures}
				w := newWorldControlled(t, iface, ctl, nil, map[string]bool{"dns": true}, nil)
				c := cfgOf(service("dns", "192.0.2.53/32"))
				c.Services[0].Interval = 100 * time.Millisecond // a tick every 100 ms
				w.start(c)
				w.advance(10 * time.Second) // past the failures' backoff (1+2+4 s)
				before := iface.showCount()
				w.advance(time.Minute)
				if n := iface.showCount() - before; n < tt.minReads || n > tt.maxReads {
					t.Errorf("%d reads of the interface in a minute, want %d–%d (one per %s, not one per tick: 600)", n, tt.minReads, tt.maxReads, watchedReconcileEvery)
				}
				start := time.Now()
				iface.byHand("192.0.2.53/32", false)
				w.until("the removed address is back", func() bool { return iface.has("192.0.2.53/32") })
				if took := time.Since(start); took > time.Millisecond {
					t.Errorf("put back %s after the change, want at once", took)
				}
				if n := strings.Count(w.logText(), "cannot watch the interface's addresses"); (n == 1) != tt.logged || n > 1 {
					t.Errorf("the watch's failure logged %d times, want logged: %v\n%s", n, tt.logged, w.logText())
				}
			})
		})
	}
}

// An interface that cannot be watched is read at every tick, as before.
func TestUnwatchedInterfaceIsReadEveryTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iface := newFakeInterface("192.0.2.53/32")
		w := newWorld(t, iface, map[string]bool{"dns": true})
		c := cfgOf(service("dns", "192.0.2.53/32"))
		c.Services[0].Interval = 100 * time.Millisecond
		w.start(c)
		before := iface.showCount()
		w.advance(10 * time.Second)
		if n := iface.showCount() - before; n < 95 || n > 101 {
			t.Errorf("%d reads in 10 s, want one per 100 ms tick", n)
		}
	})
}
