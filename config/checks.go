package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// checkType is everything the configuration knows about one type of check:
// the keys only it takes, their defaults and their validation. checkTypes
// is the one list of types: the decoder's rule that a key belongs to one
// type, the defaults, validation and the "not a check type" message are
// all derived from it, and package checker has a constructor for each
// (tested there).
type checkType struct {
	name     string
	keys     []string                                       // besides type, timeout and on_fail, which every check has
	defaults func(ch *Check, present func(key string) bool) // nil: none
	validate func(v *validator, path string, ch *Check)
	// describe names a check in logs, status and metrics: "tcp 127.0.0.1:53".
	describe func(ch Check) string
	// targets are the addresses the check sends traffic to, as written;
	// checkTargets keeps the IP literals among them.
	targets func(ch Check) []string
}

// checkTypes lists the types in the order messages name them.
func checkTypes() []checkType {
	return []checkType{
		{name: CheckDNS, keys: []string{"server", "query", "qtype", "transport", "rcode", "answer_contains", "server_name", "ca_file"},
			defaults: dnsDefaults, validate: validateDNS,
			describe: func(ch Check) string {
				return fmt.Sprintf("dns %s %s/%s %s", ch.Server, ch.Query, ch.QType, ch.Transport)
			},
			targets: func(ch Check) []string { return []string{ch.Server} }},
		{name: CheckTCP, keys: []string{"address"}, validate: validateTCP,
			describe: func(ch Check) string { return "tcp " + ch.Address },
			targets:  func(ch Check) []string { return []string{ch.Address} }},
		{name: CheckHTTP, keys: []string{"url", "status", "body_contains"}, defaults: httpDefaults, validate: validateHTTP,
			describe: func(ch Check) string { return "http " + ch.URL },
			targets:  httpTargets},
		{name: CheckExec, keys: []string{"command", "user"}, validate: validateExec,
			describe: func(ch Check) string { return "exec " + strings.Join(ch.Command, " ") },
			targets:  execTargets},
		{name: CheckTLS, keys: []string{"address", "server_name", "ca_file", "min_validity"},
			defaults: tlsDefaults, validate: validateTLS,
			describe: func(ch Check) string { return "tls " + ch.Address + " " + ch.ServerName },
			targets:  func(ch Check) []string { return []string{ch.Address} }},
	}
}

// CheckTypes names every type of check.
func CheckTypes() []string {
	var out []string
	for _, t := range checkTypes() {
		out = append(out, t.name)
	}
	return out
}

func lookupCheckType(name string) (checkType, bool) {
	i := slices.IndexFunc(checkTypes(), func(t checkType) bool { return t.name == name })
	if i < 0 {
		return checkType{}, false
	}
	return checkTypes()[i], true
}

// checkKeyOwners names the types a check key belongs to (address is tcp's
// and tls's); none for the keys every check has.
func checkKeyOwners(key string) []string {
	var owners []string
	for _, t := range checkTypes() {
		if slices.Contains(t.keys, key) {
			owners = append(owners, t.name)
		}
	}
	return owners
}

// orList is "a", "a or b", "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// checkTypeList is "dns, tcp, http or exec".
func checkTypeList() string {
	return orList(CheckTypes())
}

func httpTargets(ch Check) []string {
	if u, err := url.Parse(ch.URL); err == nil {
		return []string{u.Host}
	}
	return nil
}

// execTargets are the arguments that look like addresses: "-H 192.0.2.53",
// "--server=192.0.2.53:53", "http://192.0.2.53/".
func execTargets(ch Check) []string {
	var out []string
	for _, arg := range ch.Command[min(1, len(ch.Command)):] {
		if i := strings.LastIndex(arg, "="); i >= 0 {
			arg = arg[i+1:]
		}
		if u, err := url.Parse(arg); err == nil && u.Host != "" {
			arg = u.Host
		}
		out = append(out, arg)
	}
	return out
}

func dnsDefaults(ch *Check, present func(string) bool) {
	setDefault(&ch.QType, present("qtype"), defaultDNSQType)
	setDefault(&ch.Transport, present("transport"), defaultDNSTransport)
	setDefault(&ch.Rcode, present("rcode"), defaultDNSRcode)
}

func httpDefaults(ch *Check, present func(string) bool) {
	setDefault(&ch.Status, present("status"), defaultHTTPStatus)
}

