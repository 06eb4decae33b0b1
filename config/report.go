package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// report collects every problem in one file, from decoding and from
// validation, so that check-config lists them all in one run.
type report struct {
	file     string
	lines    map[string]int  // key path → line, for every key the file set
	failed   map[string]bool // key paths that did not decode; not judged again
	problems []problem
	warnings []string // FILE:LINE: path: text; they do not stop the load
}

type problem struct {
	line int
	text string
}

func newReport(file string) *report {
	return &report{file: file, lines: map[string]int{}, failed: map[string]bool{}}
}

func (r *report) present(path string) bool { _, ok := r.lines[path]; return ok }

func (r *report) add(line int, path, msg string) {
	loc := r.file
	if line > 0 {
		loc = fmt.Sprintf("%s:%d", r.file, line)
	}
	if path != "" {
		msg = path + ": " + msg
	}
	r.problems = append(r.problems, problem{line, loc + ": " + msg})
}

// lineOf finds the line of path, or of its nearest ancestor the file wrote.
func (r *report) lineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := r.lines[p]; ok {
			return l
		}
	}
	return 0
}

// decodeFailed reports whether path or one of its ancestors did not decode.
func (r *report) decodeFailed(path string) bool {
	for p := path; p != ""; p = parentPath(p) {
		if r.failed[p] {
			return true
		}
	}
	return false
}

func parentPath(p string) string {
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

// err returns all problems in file order, or nil.
func (r *report) err() error {
	if len(r.problems) == 0 {
		return nil
	}
	sort.SliceStable(r.problems, func(i, j int) bool { return r.problems[i].line < r.problems[j].line })
	errs := &multierror.Error{ErrorFormat: formatProblems}
	for _, p := range r.problems {
		errs.Errors = append(errs.Errors, fmt.Errorf("%s", p.text))
	}
	return errs
}

func formatProblems(errs []error) string {
	if len(errs) == 1 {
		return errs[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(errs))
	for _, e := range errs {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}
