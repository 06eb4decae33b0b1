package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/damping"
	"github.com/anycast-watchdog/anycast-watchdog/trust"
)

var (
	// Linux interface names: at most 15 bytes; never starting with '-', so a
	// name can never be read as an option by ip.
	interfaceName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}$`)
	// Service names end up in log fields, metric labels and state file names.
	serviceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	// FRR pathspace names become a directory under /var/run/frr.
	pathspaceName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	// systemd unit names (systemd.unit(5)): a name, an optional @instance,
	// and a unit type; at most 255 bytes (UNIT_NAME_MAX).
	unitName = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.(service|socket|target|mount|path|timer|scope|slice|swap|device|automount)$`)
)

// validator checks a decoded, defaulted Config and normalises a few values
// (a DNS server without a port gets :53, a query gets its final dot).
type validator struct {
	r   *report
	sys system
}

// fail records a problem, unless the value never decoded: that was reported.
func (v *validator) fail(path, format string, args ...any) {
	if !v.r.decodeFailed(path) {
		v.r.add(v.r.lineOf(path), path, fmt.Sprintf(format, args...))
	}
}

func (v *validator) present(path string) bool { return v.r.present(path) }

// warn records something that works but that the operator should know,
// with the file and line; it does not stop the load.
func (v *validator) warn(path, format string, args ...any) {
	loc := v.r.file
	if line := v.r.lineOf(path); line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, line)
	}
	v.r.warnings = append(v.r.warnings, fmt.Sprintf("%s: %s: %s", loc, path, fmt.Sprintf(format, args...)))
}

func validate(r *report, c *Config, sys system) {
	v := &validator{r: r, sys: sys}
	if !interfaceName.MatchString(c.Interface) || c.Interface == "." || c.Interface == ".." {
		v.fail("interface", "%q is not a valid interface name", c.Interface)
	}
	switch lr := c.LastResortInterface; {
	case lr == "":
	case !interfaceName.MatchString(lr) || lr == "." || lr == "..":
		v.fail("last_resort_interface", "%q is not a valid interface name (\"\" turns failing open off)", lr)
	case lr == c.Interface:
		v.fail("last_resort_interface", "%q is also the anycast interface; use another (\"\" turns failing open off)", lr)
	}
	oneOf(v, "on_exit", c.OnExit, OnExitKeep, OnExitWithdraw)
	oneOf(v, "log_level", c.LogLevel, "debug", "info", "warn", "error")
	oneOf(v, "log_format", c.LogFormat, "text", "json")
	trustedProgram(v, "ip", c.IP)
	trustedProgram(v, "frr.vtysh", c.FRR.Vtysh)
	if c.FRR.Pathspace != "" && !pathspaceName.MatchString(c.FRR.Pathspace) {
		v.fail("frr.pathspace", "%q is not a valid FRR pathspace name", c.FRR.Pathspace)
	}
	positive(v, "frr.timeout", c.FRR.Timeout)
	positive(v, "frr.fleet_interval", c.FRR.FleetInterval)
	if m := c.FRR.LastResortMetric; m < 1 || m > 65535 {
		v.fail("frr.last_resort_metric", "%d is not an OSPF cost (1 to 65535)", m)
	}
	absolute(v, "control_socket", c.ControlSocket)
	absolute(v, "state_dir", c.StateDir)
	if c.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(c.MetricsListen); err != nil || !validPort(port) {
			v.fail("metrics_listen", "%q is not host:port (use \"\" to disable metrics)", c.MetricsListen)
		}
	}

	validateDamping(v, "damping", c.Damping, nil)

	names := map[string]string{}
	owners := map[netip.Addr]string{} // anycast address → "service "x" (path)"
	for i := range c.Services {
		s := &c.Services[i]
		p := servicePath(i)
		switch {
		case !v.present(p + ".name"):
			v.fail(p, "name is required")
		case !serviceName.MatchString(s.Name):
			v.fail(p+".name", "%q is not a valid service name (letters, digits, '.', '_', '-'; at most 63)", s.Name)
		case names[s.Name] != "":
			v.fail(p+".name", "%q is already the name of %s", s.Name, names[s.Name])
		default:
			names[s.Name] = p
		}
		if len(s.Prefixes) == 0 {
			v.fail(p+".prefixes", "at least one prefix is required")
		}
		for j, pfx := range s.Prefixes {
			pp := fmt.Sprintf("%s.prefixes[%d]", p, j)
			if msg := hostRouteProblem(pfx); msg != "" {
				v.fail(pp, "%s %s", pfx, msg)
				continue
			}
			if other, dup := owners[pfx.Addr()]; dup {
				v.fail(pp, "%s is already managed by %s", pfx, other)
				continue
			}
			owners[pfx.Addr()] = fmt.Sprintf("service %q (%s)", s.Name, pp)
		}
		validateTiming(v, p, s)
		validateDamping(v, p+".damping", s.Damping, v.present)
		if len(s.Checks) == 0 {
			v.fail(p+".checks", "at least one check is required")
		}
		withdraws := false
		for j := range s.Checks {
			validateCheck(v, checkPath(i, j), s, &s.Checks[j])
			withdraws = withdraws || s.Checks[j].OnFail == OnFailWithdraw
		}
		validateUnits(v, p+".units", s.Units)
		if len(s.Checks) > 0 && !withdraws {
			v.fail(p+".checks", "no check has on_fail: withdraw, so nothing could take the service out when it is dead; give one check on_fail: withdraw (the default)")
		}
	}
	// Only after every service's prefixes are known can a check be tested
	// against all of them.
	for i, s := range c.Services {
		for j, ch := range s.Checks {
			for _, a := range checkTargets(ch) {
				if owner, ok := owners[a]; ok {
					v.fail(checkPath(i, j), "%s targets %s, an anycast address of %s: "+
						"while withdrawn here the probe would reach another node and pass; probe a unicast address such as 127.0.0.1",
						ch, a, owner)
				}
			}
		}
	}
}

