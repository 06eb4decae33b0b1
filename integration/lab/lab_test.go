package lab

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWatchReportsTheFirstViolation(t *testing.T) {
	var calls atomic.Int32
	stop := Watch(time.Millisecond, func() string {
		if calls.Add(1) == 5 {
			return "gone at call 5"
		}
		return ""
	})
	time.Sleep(50 * time.Millisecond)
	if got := stop(); got != "gone at call 5" {
		t.Errorf("stop() = %q", got)
	}
}

func TestWatchIsQuietWithoutAViolation(t *testing.T) {
	var calls atomic.Int32
	stop := Watch(time.Millisecond, func() string { calls.Add(1); return "" })
	time.Sleep(30 * time.Millisecond)
	if got := stop(); got != "" || calls.Load() < 5 {
		t.Errorf("stop() = %q after %d checks", got, calls.Load())
	}
}

func TestParseNextHops(t *testing.T) {
	// One path as captured from ip -j route show on the lab's router; two in
	// the multipath shape (the FRR lab tests parse the real thing).
	one := `[{"dst":"192.0.2.53","nhid":10,"gateway":"198.51.100.1","dev":"r-n1","protocol":"ospf","metric":20,"flags":[]}]`
	two := `[{"dst":"192.0.2.53","nhid":32,"protocol":"ospf","metric":20,"flags":[],"nexthops":[{"gateway":"198.51.100.3","dev":"r-n2","weight":1,"flags":[]},{"gateway":"198.51.100.1","dev":"r-n1","weight":1,"flags":[]}]}]`
	for in, want := range map[string]string{one: "r-n1", two: "r-n1 r-n2", `[]`: ""} {
		devs, err := ParseNextHops([]byte(in))
		got := ""
		for i, d := range devs {
			if i > 0 {
				got += " "
			}
			got += d
		}
		if err != nil || got != want {
			t.Errorf("ParseNextHops(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
}
