package advertise

import (
	"fmt"
	"strings"

	"github.com/anycast-watchdog/anycast-watchdog/checker"
)

// Summary is a one-line account of all services for systemd's STATUS=, e.g.
// "3 services: 2 up, 1 down (dns: timeout)".
func Summary(services []ServiceStatus) string {
	if len(services) == 0 {
		return "no services configured; managing no address"
	}
	counts := map[string]int{}
	var why []string
	for _, s := range services {
		switch {
		case s.Drain != nil:
			counts["drained"]++
			why = append(why, s.Name+": drained")
		case s.State != Up:
			counts[s.State.String()]++
			why = append(why, s.Name+": "+shortReason(s))
		default:
			counts["up"]++
		}
	}
	noun := "services"
	if len(services) == 1 {
		noun = "service"
	}
	var parts []string
	for _, st := range []string{"up", "falling", "rising", "down", "drained"} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	out := fmt.Sprintf("%d %s: %s", len(services), noun, strings.Join(parts, ", "))
	if len(why) > 0 {
		out += " (" + strings.Join(why, "; ") + ")"
	}
	return out
}

// shortReason names what keeps a service from being up: the reasons of its
// failing checks, or that it is still rising.
func shortReason(s ServiceStatus) string {
	var reasons []string
	for _, c := range s.Checks {
		if c.Err != nil {
			reasons = append(reasons, checker.Reason(c.Err))
		}
	}
	if len(reasons) == 0 {
		if s.State == Rising {
			return fmt.Sprintf("rising, %d passes", s.Passes)
		}
		return "no verdict yet"
	}
	return strings.Join(reasons, ", ")
}
