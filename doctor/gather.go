package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
	"github.com/anycast-watchdog/anycast-watchdog/trust"
)

// FRR is what Gather reads from the routing daemons (frr.Client).
type FRR interface {
	RunningConfig(ctx context.Context, daemon string) (frr.RunningConfig, error)
	Instance(ctx context.Context, fam frr.Family) (frr.Instance, error)
}

// Gather reads what the rules need: the configuration's interfaces and
// prefixes, every interface's addresses with ip (through run), and each
// routing daemon's running-config and instance through vtysh, and the
// watched units through units (nil: not read). It never fails: what cannot
// be read is recorded, and the rules say what it means. It runs at most 8
// commands, one after the other, each with the client's own deadline.
func Gather(ctx context.Context, cfg *config.Config, run command.Runner, fr FRR, units UnitReader) Facts {
	f := Facts{Interface: cfg.Interface, LastResortInterface: cfg.LastResortInterface,
		LastResortMetric: cfg.FRR.LastResortMetric, Vtysh: cfg.FRR.Vtysh, Daemons: map[string]Daemon{}}
	seen := map[netip.Prefix]bool{}
	for _, s := range cfg.Services {
		for _, p := range s.Prefixes {
			if !seen[p] {
				seen[p] = true
				f.Managed = append(f.Managed, p)
			}
		}
	}
	f.Untrusted = judgePrograms(cfg, trust.Self())
	if names := cfg.AllUnits(); len(names) > 0 && units != nil {
		var err error
		if f.Units, err = units(ctx, names); err != nil {
			f.UnitsError = err.Error()
		}
	}
	if links, err := ifaddr.ShowAll(ctx, run, cfg.IP); err != nil {
		f.AddressError = err.Error()
	} else {
		f.Links = map[string][]netip.Prefix{}
		for _, l := range links {
			f.Links[l.Name] = append([]netip.Prefix{}, l.Prefixes...)
		}
	}
	for _, name := range []string{"ospfd", "ospf6d", "bgpd"} {
		rc, err := fr.RunningConfig(ctx, name)
		var fe *frr.Error
		switch {
		case errors.As(err, &fe) && (fe.Kind == frr.VtyshMissing || fe.Kind == frr.PermissionDenied):
			// Nothing else can be read either.
			f.VtyshError, f.Daemons = fe, map[string]Daemon{}
			return f
		case errors.As(err, &fe) && fe.Kind == frr.NotRunning:
			f.Daemons[name] = Daemon{}
			continue
		case err != nil:
			f.Daemons[name] = Daemon{Running: true, Error: err.Error()}
			continue
		}
		d := Daemon{Running: true, Config: rc}
		for _, fam := range frr.Families() {
			if fam.IGPDaemon() != name {
				continue
			}
			if _, ok := rc.Block(fam.IGPRouter()); ok {
				in, err := fr.Instance(ctx, fam)
				if err != nil {
					d.Error = err.Error()
				}
				d.RouterID, d.Aggregates = in.RouterID, in.Aggregates
			}
		}
		f.Daemons[name] = d
	}
	return f
}

// judgePrograms judges every program cfg has the daemon run, as the
// loader does and as each exec check does before it runs: the file may
// have changed since the configuration was loaded.
func judgePrograms(cfg *config.Config, self trust.Identity) []UntrustedProgram {
	var out []UntrustedProgram
	judge := func(key, path string) {
		var u *trust.UntrustedError
		if err := trust.Program(path, self); errors.As(err, &u) {
			out = append(out, UntrustedProgram{Key: key, Err: u})
		}
	}
	judge("ip", cfg.IP)
	judge("frr.vtysh", cfg.FRR.Vtysh)
	for i, s := range cfg.Services {
		for j, c := range s.Checks {
			if c.Type == config.CheckExec && len(c.Command) > 0 {
				judge(fmt.Sprintf("services[%d].checks[%d].command[0]", i, j), c.Command[0])
			}
		}
	}
	return out
}
