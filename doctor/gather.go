package doctor

import (
	"context"
	"errors"
	"net/netip"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/frr"
	"github.com/anycast-watchdog/anycast-watchdog/ifaddr"
	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
)

// FRR is what Gather reads from the routing daemons (frr.Client).
type FRR interface {
	RunningConfig(ctx context.Context, daemon string) (frr.RunningConfig, error)
	Instance(ctx context.Context, fam frr.Family) (frr.Instance, error)
}

// Gather reads what the rules need: the configuration's interfaces and
// prefixes, every interface's addresses with ip (through run), and each
// routing daemon's running-config and instance through vtysh. It never
// fails: what cannot be read is recorded, and the rules say what it means.
// It runs at most 8 commands, one after the other, each with the
// client's own deadline.
func Gather(ctx context.Context, cfg *config.Config, run command.Runner, fr FRR) Facts {
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
