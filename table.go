package main

import (
	"cmp"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// writeTable renders st for a terminal, as `status` prints it: a header,
// then services, prefixes and checks as aligned tables. now makes times
// relative.
func writeTable(w io.Writer, st status.Document, now time.Time) error {
	fmt.Fprintf(w, "anycast-watchdog %s · config %s loaded %s", st.Version, st.Config.Path, ago(st.Config.LoadedAt, now))
	if r := st.Config.LastReload; r != nil {
		if r.OK {
			fmt.Fprintf(w, " · last reload ok %s", ago(r.At, now))
		} else {
			fmt.Fprintf(w, " · LAST RELOAD FAILED %s: %s", ago(r.At, now), printable(r.Error))
		}
	}
	fmt.Fprintln(w)
	var frr []string
	for _, f := range st.FRR {
		if f.OK {
			frr = append(frr, f.Daemon+" ok")
		} else {
			frr = append(frr, f.Daemon+" FAILING: "+printable(f.Error))
		}
	}
	if len(frr) == 0 {
		frr = []string{"not verified (frr.verify off, or nothing to verify yet)"}
	}
	fmt.Fprintf(w, "FRR read-back: %s\n", strings.Join(frr, " · "))
	switch lr := st.LastResort; {
	case lr == nil:
		fmt.Fprintln(w, "Last resort: off (last_resort_interface: \"\"): a failing service's addresses are removed at once")
	case lr.OK:
		fmt.Fprintf(w, "Last resort: %s\n", lr.Interface)
	default:
		fmt.Fprintf(w, "Last resort: %s UNAVAILABLE, failing open is off: %s\n", lr.Interface, printable(lr.Error))
	}
	switch u := st.UnitWatch; {
	case u == nil:
	case u.Up:
		fmt.Fprintf(w, "Unit watch: following %s on the system bus\n", units(u.Units))
	case u.Error == "":
		fmt.Fprintf(w, "Unit watch: connecting to the system bus (%s)\n", units(u.Units))
	default:
		fmt.Fprintf(w, "Unit watch: DOWN, the checks alone decide: %s\n", printable(u.Error))
	}
	if d := st.Doctor; d != nil {
		if d.Errors+d.Warnings+d.Infos == 0 {
			fmt.Fprintln(w, "doctor: no findings")
		} else {
			fmt.Fprintf(w, "doctor: %s — run anycast-watchdog doctor\n", d.Summary())
		}
	}
	if len(st.Services) == 0 {
		_, err := fmt.Fprintln(w, "\nno services configured; managing no address")
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSERVICE\tSTATE\tSINCE\tPASSES/RISE\tFAILS/FALL\tREASON")
	for _, s := range st.Services {
		reason := s.Reason
		if d := s.Drain; d != nil {
			reason = "drained by " + d.By + ": " + d.Reason
			if !d.Until.IsZero() {
				reason += ", until " + d.Until.UTC().Format("15:04:05") + " (" + in(d.Until, now) + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d/%d\t%s\n", s.Name, s.State, ago(s.Since, now), s.Passes, s.Rise, s.Fails, s.Fall, printable(reason))
	}
	writeDamping(tw, st.Services, now)
	writeUnits(tw, st.Services)
	fmt.Fprintln(tw, "\nPREFIX\tSERVICE\tWANTED\tON\tADVERTISED\tFLEET (NORMAL/LAST RESORT)\tMISMATCHES\tNOTE")
	for _, s := range st.Services {
		for _, p := range s.Prefixes {
			note := p.AdvertisedReason
			if p.Error != "" {
				note = "cannot change: " + p.Error
			}
			if b := p.BGP; b != nil {
				peers := fmt.Sprintf("advertised to %d of %d BGP peers", b.PeersAdvertised, b.PeersEstablished)
				if !b.Originated {
					peers = "not originated by bgpd"
				}
				note = strings.TrimSuffix(peers+"; "+note, "; ")
			}
			on := p.Interface
			if on == "" {
				on = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", p.Prefix, s.Name, yes(p.Wanted), on, p.Advertised, fleet(p), p.Mismatches, printable(note))
		}
	}
	fmt.Fprintln(tw, "\nSERVICE\tCHECK\tON FAIL\tRESULT\tLATENCY\tIN A ROW\tERROR")
	for _, s := range st.Services {
		for _, c := range s.Checks {
			result, msg := "pass", ""
			if !c.OK {
				result, msg = "FAIL", c.Reason+": "+c.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, printable(c.Check), cmp.Or(c.OnFail, "withdraw"), result, c.Latency(), c.Consecutive, printable(msg))
		}
	}
	return tw.Flush()
}

// writeDamping prints one line for each service with a damping penalty.
func writeDamping(w io.Writer, services []status.Service, now time.Time) {
	first := true
	for _, s := range services {
		d := s.Damping
		if d == nil || (d.Penalty == 0 && !d.Damped) {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nSERVICE\tDAMPING")
			first = false
		}
		line := fmt.Sprintf("penalty %.0f (suppress %.0f, reuse %.0f) after %d withdrawals", d.Penalty, d.Suppress, d.Reuse, d.Withdrawals)
		switch {
		case d.Damped && d.Mode == "observe":
			line += ": would be damped (mode observe), would be released"
		case d.Damped:
			line += ": damped, released"
		}
		if d.Damped {
			line += fmt.Sprintf(" in ~%s, at %s", d.ReleaseAt.Sub(now).Round(time.Second), d.ReleaseAt.UTC().Format("15:04:05"))
		}
		fmt.Fprintf(w, "%s\t%s\n", s.Name, line)
	}
}

func units(n int) string {
	if n == 1 {
		return "1 unit"
	}
	return fmt.Sprintf("%d units", n)
}

// writeUnits prints the watched units of the services that have some.
func writeUnits(w io.Writer, services []status.Service) {
	first := true
	for _, s := range services {
		for _, u := range s.Units {
			if first {
				fmt.Fprintln(w, "\nSERVICE\tUNIT\tSTATE\tWATCHED")
				first = false
			}
			state, watched := u.State(), "yes"
			if !u.Watched {
				watched = "no: " + u.Error
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Name, printable(u.Name), printable(state), printable(watched))
		}
	}
}

// serviceChecks is one service's check results, for writeChecks.
type serviceChecks struct {
	service string
	checks  []status.Check
}

// writeChecks prints one aligned row per check, as probe and check show
// them, and reports whether any check failed.
func writeChecks(w io.Writer, services []serviceChecks) (failed bool, err error) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tCHECK\tRESULT\tLATENCY\tERROR")
	for _, s := range services {
		for _, c := range s.checks {
			result, msg := "pass", ""
			if !c.OK {
				result, msg, failed = "FAIL", c.Reason+": "+c.Error, true
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.service, printable(c.Check), result, c.Latency(), printable(msg))
		}
	}
	return failed, tw.Flush()
}

// fleet counts the routers advertising a prefix, by class.
func fleet(p status.Prefix) string {
	normal, lastResort, known := p.AdvertiserCounts()
	if !known {
		return "unknown"
	}
	return fmt.Sprintf("%d/%d", normal, lastResort)
}

// printable shows text that others wrote (a drain's reason, a check's
// error) as it is, but with control characters escaped as Go would: a
// reason cannot move the cursor, clear the screen or break a row.
func printable(s string) string {
	if !strings.ContainsFunc(s, notPrintable) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if notPrintable(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// ago renders t as "3m12s ago".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func in(t, now time.Time) string { return "in " + t.Sub(now).Round(time.Second).String() }