// validateUnits checks that each watched unit is a systemd unit name, named
// once; whether systemd knows it is for check-config to ask (a warning):
// a unit installed later is no error.
func validateUnits(v *validator, path string, units []string) {
	seen := map[string]bool{}
	for i, u := range units {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case len(u) > 255 || !unitName.MatchString(u) || strings.HasPrefix(u, "-"):
			v.fail(p, "%q is not a systemd unit name (such as unbound.service)", u)
		case seen[u]:
			v.fail(p, "%q is listed twice", u)
		}
		seen[u] = true
	}
}

func validateTiming(v *validator, p string, s *Service) {
	positive(v, p+".interval", s.Interval)
	if s.Interval <= 0 {
		return // the rules below compare against interval
	}
	if positive(v, p+".fast_interval", s.FastInterval) && s.FastInterval > s.Interval {
		v.fail(p+".fast_interval", "%s is longer than interval %s", s.FastInterval, s.Interval)
	}
	if positive(v, p+".timeout", s.Timeout) && s.Timeout > s.Interval {
		v.fail(p+".timeout", "%s is longer than interval %s", s.Timeout, s.Interval)
	}
	atLeastOne(v, p+".rise", s.Rise)
	atLeastOne(v, p+".fall", s.Fall)
	if s.DrainGrace < 0 {
		v.fail(p+".drain_grace", "%s is negative", s.DrainGrace)
	}
}

// maxSuppressHalfLives bounds max_suppress in half-lives: the ceiling is
// reuse × 2^(max_suppress/half_life), and beyond this it is no number a
// penalty can usefully reach.
const maxSuppressHalfLives = 64

