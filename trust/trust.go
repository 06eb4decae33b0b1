// Package trust decides whether a program the daemon runs (an exec check,
// vtysh, ip) could be changed by someone other than root and the daemon's
// own user: whoever can replace the file, or rename an entry in a
// directory on its path, runs code with the daemon's privileges. The rule
// is sudo's secure_path and OpenSSH's StrictModes, applied to every
// component of the path, symlinks followed:
//
//   - every file and directory is owned by root or the daemon's user;
//   - none is writable by others, nor by its group unless that group is the
//     daemon's own;
//   - a directory writable by others is allowed only when it is sticky and
//     root's (/tmp): nobody else can rename or remove the entries in it
//     that they do not own, and the next component is checked on its own.
//
// Program only reads metadata (lstat, readlink); it never opens the file.
package trust

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Identity is the daemon's own user and group, the ones trusted besides
// root.
type Identity struct {
	UID, GID uint32
}

// Self is the identity of this process (its effective user and group).
func Self() Identity { return Identity{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())} }

// UntrustedError says which component of a program's path another user
// could change, and how to fix it.
type UntrustedError struct {
	Program string // as configured
	Path    string // the component at fault
	Owner   uint32
	Group   uint32
	Mode    fs.FileMode
	Why     string // "is owned by uid 65534", "is writable by its group", …
}

func (e *UntrustedError) Error() string {
	subject := e.Path
	if e.Path != e.Program {
		subject = fmt.Sprintf("%s (on the path of %s)", e.Path, e.Program)
	}
	return fmt.Sprintf("%s %s (owner uid %d, group gid %d, mode %s): another user could replace it and run code with the daemon's privileges; %s",
		subject, e.Why, e.Owner, e.Group, e.Mode.Perm(), e.Fix())
}

// Fix is the command that makes the component trusted.
func (e *UntrustedError) Fix() string {
	if strings.HasPrefix(e.Why, "is owned") {
		return "make it root's (chown root:root " + e.Path + ") and not writable by group or others (chmod go-w " + e.Path + ")"
	}
	return "chmod go-w " + e.Path
}

// maxLinks bounds the symlinks followed, as the kernel's ELOOP does.
const maxLinks = 40

// Program returns nil when nobody but root and self can change the program
// at path (absolute), or any directory on its way, symlinks followed.
// Outcomes:
//   - nil: trusted;
//   - *UntrustedError: a component that another user could change;
//   - any other error: a component could not be read (it does not exist,
//     or a symlink loops), wrapped with the path.
func Program(path string, self Identity) error { return programIn(osFS{}, path, self) }

// fileSystem is what the walk reads: metadata, never contents.
type fileSystem interface {
	Lstat(path string) (fs.FileInfo, error)
	Readlink(path string) (string, error)
}

type osFS struct{}

func (osFS) Lstat(path string) (fs.FileInfo, error) { return os.Lstat(path) }
func (osFS) Readlink(path string) (string, error)   { return os.Readlink(path) }

func programIn(fsys fileSystem, path string, self Identity) error {
	w := walker{fsys: fsys, program: path, self: self}
	return w.walk(path)
}

type walker struct {
	fsys    fileSystem
	program string
	self    Identity
	links   int
}

// walk checks every component of path, from the root, then the file.
func (w *walker) walk(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("check %s: not an absolute path", path)
	}
	parts := strings.Split(strings.TrimPrefix(filepath.Clean(path), "/"), "/")
	cur := "/"
	if err := w.component(cur, true); err != nil {
		return err
	}
	for i, name := range parts {
		if name == "" {
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := w.fsys.Lstat(next)
		if err != nil {
			return fmt.Errorf("check %s: %w", w.program, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			// Its directory is trusted; the link itself must be too, or
			// its owner could point it elsewhere.
			if err := w.check(next, fi, false); err != nil {
				return err
			}
			if w.links++; w.links > maxLinks {
				return fmt.Errorf("check %s: too many levels of symbolic links", w.program)
			}
			target, err := w.fsys.Readlink(next)
			if err != nil {
				return fmt.Errorf("check %s: %w", w.program, err)
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			return w.walk(filepath.Join(append([]string{target}, parts[i+1:]...)...))
		}
		if err := w.check(next, fi, i < len(parts)-1); err != nil {
			return err
		}
		cur = next
	}
	return nil
}

func (w *walker) component(path string, dir bool) error {
	fi, err := w.fsys.Lstat(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", w.program, err)
	}
	return w.check(path, fi, dir)
}

// check judges one component: a directory on the way (dir), the program,
// or a symlink (whose own mode means nothing).
func (w *walker) check(path string, fi fs.FileInfo, dir bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("check %s: no owner for %s", w.program, path)
	}
	bad := func(why string) error {
		return &UntrustedError{Program: w.program, Path: path, Owner: st.Uid, Group: st.Gid, Mode: fi.Mode(), Why: why}
	}
	if st.Uid != 0 && st.Uid != w.self.UID {
		return bad(fmt.Sprintf("is owned by uid %d, neither root nor the daemon's user (uid %d)", st.Uid, w.self.UID))
	}
	mode := fi.Mode()
	switch {
	case mode&fs.ModeSymlink != 0:
		return nil
	case mode.Perm()&0o002 != 0 && dir && mode&fs.ModeSticky != 0 && st.Uid == 0:
		return nil // /tmp: nobody can replace root's entries in it
	case mode.Perm()&0o002 != 0:
		return bad("is writable by everyone")
	case mode.Perm()&0o020 != 0 && st.Gid != w.self.GID:
		return bad(fmt.Sprintf("is writable by its group (gid %d), which is not the daemon's (gid %d)", st.Gid, w.self.GID))
	}
	return nil
}

// IsUntrusted reports whether err says another user could change a
// program, as opposed to a program that could not be read.
func IsUntrusted(err error) bool {
	var u *UntrustedError
	return errors.As(err, &u)
}
