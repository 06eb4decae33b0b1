package advertise

import (
	"cmp"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// firstDelay spreads the services' rounds over their interval, stable per
// name, so that many services do not all probe in the same millisecond.
func firstDelay(name string, interval time.Duration) time.Duration {
	return time.Duration(uint64(nameHash(name)) % uint64(interval))
}

func nameHash(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

// offsets gives each service its place in its interval. A service's own
// hash places it (firstDelay), except services with an exec check: those
// sharing an interval are spaced evenly, in the order of their hashes from
// the first one's place, because hashed places fall close together by
// chance and forks close together cost their children more
// (docs/performance.md, "Exec checks").
func offsets(services []config.Service) map[string]time.Duration {
	out := map[string]time.Duration{}
	execByInterval := map[time.Duration][]string{}
	for _, s := range services {
		out[s.Name] = firstDelay(s.Name, s.Interval)
		if hasExecCheck(s) {
			execByInterval[s.Interval] = append(execByInterval[s.Interval], s.Name)
		}
	}
	for interval, names := range execByInterval {
		slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(nameHash(a), nameHash(b)), strings.Compare(a, b)) })
		first := out[names[0]]
		for rank, name := range names {
			out[name] = (first + time.Duration(rank)*(interval/time.Duration(len(names)))) % interval
		}
	}
	return out
}
