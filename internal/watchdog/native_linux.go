//go:build linux

package watchdog

import (
	"bytes"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Native opens the machine's real watchdog device. Opening it starts the
// watchdog: only Arm and Release use it, and tests use Fake.
type Native struct{}

var _ Opener = Native{}

// Open opens the device write-only, as the watchdog API expects.
func (Native) Open(path string) (Dev, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &nativeDev{fd: fd, path: path}, nil
}

type nativeDev struct {
	fd   int
	path string
}

func (d *nativeDev) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: d.path, Err: err}
}

func (d *nativeDev) Info() (Info, error) {
	wi, err := unix.IoctlGetWatchdogInfo(d.fd)
	if err != nil {
		return Info{}, d.wrap("WDIOC_GETSUPPORT", err)
	}
	id := wi.Identity[:]
	if i := bytes.IndexByte(id, 0); i >= 0 {
		id = id[:i]
	}
	return Info{Identity: string(id), Options: wi.Options, Version: wi.Version}, nil
}

// ioctlInt passes a pointer to a 32-bit int, what the watchdog ioctls
// read and write (unix.IoctlGetInt reads into a Go int, which is only right
// on little-endian machines, and unix.IoctlSetPointerInt drops the value
// WDIOC_SETTIMEOUT writes back).
func (d *nativeDev) ioctlInt(req uint, v *int32) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), uintptr(req), uintptr(unsafe.Pointer(v)))
	if errno != 0 {
		return errno
	}
	return nil
}

// SetTimeout is WDIOC_SETTIMEOUT, which writes back the timeout the driver
// took (the core pings the watchdog as part of it).
func (d *nativeDev) SetTimeout(seconds int) (int, error) {
	v := int32(seconds)
	if err := d.ioctlInt(unix.WDIOC_SETTIMEOUT, &v); err != nil {
		return 0, d.wrap("WDIOC_SETTIMEOUT", err)
	}
	return int(v), nil
}

func (d *nativeDev) Timeout() (int, error) {
	var v int32
	if err := d.ioctlInt(unix.WDIOC_GETTIMEOUT, &v); err != nil {
		return 0, d.wrap("WDIOC_GETTIMEOUT", err)
	}
	return int(v), nil
}

// Keepalive writes one byte that is not 'V': every driver counts a write
// as a ping, while WDIOC_KEEPALIVE needs WDIOF_KEEPALIVEPING.
func (d *nativeDev) Keepalive() error {
	_, err := unix.Write(d.fd, []byte{0})
	return d.wrap("write", err)
}

func (d *nativeDev) MagicClose() error {
	_, werr := unix.Write(d.fd, []byte("V"))
	cerr := unix.Close(d.fd)
	if werr != nil {
		return d.wrap("write", werr)
	}
	return d.wrap("close", cerr)
}

func (d *nativeDev) Close() error {
	return d.wrap("close", unix.Close(d.fd))
}
