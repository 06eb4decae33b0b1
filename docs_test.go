package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// The man pages are the reference for the configuration and the commands;
// these tests fail when the code takes a key, a command or a flag that they
// do not document, when a configuration shown in the docs does not load,
// and when a link between the docs leads nowhere.

const (
	manConfig   = "packaging/deb/anycast-watchdog.yaml.5"
	manCommands = "packaging/deb/anycast-watchdog.8"
)

// docFiles are the Markdown documents whose snippets and links are checked.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"README.md", "CONTRIBUTING.md"}, files...)
}

func TestManPageCoversConfig(t *testing.T) {
	bold := boldWords(t, manConfig)
	for _, key := range config.Keys() {
		// The page documents a service's and a check's keys by their own
		// names, under SERVICE KEYS and CHECK TYPES.
		name := key
		if i := strings.LastIndex(key, "[]."); i >= 0 {
			name = key[i+len("[]."):]
		}
		if !bold[name] {
			t.Errorf("%s does not document the key %s (as %q in bold)", manConfig, key, name)
		}
	}
}

func TestManPageCoversCommands(t *testing.T) {
	bold := boldWords(t, manCommands)
	for _, c := range subcommands() {
		if !bold[c.name] {
			t.Errorf("%s does not document the command %s (in bold)", manCommands, c.name)
		}
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		fs.String("config", "", "")
		if c.flags != nil {
			c.flags(fs)
		}
		fs.VisitAll(func(f *flag.Flag) {
			if !bold["--"+f.Name] {
				t.Errorf("%s does not document %s --%s (in bold)", manCommands, c.name, f.Name)
			}
		})
	}
}

// boldWords lists every word a man page sets in bold: the arguments of
// .B, the alternating ones of .BR/.BI/.RB/.IB, and \fB…\fR runs; words are
// split at spaces and commas, roff's \- read as -.
func boldWords(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), `\-`, "-")
	var runs []string
	for _, line := range strings.Split(text, "\n") {
		macro, rest, _ := strings.Cut(line, " ")
		args := roffArgs(rest)
		first := -1 // which arguments are bold: every one, the even or the odd
		switch macro {
		case ".B":
			runs = append(runs, args...)
		case ".BR", ".BI":
			first = 0
		case ".RB", ".IB":
			first = 1
		}
		for i := first; first >= 0 && i < len(args); i += 2 {
			runs = append(runs, args[i])
		}
	}
	for _, m := range regexp.MustCompile(`\\fB(.*?)\\f[RIP]`).FindAllStringSubmatch(text, -1) {
		runs = append(runs, m[1])
	}
	words := map[string]bool{}
	for _, r := range runs {
		for _, w := range strings.FieldsFunc(r, func(c rune) bool { return c == ' ' || c == ',' || c == '|' || c == '[' || c == ']' }) {
			words[w] = true
		}
	}
	return words
}

// roffArgs splits a macro's arguments at spaces, keeping "quoted" ones
// whole.
func roffArgs(s string) []string {
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return append(out, s[1:])
			}
			out, s = append(out, s[1:end+1]), s[end+2:]
			continue
		}
		word, rest, _ := strings.Cut(s, " ")
		out, s = append(out, word), rest
	}
	return out
}

// fence is a fenced block of a Markdown file.
type fence struct {
	file, info, body string
	line             int
}

func fences(t *testing.T, file string) []fence {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []fence
	var open *fence
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case open == nil && strings.HasPrefix(trimmed, "```"):
			open = &fence{file: file, info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: i + 1}
		case open != nil && trimmed == "```":
			out, open = append(out, *open), nil
		case open != nil:
			open.body += line + "\n"
		}
	}
	if open != nil {
		t.Errorf("%s:%d: a fenced block is never closed", file, open.line)
	}
	return out
}

// Every block marked ```yaml config is a whole configuration that
// check-config accepts: an example an operator copies must load.
func TestDocsConfigSnippetsLoad(t *testing.T) {
	// A snippet with units: would ask the host's systemd; the unit tier
	// asks nothing beyond itself (check-config then warns, and passes).
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/system_bus_socket")
	dir := t.TempDir()
	n := 0
	for _, file := range docFiles(t) {
		for _, f := range fences(t, file) {
			if f.info != "yaml config" {
				continue
			}
			n++
			path := filepath.Join(dir, fmt.Sprintf("snippet%d.yaml", n))
			if err := os.WriteFile(path, []byte(f.body), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := realMain([]string{"check-config", "--config", path}, &stdout, &stderr); code != 0 {
				t.Errorf("%s:%d: the configuration shown does not pass check-config:\n%s", f.file, f.line, stderr.String())
			}
		}
	}
	if n == 0 {
		t.Error("no block marked ```yaml config in the docs: the quick start shows one")
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// Every relative link in the docs names a file that exists and, with a
// #fragment, a heading of it (as GitHub makes anchors).
func TestDocsLinksResolve(t *testing.T) {
	for _, file := range docFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := stripFences(string(data))
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			dest := file
			if path != "" {
				dest = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %s: %v", file, target, err)
					continue
				}
			}
			if frag != "" && strings.HasSuffix(dest, ".md") && !anchors(t, dest)[frag] {
				t.Errorf("%s: link %s: %s has no heading with anchor #%s", file, target, dest, frag)
			}
		}
	}
}

func stripFences(text string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			in = !in
			continue
		}
		if !in {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// anchors are the fragments GitHub gives a Markdown file's headings:
// lower case, punctuation dropped, spaces as hyphens.
func anchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(stripFences(string(data)), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range heading {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}

// The checks above must be able to fail: each meets a broken input once.
func TestDocsChecksCatchBreakage(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "page.5")
	os.WriteFile(page, []byte(".TP\n.BR interval \" (1s), \" fast_interval\n.B \\-\\-json\nplain rise\n\\fBfall\\fR\n"), 0o644)
	bold := boldWords(t, page)
	for w, want := range map[string]bool{"interval": true, "fast_interval": true, "--json": true, "fall": true, "rise": false, "(1s)": false} {
		if bold[w] != want {
			t.Errorf("boldWords: %q bold = %v, want %v", w, bold[w], want)
		}
	}
	doc := filepath.Join(dir, "doc.md")
	os.WriteFile(doc, []byte("# A heading: here\n\n```yaml config\nrise: 0\n```\n"), 0o644)
	if a := anchors(t, doc); !a["a-heading-here"] {
		t.Errorf("anchors = %v, want a-heading-here", a)
	}
	f := fences(t, doc)
	if len(f) != 1 || f[0].info != "yaml config" {
		t.Fatalf("fences = %+v", f)
	}
	cfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(cfg, []byte(f[0].body), 0o644)
	if code := realMain([]string{"check-config", "--config", cfg}, io.Discard, io.Discard); code == 0 {
		t.Error("check-config accepted rise: 0")
	}
}
