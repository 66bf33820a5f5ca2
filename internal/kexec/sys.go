package kexec

import "os"

// Sys is the kernel's kexec interface, raw. The real one (sys_linux.go) makes
// the syscalls; tests use Fake. Nothing outside this package makes these calls.
type Sys interface {
	// FileLoad is kexec_file_load(2). initrdFd is -1 for none.
	FileLoad(kernelFd, initrdFd int, cmdline string) error
	// SegmentLoad is kexec_load(2): user space builds the segments (and the
	// purgatory or trampoline) from the image; initrd may be nil.
	SegmentLoad(kernel, initrd *os.File, cmdline string) error
	// Unload drops a loaded kernel.
	Unload() error
	// RebootKexec syncs the file systems and jumps into the loaded kernel.
	// It does not return on success.
	RebootKexec() error
	// Reboot syncs and restarts the machine through the firmware.
	Reboot() error
}
