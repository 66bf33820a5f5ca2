package watchdog

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// Fake is an Opener for tests that behaves like the kernel's watchdog
// core: single open (EBUSY when Held or already open), open starts the
// watchdog, a close stops it only after the magic 'V' (or always, when the
// driver lacks WDIOF_MAGICCLOSE) and never with Nowayout. When FS is set it
// keeps /sys/class/watchdog/watchdog0/{state,timeout} in step, as the
// kernel would. It never touches a real device.
type Fake struct {
	mu sync.Mutex
	FS *rootfs.FS

	Identity string
	Options  uint32 // zero means OptSetTimeout|OptMagicClose|OptKeepalivePing
	Min, Max int    // accepted timeouts; 0 for no bound
	Round    int    // if > 0, timeouts are rounded up to a multiple of it
	Nowayout bool
	Held     bool  // another program holds the device: Open fails with EBUSY
	OpenErr  error // returned by Open when set

	Timeout int  // seconds
	Running bool // the watchdog counts down
	IsOpen  bool // the device is open

	Calls []string // "open", "info", "settimeout N", "gettimeout", "keepalive", "magicclose", "close"
}

var _ Opener = (*Fake)(nil)

func (f *Fake) record(format string, a ...any) {
	f.Calls = append(f.Calls, fmt.Sprintf(format, a...))
}

func (f *Fake) options() uint32 {
	if f.Options == 0 {
		return OptSetTimeout | OptMagicClose | OptKeepalivePing
	}
	return f.Options
}

// sync writes the state to sysfs, when FS is set and watchdog0 is there.
func (f *Fake) sync() {
	if f.FS == nil || !f.FS.Exists(SysDir) {
		return
	}
	state := "inactive"
	if f.Running {
		state = "active"
	}
	write := func(name, v string) {
		os.WriteFile(filepath.Join(f.FS.Path(SysDir), name), []byte(v+"\n"), 0o644)
	}
	write("state", state)
	write("timeout", strconv.Itoa(f.Timeout))
}

// Open opens the fake device; the path is not looked at.
func (f *Fake) Open(path string) (Dev, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("open")
	if f.OpenErr != nil {
		return nil, f.OpenErr
	}
	if f.Held || f.IsOpen {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EBUSY}
	}
	f.IsOpen, f.Running = true, true
	f.sync()
	return &fakeDev{f: f}, nil
}

type fakeDev struct {
	f      *Fake
	magic  bool
	closed bool
}

func (d *fakeDev) lock() (*Fake, error) {
	d.f.mu.Lock()
	if d.closed {
		d.f.mu.Unlock()
		return nil, os.ErrClosed
	}
	return d.f, nil
}

func (d *fakeDev) Info() (Info, error) {
	f, err := d.lock()
	if err != nil {
		return Info{}, err
	}
	defer f.mu.Unlock()
	f.record("info")
	return Info{Identity: f.Identity, Options: f.options()}, nil
}

func (d *fakeDev) SetTimeout(seconds int) (int, error) {
	f, err := d.lock()
	if err != nil {
		return 0, err
	}
	defer f.mu.Unlock()
	f.record("settimeout %d", seconds)
	if f.options()&OptSetTimeout == 0 {
		return 0, syscall.EOPNOTSUPP
	}
	if (f.Min > 0 && seconds < f.Min) || (f.Max > 0 && seconds > f.Max) {
		return 0, syscall.EINVAL
	}
	if f.Round > 0 {
		seconds = (seconds + f.Round - 1) / f.Round * f.Round
	}
	f.Timeout = seconds
	f.sync()
	return seconds, nil
}

func (d *fakeDev) Timeout() (int, error) {
	f, err := d.lock()
	if err != nil {
		return 0, err
	}
	defer f.mu.Unlock()
	f.record("gettimeout")
	if f.Timeout == 0 {
		return 0, syscall.EOPNOTSUPP
	}
	return f.Timeout, nil
}

func (d *fakeDev) Keepalive() error {
	f, err := d.lock()
	if err != nil {
		return err
	}
	defer f.mu.Unlock()
	f.record("keepalive")
	d.magic = false // a write without 'V' clears it, as in the kernel
	return nil
}

func (d *fakeDev) MagicClose() error { return d.close(true) }
func (d *fakeDev) Close() error      { return d.close(false) }

func (d *fakeDev) close(magic bool) error {
	f, err := d.lock()
	if err != nil {
		return err
	}
	defer f.mu.Unlock()
	if magic {
		f.record("magicclose")
		d.magic = true
	} else {
		f.record("close")
	}
	if (d.magic || f.options()&OptMagicClose == 0) && !f.Nowayout {
		f.Running = false
	}
	d.closed, f.IsOpen = true, false
	f.sync()
	return nil
}
