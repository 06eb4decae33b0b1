package lab

// DNSServer starts dnsmasq inside ns, answering health.example. with answer
// on 127.0.0.1:53 and on any extra listen addresses, and nothing else.
func (ns *Namespace) DNSServer(name, answer string, listen ...string) (*Process, error) {
	argv := []string{"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--bind-dynamic", "--listen-address=127.0.0.1", "--port=53", "--address=/health.example/" + answer,
		"--user=root", "--group=root", "--pid-file", "--log-facility=-"}
	for _, a := range listen {
		argv = append(argv, "--listen-address="+a)
	}
	return ns.Start(name, argv...)
}
