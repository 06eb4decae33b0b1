package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/internal/golden"
	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// The table renders the status package's golden document, as the client
// receives it over the socket.
func TestStatusTable(t *testing.T) {
	raw, err := os.ReadFile("status/testdata/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var st status.Document
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := writeTable(&b, st, time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "status.txt", b.Bytes())
}

func TestStatusTableWithoutServices(t *testing.T) {
	var b bytes.Buffer
	writeTable(&b, status.Document{Version: "0.1.0", Config: status.Config{Path: "/etc/x.yaml"}}, time.Now())
	want := "anycast-watchdog 0.1.0 · config /etc/x.yaml loaded never\n" +
		"FRR read-back: not verified (frr.verify off, or nothing to verify yet)\n" +
		"Last resort: off (last_resort_interface: \"\"): a failing service's addresses are removed at once\n\n" +
		"no services configured; managing no address\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Text that others wrote reaches the terminal with its control characters
// escaped: a drain reason cannot clear the screen or forge a row.
func TestStatusTableEscapesControlCharacters(t *testing.T) {
	st := status.Document{Services: []status.Service{{Name: "dns", State: status.Drained,
		Drain:  &status.Drain{Reason: "\x1b[2Jgone\nweb  up  0s ago", By: "uid 0 (root)"},
		Checks: []status.Check{{Check: "exec /bin/x", Reason: "exit", Error: "bad\r\x07"}}}}}
	var b bytes.Buffer
	writeTable(&b, st, time.Now())
	out := b.String()
	for _, want := range []string{`drained by uid 0 (root): \x1b[2Jgone\nweb  up  0s ago`, `exit: bad\r\a`} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %s:\n%s", want, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\r\x07") || strings.Count(out, "\n") != 11 {
		t.Errorf("a control character reached the terminal:\n%q", out)
	}
}
