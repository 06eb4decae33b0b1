package trust

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeFS is a tree of metadata: each path's mode, owner, group and, for a
// symlink, its target.
type fakeFS map[string]fakeEntry

type fakeEntry struct {
	mode     fs.FileMode
	uid, gid uint32
	target   string
}

type fakeInfo struct {
	name string
	e    fakeEntry
}

func (i fakeInfo) Name() string       { return i.name }
func (i fakeInfo) Size() int64        { return 0 }
func (i fakeInfo) Mode() fs.FileMode  { return i.e.mode }
func (i fakeInfo) ModTime() time.Time { return time.Time{} }
func (i fakeInfo) IsDir() bool        { return i.e.mode.IsDir() }
func (i fakeInfo) Sys() any           { return &syscall.Stat_t{Uid: i.e.uid, Gid: i.e.gid} }

func (f fakeFS) Lstat(path string) (fs.FileInfo, error) {
	e, ok := f[path]
	if !ok {
		return nil, &fs.PathError{Op: "lstat", Path: path, Err: fs.ErrNotExist}
	}
	return fakeInfo{filepath.Base(path), e}, nil
}

func (f fakeFS) Readlink(path string) (string, error) { return f[path].target, nil }

const (
	daemonUID, daemonGID = 101, 102
	nobody               = 65534
)

// tree is a sound layout: /usr/lib/check.sh root's, mode 0755.
func tree() fakeFS {
	return fakeFS{
		"/":                  {mode: fs.ModeDir | 0o755},
		"/usr":               {mode: fs.ModeDir | 0o755},
		"/usr/lib":           {mode: fs.ModeDir | 0o755},
		"/usr/lib/check.sh":  {mode: 0o755},
		"/tmp":               {mode: fs.ModeDir | fs.ModeSticky | 0o777},
		"/tmp/checks":        {mode: fs.ModeDir | 0o755},
		"/tmp/checks/dns.sh": {mode: 0o755},
	}
}