// validateDamping checks the damping block at path. A service's block
// (inherits non-nil: whether the service's file set a key) is judged only
// for what it sets itself, so that a problem of the top-level block it
// inherits is reported once, there.
func validateDamping(v *validator, path string, d Damping, inherits func(string) bool) {
	own := func(keys ...string) bool {
		if inherits == nil {
			return true
		}
		for _, k := range keys {
			if inherits(path + "." + k) {
				return true
			}
		}
		return false
	}
	// at names the first of keys the block sets itself, for a rule that
	// relates two keys.
	at := func(keys ...string) string {
		for _, k := range keys {
			if own(k) {
				return path + "." + k
			}
		}
		return path + "." + keys[0]
	}
	if own("mode") {
		oneOf(v, path+".mode", d.Mode, damping.ModeSuppress, damping.ModeObserve, damping.ModeOff)
	}
	if own("penalty") && d.Penalty <= 0 {
		v.fail(path+".penalty", "%d must be above zero", d.Penalty)
	}
	if own("suppress") && d.Suppress <= 0 {
		v.fail(path+".suppress", "%d must be above zero", d.Suppress)
	}
	if own("reuse") && d.Reuse <= 0 {
		v.fail(path+".reuse", "%d must be above zero", d.Reuse)
	}
	if own("half_life") {
		positive(v, path+".half_life", d.HalfLife)
	}
	if d.Reuse > 0 && d.Suppress > 0 && d.Reuse >= d.Suppress && own("reuse", "suppress") {
		v.fail(at("reuse", "suppress"), "reuse %d must be below suppress %d: a damped service is released below reuse", d.Reuse, d.Suppress)
	}
	if d.HalfLife <= 0 || d.Reuse <= 0 || !own("max_suppress", "half_life", "reuse", "suppress") {
		return
	}
	halfLives := float64(d.MaxSuppress) / float64(d.HalfLife)
	switch {
	case d.MaxSuppress < d.HalfLife:
		v.fail(at("max_suppress", "half_life"), "max_suppress %s must be at least half_life %s", d.MaxSuppress, d.HalfLife)
	case halfLives > maxSuppressHalfLives:
		v.fail(at("max_suppress", "half_life"), "max_suppress %s is more than %d half-lives (half_life %s)", d.MaxSuppress, maxSuppressHalfLives, d.HalfLife)
	case d.Suppress > 0 && d.Params().Ceiling() < float64(d.Suppress):
		v.fail(at("max_suppress", "suppress"), "the penalty's ceiling, reuse × 2^(max_suppress/half_life) = %.0f, is below suppress %d: "+
			"the service could never be damped; raise max_suppress or lower suppress", d.Params().Ceiling(), d.Suppress)
	}
}

func validateCheck(v *validator, p string, s *Service, ch *Check) {
	// A check that inherits the service timeout is judged at the service.
	if v.present(p+".timeout") && positive(v, p+".timeout", ch.Timeout) && s.Interval > 0 && ch.Timeout > s.Interval {
		v.fail(p+".timeout", "%s is longer than the service's interval %s", ch.Timeout, s.Interval)
	}
	oneOf(v, p+".on_fail", ch.OnFail, OnFailWithdraw, OnFailDegrade, OnFailReport)
	if t, ok := lookupCheckType(ch.Type); ok {
		t.validate(v, p, ch)
	} else if ch.Type == "" {
		v.fail(p, "type is required (%s)", checkTypeList())
	} else {
		v.fail(p+".type", "%q is not a check type (%s)", ch.Type, checkTypeList())
	}
}

// hostRouteProblem says why p cannot be an anycast host route, or "".
func hostRouteProblem(p netip.Prefix) string {
	a := p.Addr()
	switch {
	case a.Is4In6():
		return "is an IPv4-mapped IPv6 address; write the IPv4 /32"
	case p.Bits() != a.BitLen():
		return fmt.Sprintf("is not a host route (want /%d)", a.BitLen())
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast(), a.IsLinkLocalUnicast():
		return "is not a unicast address that can be announced"
	}
	return ""
}

// checkTargets lists the IP literals a check sends traffic to. Host names
// are not resolved at load time.
func checkTargets(ch Check) []netip.Addr {
	t, ok := lookupCheckType(ch.Type)
	if !ok {
		return nil
	}
	var out []netip.Addr
	for _, s := range t.targets(ch) {
		if ap, ok := ipPort(s, 0); ok {
			out = append(out, ap.Addr().Unmap())
		}
	}
	return out
}

func oneOf(v *validator, path, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.fail(path, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

func positive(v *validator, path string, d time.Duration) bool {
	if d <= 0 {
		v.fail(path, "%s must be longer than zero", d)
		return false
	}
	return true
}

func atLeastOne(v *validator, path string, n int) {
	if n < 1 {
		v.fail(path, "%d must be at least 1", n)
	}
}

// trustedProgram checks a program the daemon runs besides the exec checks:
// an absolute path that nobody but root and the daemon's user can change.
// One that is missing is left to the read-back and doctor, which say so.
func trustedProgram(v *validator, path, value string) {
	if !filepath.IsAbs(value) {
		v.fail(path, "%q is not an absolute path", value)
		return
	}
	if err := v.sys.TrustProgram(value); trust.IsUntrusted(err) {
		v.fail(path, "%v", err)
	}
}

func absolute(v *validator, path, value string) {
	if !filepath.IsAbs(value) {
		v.fail(path, "%q is not an absolute path", value)
	}
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
