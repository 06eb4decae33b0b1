package checker

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

func TestHTTPCheck(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "status: ok") })
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "maintenance", 503) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		// The marker sits past the read bound: it must not be found, and
		// the probe must not read the whole body.
		fmt.Fprint(w, strings.Repeat("x", 1<<20), "ok")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		name, path, body   string
		status             int
		wantReason, wantIn string
	}{
		{name: "pass", path: "/ok", body: "ok"},
		{name: "wrong status", path: "/down", wantReason: "status", wantIn: "status 503, want 200"},
		{name: "expected status passes", path: "/down", status: 503},
		{name: "redirect not followed", path: "/moved", wantReason: "status", wantIn: "status 302, want 200 (redirect to /ok not followed)"},
		{name: "body missing", path: "/ok", body: "healthy", wantReason: "body", wantIn: `body does not contain "healthy"`},
		{name: "body read is bounded", path: "/huge", body: "ok", wantReason: "body", wantIn: "searched the first 65536 bytes"},
		{name: "timeout", path: "/slow", wantReason: "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Check{Type: "http", URL: srv.URL + tt.path, Status: 200, BodyContains: tt.body}
			if tt.status != 0 {
				c.Status = tt.status
			}
			assertCheck(t, c, 300*time.Millisecond, tt.wantReason, tt.wantIn)
		})
	}
	t.Run("refused", func(t *testing.T) {
		assertCheck(t, config.Check{Type: "http", URL: "http://" + closedPort(t, "tcp") + "/", Status: 200}, 300*time.Millisecond, "refused", "")
	})
}
