// Command anycast-watchdog withdraws a host's anycast addresses from its
// loopback while the service behind them fails its health checks, so that
// the local ospfd stops advertising them, and puts them back when it
// recovers. See anycast-watchdog(8) and docs/.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"

	"github.com/anycast-watchdog/anycast-watchdog/advertise"
	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/control"
	"github.com/anycast-watchdog/anycast-watchdog/doctor"
	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
)

// version is set at link time (-X main.version=…) by the Makefile.
var version = ""

const usage = `Usage: anycast-watchdog [COMMAND] [--config PATH] [ARGS]

Withdraws anycast addresses from the loopback while their service fails its
health checks, so that the local ospfd stops advertising them.

Commands:
  run            run the daemon (the default when no command is given)
  check-config   validate the configuration; exit 0 when valid, 1 listing every problem
  probe [SVC…]   run each check of the named services (default: all) once and print
                 the results; changes nothing; exit 1 if any check fails
  doctor [--json]
                 audit this host's FRR and interfaces against the anycast recipe:
                 one finding per problem with its evidence and the lines that fix
                 it; exit 0 with no error finding, 1 with one or more, 2 on usage
  version        print the version

Commands to the running daemon, through its control socket:
  status [--json]               every service: state, why, prefixes (on the interface,
                                advertised by FRR), checks; FRR health; configuration
  drain SVC…|--all [--reason TEXT] [--for DURATION] [--force]
                                withdraw whatever the checks say (they keep running): at
                                last resort for drain_grace, then removed; survives
                                restarts; ends by itself after --for; refused when no
                                other router advertises a prefix at normal metric,
                                unless --force
  undrain SVC…|--all            back under the checks; each must rise again
  undamp SVC…|--all             clear the flap-damping penalty: a damped service whose
                                checks pass goes back to normal metric at once
  check SVC                     run that service's checks now and print them
  reload                        reload the configuration, as SIGHUP does

Options:
  --config PATH  configuration file (default ` + config.DefaultPath + `)
  --socket PATH  control socket; wins over the configuration's control_socket

Signals to the daemon: SIGHUP reloads the configuration (a bad one is
refused and the running one kept); SIGTERM or SIGINT stops it, applying
on_exit to the managed addresses.
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	name := "run"
	if len(args) > 0 && !isFlag(args[0]) {
		name, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("anycast-watchdog "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed by usageError: to stdout when asked for, else a hint
	fs.String("config", config.DefaultPath, "configuration file")
	for _, c := range subcommands() {
		if c.name == name {
			return c.run(fs, args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "anycast-watchdog: unknown command %q\n\n%s", name, usage)
	return 2
}

// subcommand is one command of the binary. Its run declares the flags it
// takes besides --config on fs (through flags, which the reference test
// also reads), parses args and does the work; it returns the exit status.
type subcommand struct {
	name  string
	flags func(fs *flag.FlagSet) // nil: --config only
	run   func(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int
}

// subcommands is every command the binary takes; anycast-watchdog(8)
// documents each with its flags (TestManPageCoversCommands).
func subcommands() []subcommand {
	client := func(name string) subcommand {
		return subcommand{name: name, flags: func(fs *flag.FlagSet) { clientFlags(fs) },
			run: func(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
				return clientCommand(name, fs, args, stdout, stderr)
			}}
	}
	return []subcommand{
		{name: "run", run: func(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
			if err := fs.Parse(args); err != nil {
				return usageError(err, stdout, stderr)
			}
			if fs.NArg() > 0 {
				fmt.Fprintf(stderr, "anycast-watchdog run: unexpected arguments %q\n", fs.Args())
				return 2
			}
			return run(configFlag(fs), stderr)
		}},
		{name: "check-config", run: func(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
			if err := fs.Parse(args); err != nil {
				return usageError(err, stdout, stderr)
			}
			return checkConfig(configFlag(fs), stdout, stderr)
		}},
		{name: "probe", run: func(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
			if err := fs.Parse(args); err != nil {
				return usageError(err, stdout, stderr)
			}
			return probe(configFlag(fs), fs.Args(), stdout, stderr)
		}},
		{name: "doctor", flags: func(fs *flag.FlagSet) { doctorFlags(fs) },
			run: func(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
				return doctorCommand(fs, args, command.Run, stdout, stderr)
			}},
		{name: "version", run: func(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
			if err := fs.Parse(args); err != nil {
				return usageError(err, stdout, stderr)
			}
			fmt.Fprintln(stdout, "anycast-watchdog", versionString())
			return 0
		}},
		{name: "help", run: func(_ *flag.FlagSet, _ []string, stdout, _ io.Writer) int {
			fmt.Fprint(stdout, usage)
			return 0
		}},
		client(control.CmdStatus), client(control.CmdDrain), client(control.CmdUndrain), client(control.CmdUndamp), client(control.CmdCheck), client(control.CmdReload),
	}
}

// configFlag is the --config every command takes.
func configFlag(fs *flag.FlagSet) string { return fs.Lookup("config").Value.String() }

// usageError answers a flag parsing error: the usage on --help (exit 0),
// else a hint (exit 2).
func usageError(err error, stdout, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintln(stderr, "Run 'anycast-watchdog --help' for usage.")
	return 2
}

func isFlag(s string) bool { return len(s) > 0 && s[0] == '-' }

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return "dev-" + s.Value[:min(12, len(s.Value))]
			}
		}
	}
	return "dev"
}

func checkConfig(path string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "anycast-watchdog: %v\n", err)
		return 1
	}
	for _, w := range append(cfg.Warnings, unitWarnings(cfg, lookupUnits)...) {
		fmt.Fprintf(stderr, "anycast-watchdog: warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: valid, %d services\n", path, len(cfg.Services))
	return 0
}

// unitWarnings asks systemd about the watched units: one it does not know
// is a warning, not an error (a service installed after the daemon's
// configuration is no mistake); so is a bus that cannot be asked.
func unitWarnings(cfg *config.Config, lookup doctor.UnitReader) []string {
	names := cfg.AllUnits()
	if len(names) == 0 {
		return nil
	}
	units, err := lookup(context.Background(), names)
	if err != nil {
		return []string{fmt.Sprintf("%s: units: cannot ask systemd about the watched units (%v); the daemon falls back to its checks while it cannot", cfg.Path, err)}
	}
	var out []string
	for _, u := range units {
		if u.Error == "" && u.LoadState == "loaded" {
			continue
		}
		for i, s := range cfg.Services {
			if j := slices.Index(s.Units, u.Name); j >= 0 {
				why := cmp.Or(u.Error, "systemd has it "+u.LoadState)
				out = append(out, fmt.Sprintf("%s: services[%d].units[%d]: %s: %s; it takes nothing out until systemd loads it", cfg.Path, i, j, u.Name, why))
			}
		}
	}
	return out
}

func probe(path string, names []string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "anycast-watchdog: %v\n", err)
		return 1
	}
	for _, n := range names {
		if _, ok := cfg.Service(n); !ok {
			fmt.Fprintf(stderr, "anycast-watchdog probe: no service %q in %s\n", n, path)
			return 2
		}
	}
	var rows []serviceChecks
	for _, svc := range cfg.Services {
		if len(names) > 0 && !slices.Contains(names, svc.Name) {
			continue
		}
		results, err := advertise.Probe(context.Background(), svc)
		if err != nil {
			fmt.Fprintf(stderr, "anycast-watchdog probe: %v\n", err)
			return 1
		}
		rows = append(rows, serviceChecks{service: svc.Name, checks: advertise.CheckStatuses(results)})
	}
	if failed, _ := writeChecks(stdout, rows); failed {
		return 1
	}
	return 0
}
