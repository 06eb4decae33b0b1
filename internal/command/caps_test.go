package command

import "testing"

// Captured from /proc/self/status: the daemon under its unit (CAP_NET_ADMIN
// ambient), after ClearAmbient, and a process with no capability.
func TestParseCaps(t *testing.T) {
	tests := []struct {
		name, status string
		want         Caps
		canGive      bool
	}{
		{"under the unit", "Name:\tanycast-watchdog\nCapInh:\t0000000000001000\nCapPrm:\t0000000000001000\nCapEff:\t0000000000001000\nCapBnd:\t0000000000001000\nCapAmb:\t0000000000001000\n",
			Caps{0x1000, 0x1000, 0x1000, 0x1000}, true},
		{"after ClearAmbient", "CapInh:\t0000000000001000\nCapPrm:\t0000000000001000\nCapEff:\t0000000000001000\nCapBnd:\t0000000000001000\nCapAmb:\t0000000000000000\n",
			Caps{0x1000, 0x1000, 0x1000, 0}, true},
		{"a check's child", "CapInh:\t0000000000001000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000001000\nCapAmb:\t0000000000000000\n",
			Caps{0x1000, 0, 0, 0}, false},
		{"root", "CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n",
			Caps{0, 0x1ffffffffff, 0x1ffffffffff, 0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCaps(tt.status)
			if err != nil || got != tt.want {
				t.Fatalf("ParseCaps = %+v, %v; want %+v", got, err, tt.want)
			}
			if got.CanGive(CapNetAdmin) != tt.canGive {
				t.Errorf("CanGive(CAP_NET_ADMIN) = %v", !tt.canGive)
			}
		})
	}
	if _, err := ParseCaps("Name:\tx\nCapEff:\tzz\n"); err == nil {
		t.Error("bad status parsed")
	}
}
