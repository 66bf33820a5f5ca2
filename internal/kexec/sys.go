package kexec

// Sys is the kernel's kexec interface, raw. The real one (sys_linux.go) makes
// the syscalls; tests use Fake. Nothing outside this package makes these calls.
type Sys interface {
	// FileLoad is kexec_file_load(2). initrdFd is -1 for none.
	FileLoad(kernelFd, initrdFd int, cmdline string) error
	// KexecLoad is kexec_load(2) with the segments kxboot built: the
	// kernel copies each into place at the jump and enters at entry.
	KexecLoad(entry uint64, segs []Segment) error
	// Probe asks the kernel which load syscalls it has without loading
	// or unloading anything: kexec_file_load with no file and kexec_load
	// with too many segments. Each error is the errno: EBADF and EINVAL
	// mean the call exists, ENOSYS that it does not, EPERM that the
	// caller may not use it (not root, or kexec_load_disabled).
	Probe() (file, load error)
	// Unload drops a loaded kernel.
	Unload() error
	// RebootKexec syncs the file systems and jumps into the loaded kernel.
	// It does not return on success.
	RebootKexec() error
	// Reboot syncs and restarts the machine through the firmware.
	Reboot() error
}

// Segment is one piece of a kexec_load: Buf is copied to the physical
// address Mem and the rest of MemSize is zeroed. Mem and MemSize are
// page-aligned.
type Segment struct {
	Buf     []byte
	Mem     uint64
	MemSize uint64
}
