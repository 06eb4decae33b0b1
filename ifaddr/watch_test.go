package ifaddr

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// monitorScript writes a shell script standing in for ip: it records its
// arguments and runs body.
func monitorScript(t *testing.T, body string) (path, args string) {
	t.Helper()
	dir := t.TempDir()
	path, args = filepath.Join(dir, "ip"), filepath.Join(dir, "args")
	script := "#!/bin/sh\necho \"$@\" > " + args + "\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, args
}

func TestWatch(t *testing.T) {
	for _, tt := range []struct {
		name    string
		body    string
		cancel  bool // cancel once the events are in
		events  int
		wantErr string // "" : nil
	}{
		{name: "two events, then ctx ends", body: `echo '1: lo    inet 192.0.2.53/32 scope global lo\       valid_lft forever'
echo 'Deleted 1: lo    inet 192.0.2.53/32 scope global lo\       valid_lft forever'
exec sleep 30`, cancel: true, events: 2},
		{name: "ip exits", body: `echo '1: lo    inet 192.0.2.53/32 scope global lo'`, events: 1, wantErr: "watch the addresses of lo: ip monitor exited"},
		{name: "ip fails, with its message", body: `echo 'Cannot find device "lo"' >&2; exit 1`,
			wantErr: `watch the addresses of lo: exit status 1: Cannot find device "lo"`},
		{name: "a line without end", body: `head -c 70000 /dev/zero | tr '\0' x; exec sleep 30`, wantErr: "token too long"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ip, args := monitorScript(t, tt.body)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var events atomic.Int32
			err := New(nil, ip, "lo").Watch(ctx, func() {
				if events.Add(1) == int32(tt.events) && tt.cancel {
					cancel()
				}
			})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Watch: %v, want %q", err, tt.wantErr)
			}
			if int(events.Load()) != tt.events {
				t.Errorf("%d events, want %d", events.Load(), tt.events)
			}
			if b, _ := os.ReadFile(args); strings.TrimSpace(string(b)) != "-o monitor address dev lo" {
				t.Errorf("ip ran with %q", b)
			}
		})
	}
}
