package lab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// FRR is one FRR instance (zebra, ospfd, ospf6d) in a namespace, using the
// namespace's name as its pathspace: configs in /etc/frr/<ns>, sockets in
// /var/run/frr/<ns>, reached with `vtysh -N <ns>`.
type FRR struct {
	ns      *Namespace
	Daemons map[string]*Process
}

// OSPFConfig is what the lab writes into one instance's configuration.
type OSPFConfig struct {
	RouterID   string
	Interfaces []string // point-to-point links; lo is always passive
	// Networks are the IPv4 `network … area 0` statements; leaving out the
	// anycast range makes a node whose config does not cover its prefix.
	Networks []string
	// LoInOSPF6 puts lo into OSPFv3 area 0.
	LoInOSPF6 bool
	// MinArrival0 sets `timers lsa min-arrival 0`, so that a restore right
	// after a withdrawal is accepted at once.
	MinArrival0 bool
	// LastResort names the last-resort interface, put in both areas as
	// docs/frr.md's recipe says: passive, cost 65535.
	LastResort string
	// SPFHold is the initial SPF hold time in ms (`timers throttle spf 0
	// HOLD 1000`); 0 means the recipe's 10.
	SPFHold int
}

var ospfTemplate = template.Must(template.New("ospfd").Parse(`hostname {{.Host}}
interface lo
 ip ospf passive
!
{{with .LastResort}}interface {{.}}
 ip ospf passive
 ip ospf cost {{$.LastResortCost}}
!
{{end}}{{range .Interfaces}}interface {{.}}
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 3
!
{{end}}router ospf
 ospf router-id {{.RouterID}}
{{range .Networks}} network {{.}} area 0
{{end}} timers throttle spf 0 {{.Hold}} 1000
{{if .MinArrival0}} timers lsa min-arrival 0
{{end}}!
`))

var ospf6Template = template.Must(template.New("ospf6d").Parse(`hostname {{.Host}}
{{if .LoInOSPF6}}interface lo
 ipv6 ospf6 area 0
 ipv6 ospf6 passive
!
{{end}}{{with .LastResort}}interface {{.}}
 ipv6 ospf6 area 0
 ipv6 ospf6 passive
 ipv6 ospf6 cost {{$.LastResortCost}}
!
{{end}}{{range .Interfaces}}interface {{.}}
 ipv6 ospf6 area 0
 ipv6 ospf6 network point-to-point
 ipv6 ospf6 hello-interval 1
 ipv6 ospf6 dead-interval 3
!
{{end}}router ospf6
 ospf6 router-id {{.RouterID}}
 timers throttle spf 0 {{.Hold}} 1000
{{if .MinArrival0}} timers lsa min-arrival 0
{{end}}!
`))

// StartFRR writes the instance's configuration and starts its daemons in
// the foreground, so the lab holds their PIDs. Close stops them and removes
// the configuration and run directories.
func (ns *Namespace) StartFRR(c OSPFConfig) (*FRR, error) {
	files, err := c.Files(ns.Name)
	if err != nil {
		return nil, err
	}
	return ns.StartFRRFiles(files)
}

// Files renders the configuration files of an instance named host:
// zebra.conf, ospfd.conf, ospf6d.conf.
func (c OSPFConfig) Files(host string) (map[string]string, error) {
	hold := c.SPFHold
	if hold == 0 {
		hold = 10
	}
	data := struct {
		OSPFConfig
		Host           string
		Hold           int
		LastResortCost int
	}{c, host, hold, lastResortCost}
	files := map[string]string{"zebra.conf": "hostname " + host + "\n"}
	for name, tmpl := range map[string]*template.Template{"ospfd.conf": ospfTemplate, "ospf6d.conf": ospf6Template} {
		var b strings.Builder
		if err := tmpl.Execute(&b, data); err != nil {
			return nil, err
		}
		files[name] = b.String()
	}
	return files, nil
}

// frrDaemons are the daemons StartFRRFiles starts, in order, each when its
// configuration file is given (zebra always; mgmtd first where the FRR has
// one).
var frrDaemons = []string{"mgmtd", "zebra", "staticd", "ospfd", "ospf6d", "bgpd"}

