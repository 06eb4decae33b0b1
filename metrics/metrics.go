// Package metrics exposes the daemon to Prometheus on its own registry
// (never the global one). State comes from the same status document as
// `anycast-watchdog status` (package status), read at scrape time; events
// (rounds, checks, transitions) are counted as they happen. New comes
// first, so that the supervisor can report rounds to it; Attach adds the
// status source once the daemon exists.
package metrics

import (
	"context"
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/anycast-watchdog/anycast-watchdog/advertise"
	"github.com/anycast-watchdog/anycast-watchdog/checker"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

const ns = "anycast_watchdog"

// Source is what the collector reads at scrape time.
type Source interface {
	// Report is the status document for a reader: a scrape may have the
	// fleet view read again when it is fleet_interval old.
	Report(ctx context.Context) status.Document
	Reloads() (succeeded, failed uint64)
}

// Metrics holds the registry and the event metrics.
type Metrics struct {
	Registry      *prometheus.Registry
	transitions   *prometheus.CounterVec
	withdrawals   *prometheus.CounterVec
	checkDuration *prometheus.HistogramVec
	checkFailures *prometheus.CounterVec
	lateness      prometheus.Histogram
}

// New registers every event metric on a new registry; the state metrics
// come with Attach.
func New(version string) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "transitions_total",
			Help: "State changes of a service, by the state entered."}, []string{"service", "to"}),
		withdrawals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "withdrawals_total",
			Help: "Withdrawals that failing checks caused (the service left normal advertisement), each adding to its damping penalty; drains, reloads and restarts are not counted."},
			[]string{"service"}),
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "check_duration_seconds",
			Help:    "How long each check took, passing or failing.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"service", "check"}),
		checkFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "check_failures_total",
			Help: "Failed checks, by reason (timeout, refused, rcode, answer, status, body, exit, handshake, name, chain, expiry, unreachable, starved, untrusted, error)."},
			[]string{"service", "check", "reason"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "round_lateness_seconds",
			Help:    "How late rounds started against their schedule.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
		Help: "Always 1; the labels say which build runs."}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.Registry.MustRegister(m.transitions, m.withdrawals, m.checkDuration, m.checkFailures, m.lateness, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Attach adds the metrics read from src at scrape time. Call it once.
func (m *Metrics) Attach(src Source) { m.Registry.MustRegister(&stateCollector{src: src}) }

// ObserveRound counts one round; it is the supervisor's OnRound hook.
func (m *Metrics) ObserveRound(r advertise.Round) {
	if r.Unit == nil { // a unit's event is no scheduled round
		m.lateness.Observe(max(0, r.Started.Sub(r.Scheduled).Seconds()))
	}
	for _, c := range r.Results {
		m.checkDuration.WithLabelValues(r.Service, c.Check).Observe(c.Latency.Seconds())
		if c.Err != nil {
			m.checkFailures.WithLabelValues(r.Service, c.Check, checker.Reason(c.Err)).Inc()
		}
	}
	if r.From != r.To {
		m.transitions.WithLabelValues(r.Service, string(r.To)).Inc()
	}
	if r.Withdrawn {
		m.withdrawals.WithLabelValues(r.Service).Inc()
	}
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

var (
	descState = prometheus.NewDesc(ns+"_service_state", "1 for the state the service is in (up, falling, rising, degraded, damped, last_resort, down, draining, drained), 0 for the others.",
		[]string{"service", "state"}, nil)
	descPresent = prometheus.NewDesc(ns+"_prefix_present", "1 when the anycast prefix is on the interface.",
		[]string{"service", "prefix"}, nil)
	descAdvertised = prometheus.NewDesc(ns+"_prefix_advertised", "1 for what the FRR read-back says of the prefix (yes, no, unknown), 0 for the others.",
		[]string{"service", "prefix", "advertised"}, nil)
	descMismatches = prometheus.NewDesc(ns+"_frr_readback_mismatches_total", "Episodes where FRR's advertisement disagreed with the interface.",
		[]string{"service", "prefix"}, nil)
	descCheckUp = prometheus.NewDesc(ns+"_check_up", "1 when the check passed in the service's last round, 0 when it failed; on_fail says what its failure does (withdraw, degrade, report).",
		[]string{"service", "check", "on_fail"}, nil)
	descCertExpiry = prometheus.NewDesc(ns+"_tls_cert_expiry_timestamp_seconds", "When the first certificate of a tls check's verified chain expires (Unix time), as of its last handshake that verified.",
		[]string{"service", "check"}, nil)
	descDampingPenalty = prometheus.NewDesc(ns+"_damping_penalty", "The service's flap-damping penalty now; damped at or above suppress until it decays below reuse. Absent when its damping mode is off.",
		[]string{"service"}, nil)
	descDamped = prometheus.NewDesc(ns+"_service_damped", "1 while the service's penalty damps it (in observe mode: would damp it, without holding it); absent when its damping mode is off.",
		[]string{"service", "mode"}, nil)
	descDrained = prometheus.NewDesc(ns+"_service_drained", "1 while an operator has drained the service.",
		[]string{"service"}, nil)
	descDrainExpiry = prometheus.NewDesc(ns+"_service_drain_expiry_timestamp_seconds", "When a timed drain ends (Unix time); absent for untimed drains.",
		[]string{"service"}, nil)
	descVtyshErrors = prometheus.NewDesc(ns+"_frr_vtysh_errors_total", "Failed FRR read-backs, by daemon and kind (not-running, vtysh-missing, permission-denied, timeout, bad-output, failed).",
		[]string{"daemon", "kind"}, nil)
	descFRRReads = prometheus.NewDesc(ns+"_frr_reads_total", "Reads asked of an FRR daemon, by what was read: self (its own LSAs, to confirm this node's advertisements), area (the whole area's link-state database: the fleet view, read only while a decision, a drain, status or a scrape needs it), prefixes (bgpd's paths of the managed prefixes).",
		[]string{"daemon", "what"}, nil)
	descFRRUp = prometheus.NewDesc(ns+"_frr_readback_up", "1 when the last read-back from the daemon worked.",
		[]string{"daemon"}, nil)
	descBGPOriginated = prometheus.NewDesc(ns+"_prefix_bgp_originated", "1 when bgpd has a valid path for the prefix sourced here; absent where bgpd does not run with router bgp.",
		[]string{"service", "prefix"}, nil)
	descBGPPeers = prometheus.NewDesc(ns+"_prefix_bgp_peers", "BGP sessions of the prefix's family: established, and of those the ones it is advertised to.",
		[]string{"service", "prefix", "peers"}, nil)
	descAdvertisers = prometheus.NewDesc(ns+"_prefix_advertisers", "Routers advertising the prefix in the link-state database (and over iBGP) as last read here, this node included, by class (normal, last_resort); absent while unknown.",
		[]string{"service", "prefix", "class"}, nil)
	descLastResortUp = prometheus.NewDesc(ns+"_last_resort_up", "1 when the last-resort interface is usable; 0 when failing open is off because it could be neither found nor created; absent when last_resort_interface is \"\".",
		[]string{"interface"}, nil)
	descReloads = prometheus.NewDesc(ns+"_config_reloads_total", "Configuration reloads (SIGHUP or `reload`), by result.",
		[]string{"result"}, nil)
	descDoctor = prometheus.NewDesc(ns+"_doctor_findings", "Findings of the last audit of this host's FRR (anycast-watchdog doctor), by severity; absent until the first audit is done.",
		[]string{"severity"}, nil)
	descUnitActive = prometheus.NewDesc(ns+"_unit_active", "1 while the watched systemd unit is active (or reloading), 0 while it is not; absent while it is not watched (the bus lost, or unknown to systemd).",
		[]string{"service", "unit"}, nil)
	descUnitWatchUp = prometheus.NewDesc(ns+"_unit_watch_up", "1 while the daemon follows the watched units on the system bus, 0 while it cannot (the checks alone decide); absent when no service watches a unit.",
		nil, nil)
	descReloadOK   = prometheus.NewDesc(ns+"_config_last_reload_successful", "1 when the last reload worked (or none was tried).", nil, nil)
	descReloadTime = prometheus.NewDesc(ns+"_config_last_load_timestamp_seconds", "When the running configuration was loaded (Unix time).", nil, nil)
)

// stateCollector turns the status document into metrics at scrape time.
type stateCollector struct{ src Source }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descPresent, descAdvertised, descMismatches, descDrained, descBGPOriginated, descBGPPeers,
		descDrainExpiry, descCheckUp, descCertExpiry, descDampingPenalty, descDamped, descVtyshErrors, descFRRReads, descFRRUp, descAdvertisers, descLastResortUp, descDoctor, descReloads, descReloadOK, descReloadTime,
		descUnitActive, descUnitWatchUp} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Report(context.Background())
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, s := range st.Services {
		for _, state := range status.States() {
			gauge(descState, b2f(s.State == state), s.Name, string(state))
		}
		gauge(descDrained, b2f(s.State.Drained()), s.Name)
		for _, c := range s.Checks {
			gauge(descCheckUp, b2f(c.OK), s.Name, c.Check, c.OnFail)
			if !c.CertExpiry.IsZero() {
				gauge(descCertExpiry, float64(c.CertExpiry.Unix()), s.Name, c.Check)
			}
		}
		for _, u := range s.Units {
			if u.Watched && u.LoadState == "loaded" {
				gauge(descUnitActive, b2f(u.Active()), s.Name, u.Name)
			}
		}
		if d := s.Damping; d != nil {
			gauge(descDampingPenalty, d.Penalty, s.Name)
			gauge(descDamped, b2f(d.Damped), s.Name, d.Mode)
		}
		if s.Drain != nil && !s.Drain.Until.IsZero() {
			gauge(descDrainExpiry, float64(s.Drain.Until.Unix()), s.Name)
		}
		for _, p := range s.Prefixes {
			gauge(descPresent, b2f(p.Present), s.Name, p.Prefix)
			for _, a := range status.AdvertisedValues() {
				gauge(descAdvertised, b2f(p.Advertised == a), s.Name, p.Prefix, string(a))
			}
			counter(descMismatches, float64(p.Mismatches), s.Name, p.Prefix)
			if b := p.BGP; b != nil {
				gauge(descBGPOriginated, b2f(b.Originated), s.Name, p.Prefix)
				gauge(descBGPPeers, float64(b.PeersAdvertised), s.Name, p.Prefix, "advertised")
				gauge(descBGPPeers, float64(b.PeersEstablished), s.Name, p.Prefix, "established")
			}
			if normal, lastResort, known := p.AdvertiserCounts(); known {
				gauge(descAdvertisers, float64(normal), s.Name, p.Prefix, status.ClassNormal)
				gauge(descAdvertisers, float64(lastResort), s.Name, p.Prefix, status.ClassLastResort)
			}
		}
	}
	if lr := st.LastResort; lr != nil {
		gauge(descLastResortUp, b2f(lr.OK), lr.Interface)
	}
	if w := st.UnitWatch; w != nil {
		gauge(descUnitWatchUp, b2f(w.Up))
	}
	if d := st.Doctor; d != nil {
		gauge(descDoctor, float64(d.Errors), "error")
		gauge(descDoctor, float64(d.Warnings), "warning")
		gauge(descDoctor, float64(d.Infos), "info")
	}
	for _, f := range st.FRR {
		gauge(descFRRUp, b2f(f.OK), f.Daemon)
		for kind, n := range f.Errors {
			counter(descVtyshErrors, float64(n), f.Daemon, kind)
		}
		for what, n := range f.Reads {
			counter(descFRRReads, float64(n), f.Daemon, what)
		}
	}
	succeeded, failed := c.src.Reloads()
	counter(descReloads, float64(succeeded), "success")
	counter(descReloads, float64(failed), "failure")
	gauge(descReloadOK, b2f(st.Config.LastReload == nil || st.Config.LastReload.OK))
	gauge(descReloadTime, float64(st.Config.LoadedAt.Unix()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
