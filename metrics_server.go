package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/net/netutil"

	"github.com/anycast-watchdog/anycast-watchdog/metrics"
)

// metricsLimits bound what scrapers can make the daemon hold: a client
// that never reads its answer, or keeps idle connections open, is cut off.
type metricsLimits struct {
	connections int           // served at once; more wait in the backlog
	write       time.Duration // to write one answer
	idle        time.Duration // a keep-alive connection with no request
}

// serveMetrics serves /metrics on l until ctx ends. The daemon guards its
// services without it, so a failure is logged, not fatal.
func serveMetrics(ctx context.Context, l net.Listener, m *metrics.Metrics, log logrus.FieldLogger) {
	serveMetricsWith(ctx, l, m, log, metricsLimits{connections: 16, write: 30 * time.Second, idle: 30 * time.Second})
}

func serveMetricsWith(ctx context.Context, l net.Listener, m *metrics.Metrics, log logrus.FieldLogger, limits metricsLimits) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	l = netutil.LimitListener(l, limits.connections)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: limits.write, IdleTimeout: limits.idle}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("metrics server stopped")
		}
	}()
	go func() { <-ctx.Done(); srv.Close() }()
}
