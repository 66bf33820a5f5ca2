package mounts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// diskTypes are the file system types a device is tried with, in order
// (mount(2) needs a type; the kernel refuses a wrong one cleanly).
var diskTypes = []string{"ext4", "xfs", "btrfs", "f2fs", "vfat"}

// Device mounts the block device dev (an in-machine /dev path) with
// flags on a scratch directory of its own (Scratch), trying the usual disk
// file system types, and returns the in-machine mount point and the
// unmount, which removes the directory again.
func Device(fsys rootfs.FS, sys Sys, dev, name string, flags uintptr) (point string, unmount func(), err error) {
	point, err = Scratch(fsys, name)
	if err != nil {
		return "", nil, err
	}
	// The parent stays: another kxboot may be making its own directory
	// in it at this moment.
	gone := func() { os.Remove(fsys.Path(point)) }
	var errs []string
	for _, t := range diskTypes {
		err := sys.Mount(fsys.Path(dev), fsys.Path(point), t, flags, "")
		if err == nil {
			return point, func() {
				if sys.Unmount(fsys.Path(point), 0) != nil {
					sys.Unmount(fsys.Path(point), unix.MNT_DETACH)
				}
				gone()
			}, nil
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENODEV) {
			errs = append(errs, t)
			continue // not this type
		}
		gone()
		return "", nil, fmt.Errorf("cannot mount %s on %s: %w", dev, point, err)
	}
	gone()
	return "", nil, fmt.Errorf("cannot mount %s: it holds none of the file systems %s", dev, strings.Join(errs, ", "))
}

// Scratch makes a fresh directory for a short mount, its own even when
// other kxboot processes mount at the same time: under /run/kxboot when
// /run can hold it, else under /dev/.kxboot (an init wrapper runs before
// /run is mounted, on a read-only root). name begins its last element.
func Scratch(fsys rootfs.FS, name string) (string, error) {
	var last error
	for _, dir := range []string{"/run/kxboot", "/dev/.kxboot"} {
		if err := os.MkdirAll(fsys.Path(dir), 0o755); err != nil {
			last = err
			continue
		}
		hp, err := os.MkdirTemp(fsys.Path(dir), name+"-")
		if err != nil {
			last = err
			continue
		}
		return dir + "/" + filepath.Base(hp), nil
	}
	return "", fmt.Errorf("cannot make a directory to mount on under /run or /dev: %w", last)
}

// Attach mounts dev read-write where nothing else will see it: on a
// scratch directory, opened, then detached, so that the file system lives
// as long as the returned directory stays open (and is unmounted cleanly
// when it is closed, or the process ends), whatever is mounted later
// where it was. The returned path reaches it through the open directory
// (/proc/self/fd/N).
func Attach(fsys rootfs.FS, sys Sys, dev, name string) (string, *os.File, error) {
	point, unmount, err := Device(fsys, sys, dev, name, 0)
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
	return fmt.Sprintf("/proc/self/fd/%d", d.Fd()), d, nil
}
