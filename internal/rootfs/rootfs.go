// Package rootfs gives every other package one way to reach the machine's
// files: through a root directory that is "/" on a real machine and a temp
// directory in tests, so that no test reads the host's /proc, /sys or /boot.
package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// FS is a view of a machine's file tree below Root.
type FS struct {
	Root string // "/" on a real machine
	// Owner is the uid that must own trusted files: 0 on a real machine.
	// Tests running as an ordinary user set it to their own uid.
	Owner int
}

// Host is the running machine.
var Host = FS{Root: "/", Owner: 0}

// New returns a view rooted at dir, requiring files to be owned by the
// current user (what a test tree built in t.TempDir() has).
func New(dir string) FS { return FS{Root: dir, Owner: os.Geteuid()} }

// Path maps an absolute in-machine path ("/proc/cmdline") to the host path
// to open.
func (f FS) Path(p string) string {
	if f.Root == "" || f.Root == "/" {
		return path.Clean("/" + p)
	}
	return filepath.Join(f.Root, path.Clean("/"+p))
}

// ReadFile reads an in-machine path.
func (f FS) ReadFile(p string) ([]byte, error) { return os.ReadFile(f.Path(p)) }

// ReadString reads an in-machine path and trims surrounding white space.
func (f FS) ReadString(p string) (string, error) {
	b, err := f.ReadFile(p)
	return strings.TrimSpace(string(b)), err
}

// Exists says whether an in-machine path exists (following links).
func (f FS) Exists(p string) bool {
	_, err := os.Stat(f.Path(p))
	return err == nil
}

// Glob is filepath.Glob on in-machine patterns; it returns in-machine paths.
func (f FS) Glob(pattern string) ([]string, error) {
	m, err := filepath.Glob(f.Path(pattern))
	if err != nil {
		return nil, err
	}
	for i := range m {
		m[i] = f.Unpath(m[i])
	}
	return m, nil
}

// Unpath turns a host path below Root back into an in-machine path.
func (f FS) Unpath(host string) string {
	if f.Root == "" || f.Root == "/" {
		return host
	}
	rel, err := filepath.Rel(f.Root, host)
	if err != nil || strings.HasPrefix(rel, "..") {
		return host
	}
	return path.Clean("/" + filepath.ToSlash(rel))
}

// Resolve follows symbolic links in an in-machine path the way the machine
// would, treating absolute link targets as relative to Root, and returns the
// in-machine path it ends at. It does not require the final file to exist.
func (f FS) Resolve(p string) (string, error) {
	p = path.Clean("/" + p)
	resolved := "/"
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for hops := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		if name == "" || name == "." {
			continue
		}
		if name == ".." {
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, name)
		target, err := os.Readlink(f.Path(next))
		if err != nil {
			// Not a link (or not there): keep the name as it is.
			resolved = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		if !path.IsAbs(target) {
			target = path.Join(resolved, target)
		}
		rest = append(strings.Split(strings.TrimPrefix(path.Clean(target), "/"), "/"), rest...)
		resolved = "/"
	}
	return resolved, nil
}

// Stamp names what the file at p is now: its device, inode, size,
// modification and inode change times ("-" when it cannot be read). A
// file replaced, or rewritten in place even with its old size and
// modification time put back (cp -p), gets another stamp: no one can set
// the change time back.
func (f FS) Stamp(p string) string {
	var st syscall.Stat_t
	if syscall.Stat(f.Path(p), &st) != nil {
		return "-"
	}
	return fmt.Sprintf("%d:%d:%d:%d.%09d:%d.%09d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}

// ErrUntrusted is wrapped by every error of Trusted.
var ErrUntrusted = errors.New("untrusted file")

// Trusted checks that nobody but the owner (root) could have written the
// file at in-machine path p: the file and every directory above it inside
// Root must be owned by Owner and not writable by group or others. kxboot
// boots what its config names in ring 0, so a file another user could have
// replaced must not be used. Links are followed first.
func (f FS) Trusted(p string) error {
	real, err := f.Resolve(p)
	if err != nil {
		return err
	}
	for cur := real; ; cur = path.Dir(cur) {
		st, err := os.Stat(f.Path(cur))
		if err != nil {
			return err
		}
		if err := f.trustedInfo(st); err != nil {
			if cur == real {
				return fmt.Errorf("%w: %s %v; fix with: chown root:root %s && chmod go-w %s", ErrUntrusted, p, err, real, real)
			}
			return fmt.Errorf("%w: %s sits in %s, which %v; fix with: chown root:root %s && chmod go-w %s", ErrUntrusted, p, cur, err, cur, cur)
		}
		if cur == "/" {
			return nil
		}
	}
}

func (f FS) trustedInfo(st fs.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("cannot be checked for its owner")
	}
	if int(sys.Uid) != f.Owner {
		if f.Owner == 0 {
			return fmt.Errorf("is owned by uid %d, not root", sys.Uid)
		}
		return fmt.Errorf("is owned by uid %d, not uid %d", sys.Uid, f.Owner)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("is writable by group or others (mode %04o)", st.Mode().Perm())
	}
	return nil
}
