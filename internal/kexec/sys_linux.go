//go:build linux

package kexec

import (
	"errors"
	"os"

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

func (Native) SegmentLoad(kernel, initrd *os.File, cmdline string) error {
	return segmentLoad(kernel, initrd, cmdline)
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
