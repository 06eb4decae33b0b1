package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

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

// DoTServer starts unbound inside ns serving DNS over TLS on 127.0.0.1:853
// with the certificate and key in certFile and keyFile: health.example.
// answers answer, nothing else resolves. It waits until dig (bind9-dnsutils)
// gets that answer over TLS.
func (ns *Namespace) DoTServer(name, answer, certFile, keyFile string) (*Process, error) {
	dir := filepath.Join(ns.lab.Dir, ns.Name+"-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`server:
  username: ""
  chroot: ""
  directory: %q
  pidfile: ""
  use-syslog: no
  logfile: ""
  do-daemonize: no
  num-threads: 1
  do-ip6: no
  interface: 127.0.0.1@853
  tls-port: 853
  tls-service-pem: %q
  tls-service-key: %q
  access-control: 127.0.0.0/8 allow
  local-zone: "health.example." static
  local-data: "health.example. A %s"
remote-control:
  control-enable: no
`, dir, certFile, keyFile, answer)), 0o644); err != nil {
		return nil, err
	}
	p, err := ns.Start(name, "unbound", "-d", "-c", conf)
	if err != nil {
		return nil, err
	}
	if _, ok := WaitFor(5*time.Second, func() bool {
		out, _ := ns.Run("dig", "+tls", "+short", "+tries=1", "+time=1", "@127.0.0.1", "health.example.", "A")
		return strings.TrimSpace(string(out)) == answer || p.Exited()
	}); !ok || p.Exited() {
		p.Stop(time.Second)
		return nil, fmt.Errorf("unbound in %s does not answer over TLS; log:\n%s", ns.Name, p.Log())
	}
	return p, nil
}
