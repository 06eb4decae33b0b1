package frr

import (
	"net/netip"
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

// NetworkCovering finds a `network N area A` statement of an OSPF router
// block whose N contains p.
func (b ConfigBlock) NetworkCovering(p netip.Prefix) (netip.Prefix, bool) {
	for _, st := range b.Statements("network") {
		if n, err := netip.ParsePrefix(st[1]); err == nil && n.Bits() <= p.Bits() && n.Contains(p.Addr()) {
			return n, true
		}
	}
	return netip.Prefix{}, false
}

// FirstArea is the area of an OSPF router block's first network
// statement, else "0".
func (b ConfigBlock) FirstArea() string {
	for _, st := range b.Statements("network") {
		if len(st) >= 4 && st[2] == "area" {
			return st[3]
		}
	}
	return "0"
}

// AddressFamily is the part of a router block between header
// ("address-family ipv4 unicast") and exit-address-family.
func (b ConfigBlock) AddressFamily(header string) ConfigBlock {
	out := ConfigBlock{Header: header}
	in := false
	for _, l := range b.Lines {
		switch {
		case l == header:
			in = true
		case l == "exit-address-family":
			in = false
		case in:
			out.Lines = append(out.Lines, l)
		}
	}
	return out
}

// OSPF6Area is the OSPFv3 area of interface dev: `ipv6 ospf6 area A` on
// the interface, or `interface DEV area A` under router ospf6 (older FRR);
// "" when in none.
func (rc RunningConfig) OSPF6Area(dev string) string {
	if iface, ok := rc.Interface(dev); ok {
		if st := iface.Statements("ipv6 ospf6 area"); len(st) > 0 && len(st[0]) > 3 {
			return st[0][3]
		}
	}
	router, _ := rc.Block("router ospf6")
	for _, st := range router.Statements("interface " + dev + " area") {
		if len(st) > 3 {
			return st[3]
		}
	}
	return ""
}
