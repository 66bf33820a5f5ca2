package mounts

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// diskTypes are the file system types a device is tried with, in order
// (mount(2) needs a type; the kernel refuses a wrong one cleanly).
var diskTypes = []string{"ext4", "xfs", "btrfs", "f2fs", "vfat"}

// Device mounts the block device dev (an in-machine /dev path) on point
// (in-machine, created when missing) with flags, trying the usual disk
// file system types, and returns the unmount.
func Device(fsys rootfs.FS, sys Sys, dev, point string, flags uintptr) (unmount func(), err error) {
	if err := os.MkdirAll(fsys.Path(point), 0o755); err != nil {
		return nil, fmt.Errorf("cannot make the mount point %s: %w", point, err)
	}
	var errs []string
	for _, t := range diskTypes {
		err := sys.Mount(fsys.Path(dev), fsys.Path(point), t, flags, "")
		if err == nil {
			return func() {
				if sys.Unmount(fsys.Path(point), 0) != nil {
					sys.Unmount(fsys.Path(point), unix.MNT_DETACH)
				}
				os.Remove(fsys.Path(point))
				os.Remove(fsys.Path(path.Dir(point))) // the scratch directory, once empty
			}, nil
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENODEV) {
			errs = append(errs, t)
			continue // not this type
		}
		os.Remove(fsys.Path(point))
		return nil, fmt.Errorf("cannot mount %s on %s: %w", dev, point, err)
	}
	os.Remove(fsys.Path(point))
	return nil, fmt.Errorf("cannot mount %s: it holds none of the file systems %s", dev, strings.Join(errs, ", "))
}

// Scratch is a directory for a short mount: under /run when /run can hold
// it, else under /dev (an init wrapper runs before /run is mounted, on a
// read-only root). name is its last element.
func Scratch(fsys rootfs.FS, name string) string {
	for _, dir := range []string{"/run/kxboot", "/dev/.kxboot"} {
		if err := os.MkdirAll(fsys.Path(dir), 0o755); err == nil {
			return dir + "/" + name
		}
	}
	return "/run/kxboot/" + name
}

// Attach mounts dev read-write where nothing else will see it: on a
// scratch directory, opened, then detached, so that the file system lives
// as long as the returned directory stays open (and is unmounted cleanly
// when it is closed, or the process ends), whatever is mounted later
// where it was. The returned path reaches it through the open directory
// (/proc/self/fd/N).
func Attach(fsys rootfs.FS, sys Sys, dev, name string) (string, *os.File, error) {
	point := Scratch(fsys, name)
	unmount, err := Device(fsys, sys, dev, point, 0)
	if err != nil {
		return "", nil, err
	}
	d, err := os.Open(fsys.Path(point))
	if err != nil {
		unmount()
		return "", nil, err
	}
	if err := sys.Unmount(fsys.Path(point), unix.MNT_DETACH); err != nil {
		d.Close()
		unmount()
		return "", nil, fmt.Errorf("cannot detach %s from %s: %w", dev, point, err)
	}
	os.Remove(fsys.Path(point))
	os.Remove(fsys.Path(path.Dir(point)))
	return fmt.Sprintf("/proc/self/fd/%d", d.Fd()), d, nil
}