func validateDNS(v *validator, p string, ch *Check) {
	ch.Transport = strings.ToLower(ch.Transport)
	oneOf(v, p+".transport", ch.Transport, "udp", "tcp", "tls")
	port := uint16(defaultDNSPort)
	if ch.Transport == "tls" {
		port = defaultDoTPort
		if !v.present(p + ".server_name") {
			v.fail(p, "a dns check over tls needs server_name (sent as SNI, and the name the certificate must carry)")
		}
	} else {
		for _, key := range []string{"server_name", "ca_file"} {
			if v.present(p + "." + key) {
				v.fail(p+"."+key, "applies to transport: tls only (transport is %s)", ch.Transport)
			}
		}
	}
	validateTLSNames(v, p, ch)
	if !v.present(p + ".server") {
		v.fail(p, "a dns check needs server (address or address:port)")
	} else if ap, ok := ipPort(ch.Server, port); ok && ap.Port() != 0 {
		ch.Server = ap.String()
	} else {
		v.fail(p+".server", "%q is not an IP address with an optional port", ch.Server)
	}
	if !v.present(p + ".query") {
		v.fail(p, "a dns check needs query (the name to ask for)")
	} else if _, ok := dns.IsDomainName(ch.Query); !ok {
		v.fail(p+".query", "%q is not a domain name", ch.Query)
	} else {
		ch.Query = dns.Fqdn(ch.Query)
	}
	ch.QType = strings.ToUpper(ch.QType)
	if _, ok := dns.StringToType[ch.QType]; !ok {
		v.fail(p+".qtype", "%q is not a DNS record type", ch.QType)
	}
	ch.Rcode = strings.ToUpper(ch.Rcode)
	if _, ok := dns.StringToRcode[ch.Rcode]; !ok {
		v.fail(p+".rcode", "%q is not a DNS response code such as NOERROR or NXDOMAIN", ch.Rcode)
	}
}

func validateTCP(v *validator, p string, ch *Check) {
	if !v.present(p + ".address") {
		v.fail(p, "a tcp check needs address (host:port)")
	} else if host, port, err := net.SplitHostPort(ch.Address); err != nil || host == "" || !validPort(port) {
		v.fail(p+".address", "%q is not host:port", ch.Address)
	}
}

func validateHTTP(v *validator, p string, ch *Check) {
	u, err := url.Parse(ch.URL)
	switch {
	case !v.present(p + ".url"):
		v.fail(p, "an http check needs url")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		v.fail(p+".url", "%q is not an http:// or https:// URL", ch.URL)
	}
	if ch.Status < 100 || ch.Status > 599 {
		v.fail(p+".status", "%d is not an HTTP status code", ch.Status)
	}
}

// defaultMinValidity: two weeks' notice of an expiring certificate.
const defaultMinValidity = 14 * 24 * time.Hour

func tlsDefaults(ch *Check, present func(string) bool) {
	setDefault(&ch.MinValidity, present("min_validity"), defaultMinValidity)
}

func validateTLS(v *validator, p string, ch *Check) {
	if !v.present(p + ".address") {
		v.fail(p, "a tls check needs address (an IP address and port, such as 127.0.0.1:853)")
	} else if ap, err := netip.ParseAddrPort(ch.Address); err != nil || ap.Port() == 0 {
		v.fail(p+".address", "%q is not an IP address and port such as 127.0.0.1:853", ch.Address)
	}
	if !v.present(p + ".server_name") {
		v.fail(p, "a tls check needs server_name (sent as SNI, and the name the certificate must carry)")
	}
	validateTLSNames(v, p, ch)
	if ch.MinValidity < 0 {
		v.fail(p+".min_validity", "%s is negative", ch.MinValidity)
	}
	if ch.MinValidity > 0 && ch.OnFail == OnFailWithdraw {
		v.warn(p+".on_fail", "a tls check with min_validity %s withdraws the service when its certificate nears expiry; "+
			"every node usually carries the same certificate, so every node would withdraw at once: consider on_fail: report", ch.MinValidity)
	}
}

// validateTLSNames checks server_name and ca_file where they are set (tls
// checks, dns checks over tls).
func validateTLSNames(v *validator, p string, ch *Check) {
	if v.present(p+".server_name") && !hostName(ch.ServerName) {
		v.fail(p+".server_name", "%q is not a host name", ch.ServerName)
	}
	if ch.CAFile != "" {
		if !filepath.IsAbs(ch.CAFile) {
			v.fail(p+".ca_file", "%q is not an absolute path", ch.CAFile)
		} else if _, err := os.Stat(ch.CAFile); err != nil {
			v.fail(p+".ca_file", "%q cannot be read: %v", ch.CAFile, errors.Unwrap(err))
		}
	}
}

func hostName(s string) bool {
	_, ok := dns.IsDomainName(s)
	return ok && s != "" && !strings.ContainsAny(s, " /")
}

func validateExec(v *validator, p string, ch *Check) {
	if len(ch.Command) == 0 || ch.Command[0] == "" {
		v.fail(p+".command", "an exec check needs command, a list starting with the program's absolute path")
		return
	}
	prog := ch.Command[0]
	if !filepath.IsAbs(prog) {
		v.fail(p+".command[0]", "%q is not an absolute path (the daemon runs without a shell or a useful PATH)", prog)
		return
	}
	fi, err := os.Stat(prog)
	switch {
	case err != nil:
		v.fail(p+".command[0]", "%q: %v", prog, unwrapPathError(err))
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		v.fail(p+".command[0]", "%q is not an executable file", prog)
	default:
		if err := v.sys.TrustProgram(prog); err != nil {
			v.fail(p+".command[0]", "%v", err)
		}
	}
	if v.present(p + ".user") {
		cred, err := resolveUser(v.sys, ch.User)
		if err != nil {
			v.fail(p+".user", "%q: %v", ch.User, err)
		}
		ch.Credential = cred
	}
}

// ipPort parses an IP literal with an optional port: "192.0.2.1",
// "192.0.2.1:53", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:53";
// port stands in when none is written. Host names are not IP literals.
func ipPort(s string, port uint16) (netip.AddrPort, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, true
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, port), true
	}
	return netip.AddrPort{}, false
}
