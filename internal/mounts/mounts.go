// Package mounts does the few mount operations kxboot needs: as PID 1 it
// mounts /proc, /sys and /dev if the kernel has not, and takes them away
// again before the real init starts; before a jump from a running system it
// remounts the disk file systems read-only, so that the next kernel finds
// them clean.
package mounts

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// Sys is the mount syscalls; Native makes them, tests use a fake.
type Sys interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
	Sync()
}

// Native is the running kernel.
type Native struct{}

func (Native) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}
func (Native) Unmount(target string, flags int) error { return unix.Unmount(target, flags) }
func (Native) Sync()                                  { unix.Sync() }

// Mount is one line of /proc/self/mounts.
type Mount struct {
	Source, Point, Type string
	Options             []string
}

// ReadOnly says whether the mount is read-only.
func (m Mount) ReadOnly() bool {
	for _, o := range m.Options {
		if o == "ro" {
			return true
		}
	}
	return false
}

// List reads /proc/self/mounts.
func List(fsys rootfs.FS) ([]Mount, error) {
	b, err := fsys.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil, err
	}
	var out []Mount
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		out = append(out, Mount{Source: unescape(f[0]), Point: unescape(f[1]), Type: f[2], Options: strings.Split(f[3], ",")})
	}
	return out, nil
}

// unescape undoes the octal escapes of /proc/self/mounts (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOct(s[i+1]) && isOct(s[i+2]) && isOct(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOct(c byte) bool { return c >= '0' && c <= '7' }

// early are the API file systems PID 1 needs, in mount order.
var early = []struct {
	fstype, point, probe string
	flags                uintptr
}{
	{"proc", "/proc", "/proc/self", unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{"sysfs", "/sys", "/sys/kernel", unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{"devtmpfs", "/dev", "", unix.MS_NOSUID},
}

// Early mounts /proc, /sys and /dev where they are not mounted yet, and
// returns a function that unmounts exactly those again, so that the real
// init finds the machine as the kernel left it.
func Early(fsys rootfs.FS, sys Sys) (undo func(), err error) {
	var done []string
	undo = func() {
		for i := len(done) - 1; i >= 0; i-- {
			sys.Unmount(fsys.Path(done[i]), unix.MNT_DETACH)
		}
	}
	for _, e := range early {
		if mounted(fsys, e.point, e.probe) {
			continue
		}
		if err := sys.Mount(e.fstype, fsys.Path(e.point), e.fstype, e.flags, ""); err != nil {
			return undo, fmt.Errorf("mounting %s on %s: %w", e.fstype, e.point, err)
		}
		done = append(done, e.point)
	}
	return undo, nil
}

// mounted says whether point is a mount point: /proc by a file only it has,
// the others from /proc/self/mounts.
func mounted(fsys rootfs.FS, point, probe string) bool {
	if point == "/proc" {
		return fsys.Exists(probe)
	}
	ms, err := List(fsys)
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.Point == point {
			return true
		}
	}
	return false
}

// virtual are the file system types that hold nothing to keep clean.
var virtual = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true, "ramfs": true, "rootfs": true,
	"cgroup": true, "cgroup2": true, "securityfs": true, "debugfs": true, "tracefs": true, "pstore": true,
	"bpf": true, "efivarfs": true, "mqueue": true, "hugetlbfs": true, "configfs": true, "fusectl": true,
	"autofs": true, "binfmt_misc": true, "squashfs": true, "iso9660": true,
	"nfs": true, "nfs4": true, "cifs": true, "fuse": true, "nsfs": true,
}

// holdsData says whether m is a disk file system mounted writable: what a
// jump or a reset would leave unclean.
func holdsData(m Mount) bool {
	return !m.ReadOnly() && !virtual[m.Type] && !strings.HasPrefix(m.Type, "fuse.")
}

// Writable lists the mount points of the disk file systems still mounted
// writable; nil also when the mounts cannot be read (no /proc: nothing can
// be told, and the caller goes on as it would have).
func Writable(fsys rootfs.FS) []string {
	ms, err := List(fsys)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range ms {
		if holdsData(m) {
			out = append(out, m.Point)
		}
	}
	return out
}

// RemountReadOnly syncs and remounts every writable disk file system
// read-only, last mounted first, the way a clean shutdown leaves them, and
// keeps their other flags: a nosuid or noexec mount stays so. What
// cannot be remounted (a file still open for writing) is named in the
// error; the rest is still done.
func RemountReadOnly(fsys rootfs.FS, sys Sys) error {
	sys.Sync()
	ms, err := List(fsys)
	if err != nil {
		return fmt.Errorf("cannot list the mounts to remount them read-only: %w", err)
	}
	// Last mounted first, as umount -a goes: a mount sits on those before it.
	var disks []Mount
	for i := len(ms) - 1; i >= 0; i-- {
		if m := ms[i]; holdsData(m) {
			disks = append(disks, m)
		}
	}
	var failed []string
	var errs []error
	for _, m := range disks {
		if err := sys.Mount("", fsys.Path(m.Point), "", unix.MS_REMOUNT|unix.MS_RDONLY|RemountFlags(m), ""); err != nil {
			failed = append(failed, m.Point)
			errs = append(errs, err)
		}
	}
	sys.Sync()
	if len(failed) > 0 {
		return fmt.Errorf("could not remount %s read-only (%w)", strings.Join(failed, ", "), errors.Join(errs...))
	}
	return nil
}

// RemountFlags are the generic flags of m (nosuid, nodev, noexec and the
// atime ones) as mount(2) takes them: a remount clears every such flag it
// is not given, so each remount passes them again to keep them.
func RemountFlags(m Mount) uintptr {
	var f uintptr
	for _, o := range m.Options {
		f |= keptFlags[o]
	}
	return f
}

// keptFlags are the mount options a remount keeps, with their flags.
var keptFlags = map[string]uintptr{
	"nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
	"noatime": unix.MS_NOATIME, "nodiratime": unix.MS_NODIRATIME, "relatime": unix.MS_RELATIME,
}