// hasMgmtd says whether this FRR has mgmtd (FRR 10): it then holds the
// configuration of staticd, which takes none from its own file.
func hasMgmtd() bool {
	_, err := os.Stat("/usr/lib/frr/mgmtd")
	return err == nil
}

// StartFRRFiles writes the given configuration files (by name:
// "ospfd.conf", …) and starts zebra and every daemon that has one.
func (ns *Namespace) StartFRRFiles(files map[string]string) (*FRR, error) {
	frrUser, err := user.Lookup("frr")
	if err != nil {
		return nil, fmt.Errorf("no frr user: is frr installed? %w", err)
	}
	ns.lab.frrStateOnce.Do(func() { ns.lab.removeNewFRRState() })
	uid, _ := strconv.Atoi(frrUser.Uid)
	gid, _ := strconv.Atoi(frrUser.Gid)
	confDir, runDir := filepath.Join("/etc/frr", ns.Name), filepath.Join("/var/run/frr", ns.Name)
	for _, d := range []string{confDir, runDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		d := d
		ns.lab.onClose(func() { os.RemoveAll(d) })
		os.Chown(d, uid, gid)
	}
	if _, ok := files["zebra.conf"]; !ok {
		files["zebra.conf"] = "hostname " + ns.Name + "\n"
	}
	files["vtysh.conf"] = ""
	static := ""
	if hasMgmtd() {
		// FRR 10: mgmtd holds staticd's configuration and neither reads a
		// file of the pathspace; the lines go to mgmtd through vtysh, as
		// on a real FRR 10 host, once the daemons run.
		static, files["mgmtd.conf"] = files["staticd.conf"], ""
		if static != "" {
			files["staticd.conf"] = ""
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(confDir, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	f := &FRR{ns: ns, Daemons: map[string]*Process{}}
	for _, daemon := range frrDaemons {
		if _, ok := files[daemon+".conf"]; !ok {
			continue
		}
		if err := f.Start(daemon); err != nil {
			return nil, err
		}
		// The other daemons connect to zebra's socket (and mgmtd's) at start.
		if sock, ok := map[string]string{"zebra": "zserv.api", "mgmtd": "mgmtd_fe.sock"}[daemon]; ok {
			if _, ok := WaitFor(3*time.Second, func() bool {
				_, err := os.Stat(filepath.Join(runDir, sock))
				return err == nil
			}); !ok {
				return nil, fmt.Errorf("%s in %s did not come up; log:\n%s", daemon, ns.Name, f.Daemons[daemon].Log())
			}
		}
	}
	if static != "" {
		argv := []string{"-c", "configure terminal"}
		for _, line := range strings.Split(strings.TrimSpace(static), "\n") {
			argv = append(argv, "-c", line)
		}
		if out, err := f.vtysh(argv...); err != nil {
			return nil, fmt.Errorf("static routes through mgmtd in %s: %v: %s", ns.Name, err, out)
		}
	}
	return f, nil
}

// frrStateFiles are written by ospfd/ospf6d outside their pathspace.
var frrStateFiles = []string{"ospfd-gr.json", "ospf6d-gr.json", "ospf6d-at-seq-no.dat"}

// removeNewFRRState arranges for Close to remove the FRR state files that
// did not exist before the lab started its daemons, and only those.
func (l *Lab) removeNewFRRState() {
	for _, name := range frrStateFiles {
		path := filepath.Join("/var/run/frr", name)
		if _, err := os.Stat(path); os.IsNotExist(err) {
			l.onClose(func() { os.Remove(path) })
		}
	}
}

// Start (re)starts one daemon of the instance.
func (f *FRR) Start(daemon string) error {
	argv := []string{"/usr/lib/frr/" + daemon, "-N", f.ns.Name, "-F", "traditional", "-A", "127.0.0.1", "--log", "stdout"}
	if daemon != "mgmtd" && !(daemon == "staticd" && hasMgmtd()) { // FRR 10's take no -f
		argv = append(argv, "-f", filepath.Join("/etc/frr", f.ns.Name, daemon+".conf"))
	}
	p, err := f.ns.Start(daemon, argv...)
	if err != nil {
		return err
	}
	f.Daemons[daemon] = p
	return nil
}

// Vtysh runs show commands against the instance.
func (f *FRR) Vtysh(cmds ...string) (string, error) {
	var argv []string
	for _, c := range cmds {
		argv = append(argv, "-c", c)
	}
	return f.vtysh(argv...)
}

func (f *FRR) vtysh(args ...string) (string, error) {
	out, err := exec.Command("vtysh", append([]string{"-N", f.ns.Name}, args...)...).Output()
	return string(out), err
}

// NextHops returns the devices through which ns routes to p, sorted: one
// per anycast node reachable at equal cost.
func (ns *Namespace) NextHops(p netip.Prefix) []string {
	family := "-4"
	if p.Addr().Is6() {
		family = "-6"
	}
	out, err := exec.Command("ip", "-n", ns.Name, family, "-j", "route", "show", p.String()).Output()
	if err != nil {
		return nil
	}
	devs, _ := ParseNextHops(out)
	return devs
}

// ParseNextHops reads `ip -j route show PREFIX`: a single path has its dev
// at the top, a multipath route a nexthops list.
func ParseNextHops(data []byte) ([]string, error) {
	var routes []struct {
		Dev      string `json:"dev"`
		NextHops []struct {
			Dev string `json:"dev"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal(data, &routes); err != nil {
		return nil, err
	}
	var devs []string
	for _, r := range routes {
		if r.Dev != "" {
			devs = append(devs, r.Dev)
		}
		for _, nh := range r.NextHops {
			devs = append(devs, nh.Dev)
		}
	}
	sort.Strings(devs)
	return devs, nil
}

// Link connects a and b with a veth pair named after each end's peer and
// puts the addresses on it.
func (l *Lab) Link(a *Namespace, aDev, aAddr string, b *Namespace, bDev, bAddr string) error {
	if out, err := exec.Command("ip", "link", "add", aDev, "netns", a.Name, "type", "veth", "peer", "name", bDev, "netns", b.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link add %s: %w: %s", aDev, err, out)
	}
	for _, end := range []struct {
		ns        *Namespace
		dev, addr string
	}{{a, aDev, aAddr}, {b, bDev, bAddr}} {
		if _, err := end.ns.Run("ip", "addr", "add", end.addr, "dev", end.dev); err != nil {
			return err
		}
		if _, err := end.ns.Run("ip", "link", "set", "dev", end.dev, "up"); err != nil {
			return err
		}
	}
	return nil // deleting either namespace deletes the pair
}

// OSPFCounters reads, from ospfd, the sequence number of the instance's own
// router-LSA (one more per origination) and the SPF runs in area 0.
func (f *FRR) OSPFCounters() (routerLSASeq, spfRuns int, err error) {
	out, err := f.Vtysh("show ip ospf json", "show ip ospf database router self-originate json")
	if err != nil {
		return 0, 0, fmt.Errorf("vtysh in %s: %w", f.ns.Name, err)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var overview struct {
		Areas map[string]struct {
			SPF int `json:"spfExecutedCounter"`
		} `json:"areas"`
	}
	var self struct {
		RouterLinkStates map[string]map[string]struct {
			Seq string `json:"lsaSeqNumber"`
		} `json:"Router Link States"`
	}
	if err := dec.Decode(&overview); err != nil {
		return 0, 0, fmt.Errorf("show ip ospf json in %s: %w", f.ns.Name, err)
	}
	if err := dec.Decode(&self); err != nil {
		return 0, 0, fmt.Errorf("own router-LSA in %s: %w", f.ns.Name, err)
	}
	for _, lsas := range self.RouterLinkStates {
		for _, lsa := range lsas {
			seq, err := strconv.ParseUint(lsa.Seq, 16, 32)
			if err != nil {
				return 0, 0, fmt.Errorf("own router-LSA in %s: sequence %q: %w", f.ns.Name, lsa.Seq, err)
			}
			routerLSASeq = int(seq)
		}
	}
	return routerLSASeq, overview.Areas["0.0.0.0"].SPF, nil
}
