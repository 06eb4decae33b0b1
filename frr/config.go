package frr

import (
	"strings"
)

// RunningConfig is one daemon's `show running-config`, cut into its
// top-level blocks ("interface lo", "router ospf", "router bgp 65001", …)
// and the lines outside any block. It is what doctor reads; nothing here
// ever writes FRR's configuration.
type RunningConfig struct {
	Global []string // top-level lines that open no block ("frr defaults traditional", …)
	Blocks []ConfigBlock
}

// ConfigBlock is a top-level block: its header and its body lines, trimmed,
// nested ones (address-family …) included in order; "exit" and "!" left out.
type ConfigBlock struct {
	Header string
	Lines  []string
}

// blockHeaders open a block in FRR's running-config.
var blockHeaders = []string{"interface ", "router ", "route-map ", "vrf ", "key chain ", "line ", "segment-routing", "bfd", "mpls "}

// ParseRunningConfig parses `show running-config` text. It never fails:
// lines it does not know are kept as they are, so rules see them as text.
func ParseRunningConfig(text string) RunningConfig {
	var rc RunningConfig
	var cur *ConfigBlock
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimRight(raw, " \r\t")
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || trimmed == "!" || strings.HasPrefix(trimmed, "Building configuration") ||
			strings.HasPrefix(trimmed, "Current configuration"):
			continue
		case line == "exit" || line == "end":
			cur = nil
			continue
		}
		indented := line != trimmed
		if indented && cur != nil {
			if trimmed != "exit" {
				cur.Lines = append(cur.Lines, trimmed)
			}
			continue
		}
		if isHeader(trimmed) {
			rc.Blocks = append(rc.Blocks, ConfigBlock{Header: trimmed})
			cur = &rc.Blocks[len(rc.Blocks)-1]
			continue
		}
		cur = nil
		rc.Global = append(rc.Global, trimmed)
	}
	return rc
}

func isHeader(line string) bool {
	for _, h := range blockHeaders {
		if strings.HasPrefix(line, h) || line == strings.TrimSpace(h) {
			return true
		}
	}
	return false
}

// Block returns the block whose header is exactly header.
func (rc RunningConfig) Block(header string) (ConfigBlock, bool) {
	for _, b := range rc.Blocks {
		if b.Header == header {
			return b, true
		}
	}
	return ConfigBlock{}, false
}

// BlocksWithPrefix returns the blocks whose header starts with prefix
// ("router bgp").
func (rc RunningConfig) BlocksWithPrefix(prefix string) []ConfigBlock {
	var out []ConfigBlock
	for _, b := range rc.Blocks {
		if strings.HasPrefix(b.Header, prefix) {
			out = append(out, b)
		}
	}
	return out
}

// Interface returns the block of interface name, if any.
func (rc RunningConfig) Interface(name string) (ConfigBlock, bool) {
	return rc.Block("interface " + name)
}

// Statements returns the fields of every body line that starts with the
// words given ("network"; "timers lsa min-arrival"), whole words only.
func (b ConfigBlock) Statements(words string) [][]string {
	want := strings.Fields(words)
	var out [][]string
	for _, l := range b.Lines {
		f := strings.Fields(l)
		if len(f) >= len(want) && equalWords(f[:len(want)], want) {
			out = append(out, f)
		}
	}
	return out
}

// Has reports whether a body line starts with the words given.
func (b ConfigBlock) Has(words string) bool { return len(b.Statements(words)) > 0 }

func equalWords(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
