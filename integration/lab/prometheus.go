package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Prometheus is a real Prometheus server started in a namespace, scraping
// targets every second and evaluating rules every second.
type Prometheus struct {
	ns     *Namespace
	Listen string // host:port of its web API, inside ns
	Proc   *Process
}

// StartPrometheus starts prometheus in ns listening on listen, scraping
// the job "anycast-watchdog" (the name the shipped rules assume) at
// targets, with the rule files given, and waits until it is ready.
func (ns *Namespace) StartPrometheus(listen string, targets []string, rules ...string) (*Prometheus, error) {
	dir := filepath.Join(ns.lab.Dir, ns.Name+"-prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	quoted := func(ss []string) string {
		b, _ := json.Marshal(ss) // a JSON list is a YAML flow sequence
		return string(b)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: %s
scrape_configs:
  - job_name: anycast-watchdog
    static_configs:
      - targets: %s
`, quoted(rules), quoted(targets))
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := ns.Start("prometheus", "prometheus", "--config.file="+confPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	if err != nil {
		return nil, err
	}
	prom := &Prometheus{ns: ns, Listen: listen, Proc: p}
	if _, ok := WaitFor(30*time.Second, func() bool {
		_, err := ns.Get(listen, "/-/ready")
		return err == nil || p.Exited()
	}); !ok || p.Exited() {
		return nil, fmt.Errorf("prometheus in %s not ready; log:\n%s", ns.Name, p.Log())
	}
	return prom, nil
}

// Alert is one entry of /api/v1/alerts.
type Alert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"` // pending or firing
	ActiveAt time.Time         `json:"activeAt"`
	Value    string            `json:"value"`
}

// Name is the alert's name.
func (a Alert) Name() string { return a.Labels["alertname"] }

// String is the alert as an operator would read it in a list.
func (a Alert) String() string {
	var labels []string
	for k, v := range a.Labels {
		if k != "alertname" && k != "severity" {
			labels = append(labels, k+"="+v)
		}
	}
	slices.Sort(labels)
	return fmt.Sprintf("%s{%s} %s", a.Name(), strings.Join(labels, ","), a.State)
}

// Alerts reads /api/v1/alerts: every pending and firing alert.
func (p *Prometheus) Alerts() ([]Alert, error) {
	body, err := p.ns.Get(p.Listen, "/api/v1/alerts")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Status string `json:"status"`
		Data   struct {
			Alerts []Alert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return nil, fmt.Errorf("/api/v1/alerts: %w", err)
	}
	if doc.Status != "success" {
		return nil, fmt.Errorf("/api/v1/alerts: status %q", doc.Status)
	}
	return doc.Data.Alerts, nil
}

// UpTargets is how many targets the last scrape found up.
func (p *Prometheus) UpTargets() (int, error) {
	body, err := p.ns.Get(p.Listen, "/api/v1/query?query=sum(up)")
	if err != nil {
		return 0, err
	}
	var doc struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Data.Result) == 0 {
		return 0, fmt.Errorf("sum(up): %v: %.200s", err, body)
	}
	var n int
	s, _ := doc.Data.Result[0].Value[1].(string)
	_, err = fmt.Sscan(s, &n)
	return n, err
}
