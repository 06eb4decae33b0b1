// Package doctor audits this host's FRR configuration, link-state
// database and interfaces against the anycast recipe: whether removing a
// managed address really withdraws it, whether failing open can work, and
// what makes either slower or riskier than it should be, and whether
// another user could change a program the daemon runs. Gather does the
// reading (vtysh and ip, through injected runners; the programs' metadata,
// through package trust); Audit is a pure
// function of what was read, one rule per kind of mistake, each finding
// with its evidence and the exact lines that fix it. The daemon and the
// `doctor` command share both.
package doctor

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/status"
	"github.com/anycast-watchdog/anycast-watchdog/trust"
)

// Severity says how bad a finding is.
type Severity string

const (
	// Error: removing the address will not withdraw it, or something will
	// break (failing open, the read-back).
	Error Severity = "error"
	// Warning: it works, but slower or riskier than it should.
	Warning Severity = "warning"
	// Info: worth knowing; nothing to fix.
	Info Severity = "info"
)

// Finding is one problem. Check is a stable name for the rule that found
// it; the JSON form only ever gains fields.
type Finding struct {
	Severity Severity `json:"severity"`
	Check    string   `json:"check"`
	Object   string   `json:"object"` // the prefix, interface or daemon concerned
	Message  string   `json:"message"`
	Evidence string   `json:"evidence"` // the config lines or command output that show it
	Fix      string   `json:"fix"`      // the exact lines to change; "" when none
}

// Report is every finding, errors first, and the counts.
type Report struct {
	Findings []Finding `json:"findings"`
	status.Doctor
}

// WriteText writes the report for a terminal: one paragraph per finding.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%-7s %s: %s\n", f.Severity, f.Object, f.Message)
		if f.Evidence != "" {
			fmt.Fprintf(&b, "        evidence: %s\n", indent(f.Evidence, "                  "))
		}
		if f.Fix != "" {
			fmt.Fprintf(&b, "        fix:      %s\n", indent(f.Fix, "                  "))
		}
	}
	fmt.Fprintf(&b, "doctor: %s\n", r.Summary())
	_, err := io.WriteString(w, b.String())
	return err
}

func indent(s, with string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+with) }

// Facts is everything the rules look at.
type Facts struct {
	// From the configuration.
	Interface           string
	LastResortInterface string // "" when failing open is off
	LastResortMetric    int
	Managed             []netip.Prefix // every service's prefixes
	// From ip: every interface of the host; AddressError when unread.
	Links        map[string][]netip.Prefix
	AddressError string
	// From vtysh. VtyshError is set when vtysh could not be used at all
	// (missing, or the user may not talk to FRR); Daemons then is empty.
	Vtysh      string
	VtyshError *frr.Error
	Daemons    map[string]Daemon // ospfd, ospf6d, bgpd
	// Untrusted are the programs the daemon runs (exec checks, ip, vtysh)
	// that another user could change, as read now.
	Untrusted []UntrustedProgram
	// Units are the watched systemd units (units:) as systemd has them;
	// UnitsError is set when the system bus could not be asked.
	Units      []status.Unit
	UnitsError string
}

// UnitReader reads systemd units' states (unitwatch.Lookup on the system
// bus).
type UnitReader func(ctx context.Context, names []string) ([]status.Unit, error)

// UntrustedProgram is a program the daemon runs that another user could
// change.
type UntrustedProgram struct {
	Key string // where the configuration names it: ip, frr.vtysh, services[0].checks[1].command[0]
	Err *trust.UntrustedError
}

// Daemon is what was read from one routing daemon.
type Daemon struct {
	Running  bool
	Error    string // it runs but could not be read
	Config   frr.RunningConfig
	RouterID string
	// Aggregates are the summary and external LSAs of the area (ospfd).
	Aggregates []frr.Aggregate
}

// Audit applies every rule to what was read.
func Audit(f Facts) Report {
	var fs []Finding
	for _, rule := range rules {
		fs = append(fs, rule(f)...)
	}
	order := map[Severity]int{Error: 0, Warning: 1, Info: 2}
	slices.SortStableFunc(fs, func(a, b Finding) int { return order[a.Severity] - order[b.Severity] })
	r := Report{Findings: fs}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	for _, x := range fs {
		switch x.Severity {
		case Error:
			r.Errors++
		case Warning:
			r.Warnings++
		default:
			r.Infos++
		}
	}
	return r
}

// rules, in the order their findings are listed within a severity.
var rules = []func(Facts) []Finding{
	untrustedPrograms,
	vtyshUsable,
	notCovered,
	summarised,
	routerID,
	notPassive,
	prefixSuppressed,
	minArrival,
	lastResort,
	strayAddresses,
	bgpNetwork,
	bgpOrigination,
	watchedUnits,
}

// family selects the managed prefixes of one family.
func (f Facts) family(fam frr.Family) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range f.Managed {
		if frr.FamilyOf(p) == fam {
			out = append(out, p)
		}
	}
	return out
}

// daemon returns a daemon that runs and was read.
func (f Facts) daemon(name string) (Daemon, bool) {
	d, ok := f.Daemons[name]
	return d, ok && d.Running && d.Error == ""
}

func evidence(block string, lines [][]string, none string) string {
	if len(lines) == 0 {
		return block + ": " + none
	}
	var parts []string
	for _, l := range lines {
		parts = append(parts, strings.Join(l, " "))
	}
	return block + ": " + strings.Join(parts, "; ")
}

func (f Facts) hasAddress(a netip.Addr) bool {
	for _, ps := range f.Links {
		for _, p := range ps {
			if p.Addr() == a {
				return true
			}
		}
	}
	return false
}

func managedAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

func managedPrefix(ps []netip.Prefix, q netip.Prefix) bool {
	for _, p := range ps {
		if p == q {
			return true
		}
	}
	return false
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func joinPrefixes(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}
