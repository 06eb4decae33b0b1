package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(path, got, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test . -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

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
	golden(t, "status.txt", b.Bytes())
}

func TestStatusTableWithoutServices(t *testing.T) {
	var b bytes.Buffer
	writeTable(&b, status.Document{Version: "0.1.0", Config: status.Config{Path: "/etc/x.yaml"}}, time.Now())
	want := "anycast-watchdog 0.1.0 · config /etc/x.yaml loaded never\n" +
		"FRR read-back: not verified (frr.verify off, or nothing to verify yet)\n\n" +
		"no services configured; managing no address\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