func TestProgram(t *testing.T) {
	self := Identity{UID: daemonUID, GID: daemonGID}
	for _, tt := range []struct {
		name    string
		edit    func(fakeFS)
		program string
		want    string // "" trusted; else in the error
	}{
		{"root's program in root's directories", nil, "/usr/lib/check.sh", ""},
		{"owned by the daemon's user", func(f fakeFS) { f["/usr/lib/check.sh"] = fakeEntry{mode: 0o755, uid: daemonUID} }, "/usr/lib/check.sh", ""},
		{"owned by another user", func(f fakeFS) { f["/usr/lib/check.sh"] = fakeEntry{mode: 0o755, uid: nobody, gid: nobody} },
			"/usr/lib/check.sh", "/usr/lib/check.sh is owned by uid 65534, neither root nor the daemon's user (uid 101) (owner uid 65534, group gid 65534, mode -rwxr-xr-x)"},
		{"a directory on its path owned by another user", func(f fakeFS) { f["/usr/lib"] = fakeEntry{mode: fs.ModeDir | 0o755, uid: nobody} },
			"/usr/lib/check.sh", "/usr/lib (on the path of /usr/lib/check.sh) is owned by uid 65534"},
		{"group-writable, another group", func(f fakeFS) { f["/usr/lib/check.sh"] = fakeEntry{mode: 0o775, gid: 4} },
			"/usr/lib/check.sh", "is writable by its group (gid 4), which is not the daemon's (gid 102)"},
		{"group-writable, the daemon's group", func(f fakeFS) { f["/usr/lib/check.sh"] = fakeEntry{mode: 0o775, gid: daemonGID} }, "/usr/lib/check.sh", ""},
		{"writable by everyone", func(f fakeFS) { f["/usr/lib/check.sh"] = fakeEntry{mode: 0o757} },
			"/usr/lib/check.sh", "is writable by everyone"},
		{"a directory on its path writable by everyone", func(f fakeFS) { f["/usr"] = fakeEntry{mode: fs.ModeDir | 0o777} },
			"/usr/lib/check.sh", "/usr (on the path of /usr/lib/check.sh) is writable by everyone"},
		{"under root's sticky /tmp", nil, "/tmp/checks/dns.sh", ""},
		{"a sticky directory that is not root's", func(f fakeFS) { f["/tmp"] = fakeEntry{mode: fs.ModeDir | fs.ModeSticky | 0o777, uid: daemonUID} },
			"/tmp/checks/dns.sh", "/tmp (on the path of /tmp/checks/dns.sh) is writable by everyone"},
		{"a symlink to a trusted program", func(f fakeFS) { f["/usr/lib/link"] = fakeEntry{mode: fs.ModeSymlink | 0o777, target: "check.sh"} }, "/usr/lib/link", ""},
		{"a symlink to another user's program", func(f fakeFS) {
			f["/usr/lib/link"] = fakeEntry{mode: fs.ModeSymlink | 0o777, target: "/tmp/checks/dns.sh"}
			f["/tmp/checks/dns.sh"] = fakeEntry{mode: 0o755, uid: nobody}
		}, "/usr/lib/link", "/tmp/checks/dns.sh (on the path of /usr/lib/link) is owned by uid 65534"},
		{"another user's symlink in a sticky directory", func(f fakeFS) {
			f["/tmp/link"] = fakeEntry{mode: fs.ModeSymlink | 0o777, uid: nobody, target: "/usr/lib/check.sh"}
		}, "/tmp/link", "/tmp/link is owned by uid 65534"},
		{"a directory reached through a symlink", func(f fakeFS) {
			f["/opt"] = fakeEntry{mode: fs.ModeSymlink | 0o777, target: "/tmp/checks"}
			f["/tmp/checks"] = fakeEntry{mode: fs.ModeDir | 0o777}
		}, "/opt/dns.sh", "/tmp/checks (on the path of /opt/dns.sh) is writable by everyone"},
		{"a symlink loop", func(f fakeFS) { f["/usr/lib/loop"] = fakeEntry{mode: fs.ModeSymlink | 0o777, target: "/usr/lib/loop"} },
			"/usr/lib/loop", "too many levels of symbolic links"},
		{"missing", nil, "/usr/lib/nope.sh", "lstat /usr/lib/nope.sh: file does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := tree()
			if tt.edit != nil {
				tt.edit(f)
			}
			err := programIn(f, tt.program, self)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("untrusted: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want it to say %q", err, tt.want)
			}
			if untrusted := IsUntrusted(err); untrusted != (tt.want != "" && tt.name != "missing" && tt.name != "a symlink loop") {
				t.Errorf("IsUntrusted = %v for %v", untrusted, err)
			}
		})
	}
}

// The same rule on a real tree this test makes: its own files are the
// daemon's user's here.
func TestProgramOnDisk(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "check.sh")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	self := Self()
	if err := Program(prog, self); err != nil {
		t.Fatalf("a program of the daemon's user in its own directory: %v", err)
	}
	os.Chmod(prog, 0o757)
	if err := Program(prog, self); !IsUntrusted(err) || !strings.Contains(err.Error(), "chmod go-w "+prog) {
		t.Errorf("writable by everyone: %v", err)
	}
	os.Chmod(prog, 0o755)
	os.Chmod(dir, 0o777)
	if err := Program(prog, self); !IsUntrusted(err) || !strings.Contains(err.Error(), dir+" (on the path of "+prog+")") {
		t.Errorf("its directory writable by everyone: %v", err)
	}
	os.Chmod(dir, 0o755)
	link := filepath.Join(dir, "link")
	os.Symlink("check.sh", link)
	if err := Program(link, self); err != nil {
		t.Errorf("a symlink to it: %v", err)
	}
	other := Identity{UID: self.UID + 1, GID: self.GID + 1}
	if self.UID != 0 {
		if err := Program(prog, other); !IsUntrusted(err) {
			t.Errorf("files of another user: %v", err)
		}
	}
}
