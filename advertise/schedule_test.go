package advertise

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

func TestOnGrid(t *testing.T) {
	epoch := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return epoch.Add(d) }
	for _, tt := range []struct {
		name  string
		t     time.Time
		epoch time.Time
		want  time.Time
	}{
		{"mid-slot goes back to the slot's start", at(1234567 * time.Microsecond), epoch, at(1225 * time.Millisecond)},
		{"on a slot stays", at(1225 * time.Millisecond), epoch, at(1225 * time.Millisecond)},
		{"the last instant of a slot goes back a whole slot", at(1250*time.Millisecond - 1), epoch, at(1225 * time.Millisecond)},
		{"no epoch", at(105 * time.Millisecond), time.Time{}, at(105 * time.Millisecond)},
		{"before the epoch", at(-5 * time.Millisecond), epoch, at(-5 * time.Millisecond)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := onGrid(tt.t, tt.epoch); !got.Equal(tt.want) {
				t.Errorf("onGrid = %s, want %s", got.Sub(epoch), tt.want.Sub(epoch))
			}
		})
	}
}

func TestGridEpoch(t *testing.T) {
	epoch := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dns := config.Check{Type: config.CheckDNS}
	exec := config.Check{Type: config.CheckExec}
	for _, tt := range []struct {
		name   string
		fast   time.Duration
		checks []config.Check
		onGrid bool
	}{
		{"in-process checks, default fast interval", 200 * time.Millisecond, []config.Check{dns, {Type: config.CheckTCP}, {Type: config.CheckHTTP}}, true},
		{"fast interval of exactly the minimum slots", gridMinSlots * roundGrid, []config.Check{dns}, true},
		{"fast interval under the minimum keeps its times", gridMinSlots*roundGrid - 1, []config.Check{dns}, false},
		{"an exec check keeps its times", time.Second, []config.Check{exec}, false},
		{"an exec check beside in-process ones keeps its times", time.Second, []config.Check{dns, exec}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc := config.Service{Interval: time.Second, FastInterval: tt.fast, Checks: tt.checks}
			got := gridEpoch(epoch, svc)
			if want := map[bool]time.Time{true: epoch}[tt.onGrid]; !got.Equal(want) {
				t.Errorf("gridEpoch = %v, want %v", got, want)
			}
		})
	}
}

// Services with an exec check sharing an interval are spaced evenly over
// it, whatever their order in the file; the others keep their hashed place.
func TestOffsets(t *testing.T) {
	svc := func(name string, interval time.Duration, typ string) config.Service {
		return config.Service{Name: name, Interval: interval, Checks: []config.Check{{Type: typ}}}
	}
	services := []config.Service{
		svc("dns", time.Second, config.CheckDNS),
		svc("a", time.Second, config.CheckExec), svc("b", time.Second, config.CheckExec),
		svc("c", time.Second, config.CheckExec), svc("d", time.Second, config.CheckExec),
		svc("slow", 10*time.Second, config.CheckExec),
	}
	got := offsets(services)
	if got["dns"] != firstDelay("dns", time.Second) {
		t.Errorf("dns at %s, want its hashed place %s", got["dns"], firstDelay("dns", time.Second))
	}
	if got["slow"] != firstDelay("slow", 10*time.Second) {
		t.Errorf("the only exec service at 10 s is at %s, want its hashed place %s", got["slow"], firstDelay("slow", 10*time.Second))
	}
	var places []time.Duration
	for _, name := range []string{"a", "b", "c", "d"} {
		places = append(places, got[name])
	}
	slices.Sort(places)
	for i := range places {
		next := places[(i+1)%len(places)]
		if i == len(places)-1 {
			next += time.Second
		}
		if gap := next - places[i]; gap != 250*time.Millisecond {
			t.Errorf("exec services at %v: a gap of %s, want 250ms between each", places, gap)
			break
		}
	}
	slices.Reverse(services)
	if again := offsets(services); !maps.Equal(again, got) {
		t.Errorf("reordered services got %v, want %v", again, got)
	}
}
