package kexec

import (
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// Fake is a Sys for tests: it records each call and what it was given, and
// answers with the errors set in it. It never touches the kernel. When FS is
// set, a successful load writes "1" to its /sys/kernel/kexec_loaded and an
// unload "0", as the kernel would.
type Fake struct {
	mu sync.Mutex
	FS *rootfs.FS

	FileErr, SegmentErr, UnloadErr, ExecErr, RebootErr error
	// ProbeFile and ProbeLoad are what Probe answers; nil means EBADF and
	// EINVAL, as a kernel with both calls answers root.
	ProbeFile, ProbeLoad error

	Calls   []string // "file_load", "kexec_load", "unload", "reboot_kexec", "reboot"
	Kernel  []byte   // bytes of the kernel given to the last load
	Initrd  []byte   // bytes of the initrd given to the last load (nil for none)
	Cmdline string
	// Entry and Segments are what the last KexecLoad got (the buffers
	// copied).
	Entry    uint64
	Segments []Segment
}

var _ Sys = (*Fake)(nil)

func (f *Fake) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, call)
}

func (f *Fake) setLoaded(v string) {
	if f.FS != nil {
		p := f.FS.Path("/sys/kernel/kexec_loaded")
		os.WriteFile(p, []byte(v+"\n"), 0o644)
	}
}

// openForWriting is the kernel's refusal of a file for kexec_file_load
// (deny_write_access: ETXTBSY) as far as this descriptor shows it: opened
// for writing through open(2). A memfd is made without that count, which
// is why the kernel takes it.
func openForWriting(fd int) bool {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_ACCMODE == unix.O_RDONLY {
		return false
	}
	l, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return !strings.HasPrefix(l, "/memfd:")
}

// readFd reads a whole file by descriptor with pread, so that neither the
// caller's offset nor its ownership of the descriptor changes.
func readFd(fd int) []byte {
	var out []byte
	buf := make([]byte, 64<<10)
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
		if n <= 0 || err != nil {
			return out
		}
		out = append(out, buf[:n]...)
		off += int64(n)
	}
}

func (f *Fake) FileLoad(kernelFd, initrdFd int, cmdline string) error {
	f.record("file_load")
	if f.FileErr != nil {
		return f.FileErr
	}
	if openForWriting(kernelFd) || initrdFd >= 0 && openForWriting(initrdFd) {
		return unix.ETXTBSY
	}
	f.Kernel, f.Initrd, f.Cmdline = readFd(kernelFd), nil, cmdline
	if initrdFd >= 0 {
		f.Initrd = readFd(initrdFd)
	}
	f.setLoaded("1")
	return nil
}

func (f *Fake) KexecLoad(entry uint64, segs []Segment) error {
	f.record("kexec_load")
	if f.SegmentErr != nil {
		return f.SegmentErr
	}
	f.Entry, f.Segments = entry, nil
	for _, s := range segs {
		s.Buf = append([]byte(nil), s.Buf...)
		f.Segments = append(f.Segments, s)
	}
	f.setLoaded("1")
	return nil
}

func (f *Fake) Probe() (file, load error) {
	f.record("probe")
	file, load = f.ProbeFile, f.ProbeLoad
	if file == nil {
		file = unix.EBADF
	}
	if load == nil {
		load = unix.EINVAL
	}
	return file, load
}

func (f *Fake) Unload() error {
	f.record("unload")
	if f.UnloadErr != nil {
		return f.UnloadErr
	}
	f.setLoaded("0")
	return nil
}

func (f *Fake) RebootKexec() error { f.record("reboot_kexec"); return f.ExecErr }

func (f *Fake) Reboot() error { f.record("reboot"); return f.RebootErr }
