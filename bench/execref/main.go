// Command execref is the reference that bench/exec measures the shipped
// daemon against: the plainest Go health checker of many services, one
// goroutine per service with a ticker, each tick running the check with
// exec.CommandContext(ctx, argv...).Output() under a deadline. The
// services' tickers start evenly spread over the interval, as the
// daemon's exec services are. On SIGUSR1 it prints its counts so far
// ("checks N failed N timeouts N"); it runs until SIGTERM or SIGINT.
//
//	execref -services 50 -interval 1s -timeout 500ms -- /bin/true
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	services := flag.Int("services", 50, "services, each checked by running the command")
	interval := flag.Duration("interval", time.Second, "each service's interval")
	timeout := flag.Duration("timeout", 500*time.Millisecond, "each check's deadline")
	flag.Parse()
	argv := flag.Args()
	if len(argv) == 0 || *services < 1 || *interval <= 0 {
		fmt.Fprintln(os.Stderr, "usage: execref [-services N] [-interval D] [-timeout D] -- COMMAND [ARG...]")
		os.Exit(2)
	}
	var checks, failed, timeouts atomic.Int64
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for i := range *services {
		go func() {
			select { // spread evenly over the interval
			case <-time.After(time.Duration(i) * *interval / time.Duration(*services)):
			case <-ctx.Done():
				return
			}
			tick := time.NewTicker(*interval)
			defer tick.Stop()
			for {
				cctx, cancel := context.WithTimeout(ctx, *timeout)
				_, err := exec.CommandContext(cctx, argv[0], argv[1:]...).Output()
				if err != nil {
					failed.Add(1)
					if cctx.Err() != nil {
						timeouts.Add(1)
					}
				}
				cancel()
				checks.Add(1)
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	for {
		select {
		case <-usr1:
			fmt.Printf("checks %d failed %d timeouts %d\n", checks.Load(), failed.Load(), timeouts.Load())
		case <-ctx.Done():
			return
		}
	}
}
