package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/control"
)

// socketPath finds the control socket: --socket wins, else the config
// file's control_socket. A config that does not load (it may be mid-edit)
// falls back to the default socket, with a warning.
func socketPath(socket, configPath string, stderr io.Writer) string {
	if socket != "" {
		return socket
	}
	cfg, err := config.LoadUnjudged(configPath)
	if err != nil {
		def, _ := config.Parse("defaults", nil)
		fmt.Fprintf(stderr, "anycast-watchdog: warning: %v\nanycast-watchdog: using the default control socket %s\n", err, def.ControlSocket)
		return def.ControlSocket
	}
	return cfg.ControlSocket
}

// clientOptions are the client commands' flags.
type clientOptions struct {
	socket, reason     *string
	asJSON, all, force *bool
	forDur             *time.Duration
}

// clientFlags declares the flags of the commands to the running daemon.
func clientFlags(fs *flag.FlagSet) clientOptions {
	return clientOptions{
		socket: fs.String("socket", "", "control socket (default: control_socket of the configuration)"),
		asJSON: fs.Bool("json", false, "status: print the status document as JSON"),
		all:    fs.Bool("all", false, "drain/undrain/undamp: every service"),
		reason: fs.String("reason", "", "drain: why (logged and shown in status)"),
		forDur: fs.Duration("for", 0, "drain: end the drain by itself after this long (e.g. 30m)"),
		force:  fs.Bool("force", false, "drain: even when no other router advertises a prefix at normal metric"),
	}
}

// clientCommand runs status, drain, undrain, undamp, check or reload against the
// running daemon.
func clientCommand(cmd string, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	opts := clientFlags(fs)
	socket, asJSON, all, reason, forDur, force := opts.socket, opts.asJSON, opts.all, opts.reason, opts.forDur, opts.force
	services, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "Run 'anycast-watchdog --help' for usage.")
		return 2
	}
	configPath := configFlag(fs)
	req := control.Request{Command: cmd, Services: services, All: *all, Reason: *reason, Force: *force}
	if flagSet(fs, "for") {
		if *forDur <= 0 {
			fmt.Fprintf(stderr, "anycast-watchdog %s: --for %s: want a positive duration such as 30m (leave --for out to drain until undrain)\n", cmd, forDur)
			return 2
		}
		req.For = forDur.String()
	}
	switch cmd {
	case control.CmdStatus, control.CmdReload:
		if len(services) > 0 {
			fmt.Fprintf(stderr, "anycast-watchdog %s: takes no service names\n", cmd)
			return 2
		}
	case control.CmdDrain, control.CmdUndrain, control.CmdUndamp:
		if *all == (len(services) > 0) {
			fmt.Fprintf(stderr, "anycast-watchdog %s: name services or give --all\n", cmd)
			return 2
		}
	case control.CmdCheck:
		if len(services) != 1 {
			fmt.Fprintln(stderr, "anycast-watchdog check: name one service")
			return 2
		}
	}
	resp, err := control.Do(socketPath(*socket, configPath, stderr), req)
	if err != nil {
		fmt.Fprintf(stderr, "anycast-watchdog %s: %v\n", cmd, err)
		return 1
	}
	switch {
	case cmd == control.CmdStatus && *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(resp.Status)
	case cmd == control.CmdStatus:
		writeTable(stdout, *resp.Status, time.Now())
	case cmd == control.CmdCheck:
		if failed, _ := writeChecks(stdout, []serviceChecks{{service: services[0], checks: resp.Checks}}); failed {
			return 1
		}
	default:
		fmt.Fprintln(stdout, resp.Message)
	}
	return 0
}

// flagSet reports whether the flag name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parseInterspersed parses flags that may come after positional arguments
// ("drain dns --reason x") and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
