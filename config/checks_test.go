package config

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

// Every key of Check belongs to a type in the table, except the keys every
// check has: a new key cannot be added without saying whose.
func TestCheckTableCoversEveryKey(t *testing.T) {
	seen := map[string]string{}
	for _, ct := range checkTypes() {
		if ct.validate == nil || ct.describe == nil || ct.targets == nil {
			t.Errorf("%s checks lack validation, a description or their targets", ct.name)
		}
		for _, k := range ct.keys {
			if slices.Contains(ct.keys[:slices.Index(ct.keys, k)], k) {
				t.Errorf("%s checks list key %q twice", ct.name, k)
			}
			seen[k] = ct.name
		}
	}
	typ := reflect.TypeOf(Check{})
	for i := 0; i < typ.NumField(); i++ {
		key := typ.Field(i).Tag.Get("yaml")
		switch key {
		case "", "-", "type", "timeout", "on_fail":
			if _, ok := seen[key]; ok {
				t.Errorf("key %q, which every check has, is in the table", key)
			}
			continue
		}
		if _, ok := seen[key]; !ok {
			t.Errorf("key %q of Check belongs to no check type in checkTypes", key)
		}
		delete(seen, key)
	}
	for k, owner := range seen {
		t.Errorf("the table gives %s checks a key %q that Check does not have", owner, k)
	}
	if got, want := CheckTypes(), []string{CheckDNS, CheckTCP, CheckHTTP, CheckExec, CheckTLS}; !slices.Equal(got, want) {
		t.Errorf("CheckTypes() = %v, want %v", got, want)
	}
	if got := checkTypeList(); got != "dns, tcp, http, exec or tls" {
		t.Errorf("checkTypeList() = %q", got)
	}
}

func TestIPPort(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // "" when not an IP literal
	}{
		{"192.0.2.1", "192.0.2.1:53"},
		{"192.0.2.1:5353", "192.0.2.1:5353"},
		{"2001:db8::1", "[2001:db8::1]:53"},
		{"[2001:db8::1]", "[2001:db8::1]:53"},
		{"[2001:db8::1]:5353", "[2001:db8::1]:5353"},
		{"::ffff:192.0.2.1", "[::ffff:192.0.2.1]:53"},
		{"ns.example", ""},
		{"ns.example:53", ""},
		{"192.0.2.1:99999", ""},
		{"", ""},
	} {
		t.Run(tt.in, func(t *testing.T) {
			ap, ok := ipPort(tt.in, 53)
			got := ""
			if ok {
				got = ap.String()
			}
			if got != tt.want {
				t.Errorf("ipPort(%q, 53) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	// checkTargets compares addresses unmapped: a v4-mapped literal is the v4 address.
	if got := checkTargets(Check{Type: CheckTCP, Address: "[::ffff:192.0.2.53]:53"}); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.0.2.53")}) {
		t.Errorf("checkTargets of a mapped address = %v", got)
	}
}
