package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/anycast-watchdog/anycast-watchdog/config"
	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
)

// doctorFlags declares doctor's flags: --json.
func doctorFlags(fs *flag.FlagSet) (asJSON *bool) {
	return fs.Bool("json", false, "doctor: print the report as JSON")
}

// doctorCommand is `anycast-watchdog doctor [--config PATH] [--json]`:
// exit 0 without an error finding, 1 with one or more, 2 on usage errors
// (and a configuration that cannot be loaded).
func doctorCommand(fs *flag.FlagSet, args []string, run command.Runner, stdout, stderr io.Writer) int {
	asJSON := doctorFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError(err, stdout, stderr)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "anycast-watchdog doctor: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg, err := config.LoadUnjudged(configFlag(fs))
	if err != nil {
		fmt.Fprintf(stderr, "anycast-watchdog doctor: %v\n", err)
		return 2
	}
	r := audit(context.Background(), cfg, run)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return 1
		}
	} else if err := r.WriteText(stdout); err != nil {
		return 1
	}
	if r.Errors > 0 {
		return 1
	}
	return 0
}
