// Package procstat reads a process's CPU, context switches and resident
// memory from /proc, for the benchmarks that measure the daemon as its own
// process (bench/exec, bench/failover). Readings are zero where /proc
// cannot be read (the process is gone).
package procstat

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Usage is one reading of a process.
type Usage struct {
	Self time.Duration // user and system CPU of every thread
	// Children is the CPU of the children it has waited for plus what its
	// live children have used so far (a long-lived child, such as the
	// daemon's ip monitor, is only waited for at the end): a difference
	// of two readings is the children's CPU in between, whether they
	// ended meanwhile or not.
	Children time.Duration
	Switches int64 // voluntary and involuntary, of every thread
}

// Of reads pid's Usage.
func Of(pid int) Usage {
	var u Usage
	if f := statFields(pid); len(f) > 14 {
		u.Self, u.Children = ticks(f, 11)+ticks(f, 12), ticks(f, 13)+ticks(f, 14)
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		child, err := strconv.Atoi(filepath.Base(filepath.Dir(st)))
		if err != nil {
			continue
		}
		if f := statFields(child); len(f) > 14 && f[1] == strconv.Itoa(pid) {
			u.Children += ticks(f, 11) + ticks(f, 12) + ticks(f, 13) + ticks(f, 14)
		}
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, t := range tasks {
		for _, v := range statusFields(t, "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches") {
			n, _ := strconv.ParseInt(v, 10, 64)
			u.Switches += n
		}
	}
	return u
}

// Resident is a process's resident set now, in MiB: all of it, and its
// anonymous part (heap, stacks: what only this process holds). The rest is
// file-backed, mostly the program's own pages, shared page cache that the
// kernel maps ahead of use (fault-around) and may drop.
type Resident struct{ All, Anon float64 }

// ResidentOf is pid's resident set now; zero when unreadable.
func ResidentOf(pid int) Resident {
	f := statusFields(fmt.Sprintf("/proc/%d/status", pid), "VmRSS", "RssAnon")
	return Resident{All: kbToMiB(f["VmRSS"]), Anon: kbToMiB(f["RssAnon"])}
}

func kbToMiB(v string) float64 {
	kb, _ := strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64)
	return kb / 1024
}

// statusFields returns the values of keys in a /proc status file, by key
// (none when unreadable).
func statusFields(path string, keys ...string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && slices.Contains(keys, k) {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// statFields are the fields of /proc/PID/stat after the command's name
// (the state is [0], the parent [1], utime [11]); nil when unreadable.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
}

// ticks is field i of stat fields, clock ticks, as a duration.
func ticks(f []string, i int) time.Duration {
	v, _ := strconv.ParseInt(f[i], 10, 64)
	return time.Duration(v) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}
