package instance

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// A second holder of an interface is refused, whatever else differs; once
// the first lets go, the interface can be held again. Names carry the
// test's PID so that parallel test runs do not meet.
func TestLock(t *testing.T) {
	lo, lr := fmt.Sprintf("test-lo-%d", os.Getpid()), fmt.Sprintf("test-lr-%d", os.Getpid())
	first, err := Lock(lo, lr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(lr); !errors.Is(err, ErrRunning) || err.Error() != "interface "+lr+": another anycast-watchdog manages it in this network namespace" {
		t.Errorf("second lock of %s: %v", lr, err)
	}
	other, err := Lock(fmt.Sprintf("test-eth0-%d", os.Getpid()))
	if err != nil {
		t.Errorf("another interface: %v", err)
	} else {
		other.Close()
	}
	first.Close()
	again, err := Lock(lo, lr)
	if err != nil {
		t.Fatalf("after the first let go: %v", err)
	}
	again.Close()
}
