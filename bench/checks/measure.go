package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"
)

// histogram counts durations in 10 µs buckets up to 1 s (a last bucket
// holds the rest), so quantiles are exact to 10 µs and its size is fixed.
type histogram struct {
	buckets [100001]int
	n       int
	max     time.Duration
}

const bucketWidth = 10 * time.Microsecond

func (h *histogram) add(d time.Duration) {
	d = max(d, 0)
	h.buckets[min(int(d/bucketWidth), len(h.buckets)-1)]++
	h.n++
	h.max = max(h.max, d)
}

// quantile returns the upper edge of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	target, seen := int(q*float64(h.n)), 0
	for i, c := range h.buckets {
		if seen += c; seen > target {
			return time.Duration(i+1) * bucketWidth
		}
	}
	return h.max
}

// startProfile writes a CPU profile to path until the returned func is
// called; with no path it does nothing.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// rusage is the CPU of this process (user and kernel) and of its
// waited-for children, and this process's context switches: the one
// reading of getrusage every figure of the benchmark comes from.
type rusage struct {
	user, sys, children time.Duration
	switches            int64
}

func usage() rusage {
	var s, c syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &s)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &c)
	return rusage{user: time.Duration(s.Utime.Nano()), sys: time.Duration(s.Stime.Nano()),
		children: time.Duration(c.Utime.Nano() + c.Stime.Nano()), switches: s.Nvcsw + s.Nivcsw}
}

// self is this process's CPU, user and kernel.
func (u rusage) self() time.Duration { return u.user + u.sys }

func (u rusage) minus(v rusage) rusage {
	return rusage{user: u.user - v.user, sys: u.sys - v.sys, children: u.children - v.children, switches: u.switches - v.switches}
}

func (u rusage) plus(v rusage) rusage {
	return rusage{user: u.user + v.user, sys: u.sys + v.sys, children: u.children + v.children, switches: u.switches + v.switches}
}

func gcCycles() uint32 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.NumGC
}

func peakRSSMiB() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

func rssMiB() float64 {
	b, _ := os.ReadFile("/proc/self/statm")
	var size, resident int64
	fmt.Sscan(string(b), &size, &resident)
	return float64(resident*int64(os.Getpagesize())) / (1 << 20)
}
