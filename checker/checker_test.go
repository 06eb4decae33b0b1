package checker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// Every type the configuration accepts has a constructor, and nothing else
// has one: config's table and this map list the same types.
func TestAConstructorForEveryCheckType(t *testing.T) {
	types := config.CheckTypes()
	ctors := constructors()
	for _, typ := range types {
		if ctors[typ] == nil {
			t.Errorf("config accepts %s checks, but checker cannot build one", typ)
		}
	}
	if len(ctors) != len(types) {
		t.Errorf("%d constructors for %d check types %v", len(ctors), len(types), types)
	}
	if _, err := New(config.Check{Type: "smtp"}); err == nil || err.Error() != `unknown check type "smtp"` {
		t.Errorf("New of an unknown type: %v", err)
	}
}

func TestReason(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{mismatch("rcode", "got SERVFAIL"), "rcode"},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), "timeout"},
		{os.ErrDeadlineExceeded, "timeout"},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "refused"},
		{&net.OpError{Op: "dial", Err: syscall.ENETUNREACH}, "unreachable"},
		{syscall.EHOSTUNREACH, "unreachable"},
		{errors.New("something else"), "error"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			if got := Reason(tt.err); got != tt.want {
				t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
