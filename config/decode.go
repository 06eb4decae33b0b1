package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decode walks the YAML tree next to the Go value instead of using
// yaml.Unmarshal, so that every unknown key, wrong type and misplaced check
// key is reported with its full key path, and all of them at once. It returns
// the line of every key the file set, keyed by path; validation uses it both
// to tell "absent" from "zero" and to point at the line.
func decode(r *report, data []byte, out *Config) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file is a valid, empty config
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			return fmt.Errorf("%s:%s: %s", r.file, m[1], m[2])
		}
		return fmt.Errorf("%s: %s", r.file, msg)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s:%d: the file must hold one YAML document, found another", r.file, extra.Line)
	}
	w := &walker{r: r}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	w.walk(root, reflect.ValueOf(out).Elem(), "")
	return nil
}

// maxNodes bounds the nodes walked, aliases expanded: a file far larger
// than any real configuration, and a small file that multiplies through
// aliases, are both refused instead of eating memory.
const maxNodes = 200000

type walker struct {
	r       *report
	visited int
}

func (w *walker) fail(n *yaml.Node, path, format string, args ...any) {
	w.r.failed[path] = true
	w.r.add(n.Line, path, fmt.Sprintf(format, args...))
}

var (
	yamlLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
	durationType = reflect.TypeOf(time.Duration(0))
	prefixType   = reflect.TypeOf(netip.Prefix{})
	checkStruct  = reflect.TypeOf(Check{})
)

func (w *walker) walk(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if w.visited++; w.visited > maxNodes {
		if w.visited == maxNodes+1 {
			w.fail(n, path, "the document is too large once aliases are expanded (over %d nodes)", maxNodes)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // `key:` with no value counts as absent
	}
	switch {
	case v.Type() == durationType:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "want a duration such as 500ms, 2s or 14d, got a %s", kindName(n))
			return
		}
		d, err := parseDuration(n.Value)
		if err != nil {
			w.fail(n, path, "want a duration such as 500ms, 2s or 14d, got %q", n.Value)
			return
		}
		v.SetInt(int64(d))
	case v.Type() == prefixType:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "want a prefix such as 192.0.2.53/32, got a %s", kindName(n))
			return
		}
		p, err := netip.ParsePrefix(n.Value)
		if err != nil {
			if a, aerr := netip.ParseAddr(n.Value); aerr == nil {
				w.fail(n, path, "%q has no prefix length; write %s/%d", n.Value, n.Value, a.BitLen())
			} else {
				w.fail(n, path, "%q is not a prefix such as 192.0.2.53/32 or 2001:db8::53/128", n.Value)
			}
			return
		}
		v.Set(reflect.ValueOf(p))
	case v.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "want a string, got a %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case v.Kind() == reflect.Int:
		i, err := strconv.Atoi(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			w.fail(n, path, "want an integer, got %s", describe(n))
			return
		}
		v.SetInt(int64(i))
	case v.Kind() == reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			w.fail(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(n.Value == "true")
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "want a list, got %s", describe(n))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content)))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.r.lines[p] = item.Line
			w.walk(item, v.Index(i), p)
		}
	case v.Kind() == reflect.Struct:
		w.walkStruct(n, v, path)
	default:
		panic(fmt.Sprintf("config: no decoder for %s at %s", v.Type(), path))
	}
}

func (w *walker) walkStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "want a mapping of keys, got %s", describe(n))
		return
	}
	fields := yamlFields(v.Type())
	// A check's type decides which of its keys apply; read it first.
	checkType := ""
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			checkType = n.Content[i+1].Value
		}
	}
	seen := map[string]int{} // key → its line, for duplicates
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		p := joinPath(path, key.Value)
		if first, dup := seen[key.Value]; dup {
			// YAML leaves the meaning of a repeated key open and the last
			// one would silently win: the operator must say which.
			where := fmt.Sprintf("on lines %d and %d", first, key.Line)
			if first == key.Line {
				where = fmt.Sprintf("on line %d", first)
			}
			w.fail(key, p, "key %q is set twice, %s; keep one", key.Value, where)
			continue
		}
		seen[key.Value] = key.Line
		idx, ok := fields[key.Value]
		if !ok {
			w.fail(key, p, "unknown key %q (known keys: %s)", key.Value, knownKeys(fields))
			continue
		}
		if v.Type() == checkStruct {
			_, known := lookupCheckType(checkType)
			if owners := checkKeyOwners(key.Value); len(owners) > 0 && known && !slices.Contains(owners, checkType) {
				w.fail(key, p, "key %q belongs to %s checks, not to %s checks", key.Value, orList(owners), checkType)
				continue
			}
		}
		w.r.lines[p] = val.Line
		w.walk(val, v.Field(idx), p)
	}
}

// parseDuration is time.ParseDuration with days in front: "14d", "9d4h"
// (a certificate's validity is counted in days).
func parseDuration(s string) (time.Duration, error) {
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad day count in %q", s)
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest == "" {
		return d, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil || r < 0 {
		return 0, fmt.Errorf("bad duration after the days in %q", s)
	}
	return d + r, nil
}

// yamlFields maps each key a struct takes to its field's index: the
// fields with a yaml tag.
func yamlFields(t reflect.Type) map[string]int {
	fields := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("yaml"); tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	return fields
}

// Keys lists every key the decoder accepts, as paths in the order of the
// structs' fields: "interface", "frr.timeout", "services[].name",
// "services[].checks[].server". anycast-watchdog.yaml(5) documents each.
func Keys() []string { return keysOf(reflect.TypeOf(Config{}), "") }

func keysOf(t reflect.Type, path string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		p, ft := joinPath(path, tag), t.Field(i).Type
		out = append(out, p)
		switch {
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem() != prefixType:
			out = append(out, keysOf(ft.Elem(), p+"[]")...)
		case ft.Kind() == reflect.Struct && ft != prefixType:
			out = append(out, keysOf(ft, p)...)
		}
	}
	return out
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func knownKeys(fields map[string]int) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "scalar"
}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return "a " + kindName(n)
}
