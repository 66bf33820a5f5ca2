package harness

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"

	"github.com/kxboot/kxboot/e2e/internal/cpio"
)

// Applets get a /bin symlink to busybox in every guest.
var Applets = []string{
	"sh", "mount", "umount", "cat", "grep", "echo", "uname", "poweroff", "reboot",
	"ls", "sleep", "dd", "head", "tail", "sed", "printf", "test", "[", "dmesg",
	"sync", "mkdir", "rm", "cp", "stat", "wc", "tr", "cut", "true", "false", "env",
	"cmp", "od", "sha256sum", "timeout", "stty", "tee", "xargs", "free", "ps",
}

// entry is one file of an Initramfs.
type entry struct {
	mode     fs.FileMode // type bits and permissions
	data     []byte      // file contents or link target
	hostPath string      // file contents read from here at Write time
	major    uint32      // device numbers
	minor    uint32
}

// Initramfs is a file tree to be written as a newc cpio archive. Parent
// directories are created as needed.
type Initramfs struct {
	entries map[string]entry
}

// NewInitramfs returns a tree holding only its root directory, mode 0755
// like a real machine's: without a "." entry the kernel leaves the root of
// rootfs 0777, and kxboot rightly refuses kernels below a world-writable
// directory.
func NewInitramfs() *Initramfs {
	return &Initramfs{entries: map[string]entry{"/": {mode: fs.ModeDir | 0o755}}}
}

// File adds a file with the given contents.
func (r *Initramfs) File(name string, mode fs.FileMode, data []byte) *Initramfs {
	r.add(name, entry{mode: mode.Perm(), data: data})
	return r
}

// HostFile adds a copy of a host file, read when the archive is written.
func (r *Initramfs) HostFile(name string, mode fs.FileMode, hostPath string) *Initramfs {
	r.add(name, entry{mode: mode.Perm(), hostPath: hostPath})
	return r
}

// Symlink adds name -> target.
func (r *Initramfs) Symlink(name, target string) *Initramfs {
	r.add(name, entry{mode: fs.ModeSymlink | 0o777, data: []byte(target)})
	return r
}

// Dir adds a directory.
func (r *Initramfs) Dir(name string, mode fs.FileMode) *Initramfs {
	r.add(name, entry{mode: fs.ModeDir | mode.Perm()})
	return r
}

// CharDev adds a character device node.
func (r *Initramfs) CharDev(name string, mode fs.FileMode, major, minor uint32) *Initramfs {
	r.add(name, entry{mode: fs.ModeDevice | fs.ModeCharDevice | mode.Perm(), major: major, minor: minor})
	return r
}

// Busybox adds /bin/busybox from host path bb, its applet links, the
// directories the guest mounts on, and /dev/console so that /init has a
// console before devtmpfs is mounted.
func (r *Initramfs) Busybox(bb string) *Initramfs {
	r.HostFile("/bin/busybox", 0o755, bb)
	for _, a := range Applets {
		r.Symlink("/bin/"+a, "busybox")
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/root", "/etc"} {
		r.Dir(d, 0o755)
	}
	r.Dir("/tmp", 0o1777)
	r.CharDev("/dev/console", 0o600, 5, 1)
	return r
}

func (r *Initramfs) add(name string, e entry) {
	name = path.Clean("/" + name)
	for dir := path.Dir(name); dir != "/"; dir = path.Dir(dir) {
		if _, ok := r.entries[dir]; !ok {
			r.entries[dir] = entry{mode: fs.ModeDir | 0o755}
		}
	}
	r.entries[name] = e
}

// Bytes returns the archive. Entries are sorted, so parents come first.
func (r *Initramfs) Bytes() ([]byte, error) {
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	for _, n := range names {
		e := r.entries[n]
		var err error
		switch {
		case n == "/":
			err = w.Dir(".", e.mode)
		case e.mode.IsDir():
			err = w.Dir(n, e.mode)
		case e.mode&fs.ModeSymlink != 0:
			err = w.Symlink(n, string(e.data))
		case e.mode&fs.ModeCharDevice != 0:
			err = w.CharDev(n, e.mode, e.major, e.minor)
		default:
			data := e.data
			if e.hostPath != "" {
				if data, err = os.ReadFile(e.hostPath); err != nil {
					return nil, fmt.Errorf("initramfs file %s: %w", n, err)
				}
			}
			err = w.File(n, e.mode, data)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write writes the archive to the host file name.
func (r *Initramfs) Write(name string) error {
	b, err := r.Bytes()
	if err != nil {
		return err
	}
	return os.WriteFile(name, b, 0o644)
}
