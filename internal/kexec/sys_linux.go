//go:build linux

package kexec

import (
	"errors"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Native is the running kernel.
type Native struct{}

var _ Sys = Native{}

func (Native) FileLoad(kernelFd, initrdFd int, cmdline string) error {
	flags := 0
	if initrdFd < 0 {
		flags |= unix.KEXEC_FILE_NO_INITRAMFS
		initrdFd = 0
	}
	return unix.KexecFileLoad(kernelFd, initrdFd, cmdline, flags)
}

// kexecSegment is the kernel's struct kexec_segment.
type kexecSegment struct {
	buf, bufsz, mem, memsz uintptr
}

func (Native) KexecLoad(entry uint64, segs []Segment) error {
	if len(segs) == 0 {
		return unix.EINVAL
	}
	ks := make([]kexecSegment, len(segs))
	for i, s := range segs {
		ks[i] = kexecSegment{uintptr(unsafe.Pointer(unsafe.SliceData(s.Buf))), uintptr(len(s.Buf)), uintptr(s.Mem), uintptr(s.MemSize)}
	}
	// flags 0 is KEXEC_ARCH_DEFAULT: the running kernel's architecture.
	_, _, errno := unix.Syscall6(unix.SYS_KEXEC_LOAD, uintptr(entry), uintptr(len(ks)), uintptr(unsafe.Pointer(&ks[0])), 0, 0, 0)
	runtime.KeepAlive(segs)
	runtime.KeepAlive(ks)
	if errno != 0 {
		return errno
	}
	return nil
}

func (Native) Probe() (file, load error) {
	// kernel_fd -1 fails with EBADF when the kernel reads it, after the
	// permission checks; a loaded kernel is replaced only on success.
	file = unix.KexecFileLoad(-1, -1, "", 0)
	// 17 segments is over KEXEC_SEGMENT_MAX: EINVAL before anything is
	// read or freed (0 segments would unload).
	_, _, errno := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 17, 0, 0, 0, 0)
	if errno != 0 {
		load = errno
	}
	return file, load
}

func (Native) Unload() error {
	err := unix.KexecFileLoad(0, 0, "", unix.KEXEC_FILE_UNLOAD)
	if errors.Is(err, unix.ENOSYS) {
		// kexec_load with no segments unloads.
		_, _, errno := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0)
		if errno != 0 {
			return errno
		}
		return nil
	}
	return err
}

func (Native) RebootKexec() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC)
}

func (Native) Reboot() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}
