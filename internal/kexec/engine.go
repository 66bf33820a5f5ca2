// Package kexec is kxboot's kexec engine and the only package that makes
// kexec or reboot syscalls (through Sys). It recognises the image, joins
// several initrds into one, picks kexec_file_load or kexec_load, and turns
// every refusal of the kernel into a sentence with its cause and its remedy.
package kexec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/kimage"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// Method says which syscall loads the kernel.
type Method string

const (
	Auto     Method = "auto" // kexec_file_load, then kexec_load if the kernel lacks it
	File     Method = "file" // kexec_file_load only
	Segments Method = "load" // kexec_load only (kxboot builds the segments)
)

// ParseMethod reads a --syscall value.
func ParseMethod(s string) (Method, error) {
	switch m := Method(s); m {
	case Auto, File, Segments:
		return m, nil
	case "":
		return Auto, nil
	}
	return "", fmt.Errorf("unknown syscall %q: use auto, file (kexec_file_load) or load (kexec_load)", s)
}

// Request is what to load. Paths are in-machine paths (see rootfs).
type Request struct {
	Kernel  string
	Initrds []string
	Cmdline string
	Method  Method
	// DryRun makes every check and every step of a load (the initrds
	// joined, the segments built) but the syscall that loads: a dry run
	// refuses what the load would refuse, with the same sentence.
	DryRun bool
}

// Result says what was loaded and how.
type Result struct {
	Syscall     string // "kexec_file_load" or "kexec_load"
	Kind        kimage.Kind
	InitrdBytes int64
	// FellBack is set when kexec_file_load was missing and kexec_load was used.
	FellBack bool
}

// Engine loads and starts kernels.
type Engine struct {
	FS   rootfs.FS
	Sys  Sys
	Arch string // GOARCH of the machine; runtime.GOARCH when empty
	// Euid is the effective uid, used to explain EPERM; os.Geteuid when nil.
	Euid func() int
	// Rand seeds the next kernel's randomness on arm64; crypto/rand when nil.
	Rand io.Reader
}

// New returns the engine for the running machine.
func New() *Engine { return &Engine{FS: rootfs.Host, Sys: Native{}} }

// MachineArch is the GOARCH of the machine the engine loads for.
func (e *Engine) MachineArch() string {
	if e.Arch != "" {
		return e.Arch
	}
	return runtime.GOARCH
}

// CheckArch says whether kxboot can load kernels on a machine of this
// GOARCH. 32-bit ARM cannot: Linux has no kexec_file_load there and kxboot
// builds kexec_load segments for amd64 and arm64 only.
func CheckArch(arch string) error {
	switch arch {
	case "amd64", "arm64":
		return nil
	case "arm":
		return fmt.Errorf("kxboot cannot load kernels on 32-bit ARM: Linux has no kexec_file_load there, and kxboot builds kexec_load's segments (zImage, ATAGs or device tree) only for amd64 and arm64; use kexec-tools on this machine, or run an arm64 kernel if the board has one")
	}
	return fmt.Errorf("kxboot cannot load kernels on %s: it supports amd64 and arm64", arch)
}

// Load loads the kernel so that Exec (or a reboot that honours a loaded
// kernel) starts it.
func (e *Engine) Load(r Request) (Result, error) {
	var res Result
	if err := CheckArch(e.MachineArch()); err != nil {
		return res, err
	}
	kernel, kind, err := e.openKernel(r.Kernel)
	if err != nil {
		return res, err
	}
	defer kernel.Close()
	res.Kind = kind

	initrd, size, err := e.openInitrds(r.Initrds, !r.DryRun)
	if err != nil {
		return res, err
	}
	if initrd != nil {
		defer initrd.Close()
	}
	res.InitrdBytes = size

	method := r.Method
	if method == "" {
		method = Auto
	}
	// A dry run asks the kernel which calls it has (loading nothing)
	// where a load would call them.
	probeFile, probeLoad := Unknown, Unknown
	if r.DryRun {
		probeFile, probeLoad = e.Syscalls()
	}
	lock := e.lockdown()
	if method == Segments && lock != "" {
		return res, fmt.Errorf("cannot load %s with kexec_load: the kernel is in lockdown (%s), which allows only kexec_file_load of a signed kernel; use --syscall file with a signed kernel", r.Kernel, lock)
	}
	if method != Segments {
		res.Syscall = "kexec_file_load"
		initrdFd := -1
		if initrd != nil {
			initrdFd = int(initrd.Fd())
		}
		if r.DryRun {
			err = nil
			if probeFile == No {
				err = unix.ENOSYS
			}
		} else {
			err = e.Sys.FileLoad(int(kernel.Fd()), initrdFd, r.Cmdline)
		}
		if err == nil || method == File || !errors.Is(err, unix.ENOSYS) {
			return res, e.explain(err, res.Syscall, r)
		}
		if lock != "" {
			return res, fmt.Errorf("cannot load %s: this kernel has no kexec_file_load (CONFIG_KEXEC_FILE is off) and its lockdown (%s) forbids kexec_load; kexec cannot work on this boot", r.Kernel, lock)
		}
		res.FellBack = true
		if _, err := kernel.Seek(0, io.SeekStart); err != nil {
			return res, err
		}
		if initrd != nil {
			if _, err := initrd.Seek(0, io.SeekStart); err != nil {
				return res, err
			}
		}
	}
	res.Syscall = "kexec_load"
	if r.DryRun && probeLoad == No {
		return res, e.explain(unix.ENOSYS, res.Syscall, r)
	}
	if e.MachineArch() == "arm64" {
		return res, e.loadArm64(kernel, initrd, r)
	}
	return res, e.loadAMD64(kernel, initrd, r)
}

// CheckFiles makes every check of the kernel and initrd files that a load
// makes (the image's kind, header and length, its architecture, the
// initrds' existence, and that no one but root could have written any of
// them), without loading or joining anything: a chain boot or a dry run
// refuses with the sentence the load would give.
func (e *Engine) CheckFiles(kernel string, initrds []string) error {
	if _, err := e.checkKernel(kernel); err != nil {
		return err
	}
	return e.checkInitrds(initrds)
}

// CheckFiles is Engine.CheckFiles for this machine's architecture.
func CheckFiles(fsys rootfs.FS, kernel string, initrds []string) error {
	return (&Engine{FS: fsys}).CheckFiles(kernel, initrds)
}

// checkKernel checks the kernel file as a load does and says what it is.
func (e *Engine) checkKernel(path string) (kimage.Info, error) {
	info, err := kimage.Identify(e.FS.Path(path), path)
	if err != nil {
		return info, err // a sentence that names the file
	}
	if err := e.FS.Trusted(path); err != nil {
		return info, fmt.Errorf("refusing kernel %s: %w", path, err)
	}
	if arch := info.Kind.Arch(); arch != e.MachineArch() {
		return info, fmt.Errorf("cannot load %s: it is an %s kernel (%s) and this machine is %s; name a kernel built for %s", path, arch, info.Kind, e.MachineArch(), e.MachineArch())
	}
	return info, nil
}

// checkInitrds checks the initrd files as a load does.
func (e *Engine) checkInitrds(paths []string) error {
	for _, p := range paths {
		st, err := os.Stat(e.FS.Path(p))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("cannot load: initrd %s does not exist; fix INITRD= or --initrd", p)
			}
			return fmt.Errorf("cannot load: initrd %s: %w", p, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("cannot load: initrd %s is not a regular file", p)
		}
		if err := e.FS.Trusted(p); err != nil {
			return fmt.Errorf("refusing initrd %s: %w", p, err)
		}
	}
	return nil
}

// openKernel checks the image and returns a file holding a kernel the
// running kernel can load: the file itself, or a memfd with the unpacked
// Image for Image.gz and EFI zboot.
func (e *Engine) openKernel(path string) (*os.File, kimage.Kind, error) {
	info, err := e.checkKernel(path)
	if err != nil {
		return nil, 0, err
	}
	if info.Kind == kimage.BzImage || info.Kind == kimage.Arm64 {
		f, err := os.Open(e.FS.Path(path))
		return f, info.Kind, err
	}
	mem, err := memfd("kxboot-kernel")
	if err != nil {
		return nil, 0, err
	}
	if err := kimage.Unpack(e.FS.Path(path), path, info, mem); err != nil {
		mem.Close()
		return nil, 0, fmt.Errorf("cannot load: %w", err)
	}
	if _, err := mem.Seek(0, io.SeekStart); err != nil {
		mem.Close()
		return nil, 0, err
	}
	return mem, kimage.Arm64, nil
}

// openInitrds returns one file holding every initrd in order. One initrd is
// passed as it is; several are joined, because the kernel takes only one,
// and the kernel unpacks concatenated cpio archives (compressed or not) in
// order: early microcode first, then the main initrd. kexec-tools keeps
// only the last --initrd, which loses the microcode or the root. The join
// kept in JoinDir by an earlier load of the same files is used as it is;
// otherwise, with keep, the join is written there for the next load; where
// that cannot be (no /var/cache, a read-only root, a dry run), the join is
// made in a memfd.
func (e *Engine) openInitrds(paths []string, keep bool) (*os.File, int64, error) {
	if len(paths) == 0 {
		return nil, 0, nil
	}
	if err := e.checkInitrds(paths); err != nil {
		return nil, 0, err
	}
	if len(paths) == 1 {
		f, err := os.Open(e.FS.Path(paths[0]))
		if err != nil {
			return nil, 0, fmt.Errorf("cannot load: initrd %s: %w", paths[0], err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, st.Size(), nil
	}
	if name, size, err := e.joinName(paths); err == nil {
		if f := e.keptJoin(name, size); f != nil {
			return f, size, nil
		}
		if keep {
			if f, err := e.keepJoin(paths, name, size); err == nil {
				return f, size, nil
			}
		}
	}
	mem, err := memfd("kxboot-initrd")
	if err != nil {
		return nil, 0, err
	}
	size, err := concat(e.FS, paths, mem)
	if err != nil {
		mem.Close()
		return nil, 0, err
	}
	if _, err := mem.Seek(0, io.SeekStart); err != nil {
		mem.Close()
		return nil, 0, err
	}
	return mem, size, nil
}

// concat writes the files one after the other into w, starting each on a
// 4-byte boundary (zero padding): the kernel's cpio reader expects each
// archive header 4-byte aligned and skips zero bytes between archives. The
// kernel copies the bytes (sendfile): kxboot's heap never holds an initrd.
// copy_file_range, which io.Copy tries first, refuses a memfd, and its
// fallback of 32 KiB reads and writes made a 30 MB join 1.8 times slower.
func concat(fsys rootfs.FS, paths []string, w *os.File) (int64, error) {
	var total int64
	for i, p := range paths {
		if pad := (4 - total%4) % 4; i > 0 && pad != 0 {
			if _, err := w.Write(make([]byte, pad)); err != nil {
				return 0, err
			}
			total += pad
		}
		n, err := sendAll(w, fsys.Path(p))
		if err != nil {
			return 0, fmt.Errorf("cannot load: reading initrd %s: %w", p, err)
		}
		total += n
	}
	return total, nil
}

// sendAll appends the whole file at path to w with sendfile(2), in the
// kernel; it falls back to a plain copy where sendfile is refused.
func sendAll(w *os.File, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	var done int64
	for done < st.Size() {
		n, err := unix.Sendfile(int(w.Fd()), int(f.Fd()), nil, int(min(st.Size()-done, 1<<30)))
		if err == unix.EINTR {
			continue
		}
		if err != nil && done == 0 && (err == unix.EINVAL || err == unix.ENOSYS) {
			return io.Copy(w, f)
		}
		if err != nil {
			return done, err
		}
		if n == 0 {
			break // the file shrank under us: what is there is sent
		}
		done += int64(n)
	}
	return done, nil
}

func memfd(name string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("cannot create an in-memory file for %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// Unload drops the loaded kernel, if any.
func (e *Engine) Unload() error {
	if err := e.Sys.Unload(); err != nil {
		return e.explain(err, "unload", Request{})
	}
	return nil
}

// ErrNotLoaded is returned by Exec when no kernel is loaded.
var ErrNotLoaded = errors.New("no kernel is loaded; run kxboot load first")

// Exec syncs and jumps into the loaded kernel at once, without a clean
// shutdown. On success it does not return.
func (e *Engine) Exec() error {
	loaded, err := e.Loaded()
	if err != nil {
		return err
	}
	if !loaded {
		return ErrNotLoaded
	}
	return e.explain(e.Sys.RebootKexec(), "reboot", Request{})
}

// Jump syncs and jumps into the loaded kernel without asking sysfs first:
// at the end of a shutdown /sys may be gone. The kernel itself refuses
// (EINVAL) when nothing is loaded, and the caller goes on.
func (e *Engine) Jump() error { return e.explain(e.Sys.RebootKexec(), "reboot", Request{}) }

// Reboot syncs and restarts through the firmware.
func (e *Engine) Reboot() error { return e.explain(e.Sys.Reboot(), "reboot", Request{}) }

// Loaded says whether a kernel is loaded (/sys/kernel/kexec_loaded).
func (e *Engine) Loaded() (bool, error) {
	s, err := e.FS.ReadString("/sys/kernel/kexec_loaded")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("/sys/kernel/kexec_loaded is missing: either sysfs is not mounted or this kernel was built without kexec")
		}
		return false, err
	}
	return s == "1", nil
}

// lockdown returns the active lockdown mode ("integrity" or
// "confidentiality"), or "" when none or unknown.
func (e *Engine) lockdown() string { return Lockdown(e.FS) }

// Lockdown reads the active mode from /sys/kernel/security/lockdown, where
// it is the bracketed word: "none [integrity] confidentiality".
func Lockdown(fsys rootfs.FS) string {
	s, err := fsys.ReadString("/sys/kernel/security/lockdown")
	if err != nil {
		return ""
	}
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return ""
	}
	if mode := s[i+1 : j]; mode != "none" {
		return mode
	}
	return ""
}

// LoadDisabled reads kernel.kexec_load_disabled (false when unreadable).
func LoadDisabled(fsys rootfs.FS) bool {
	s, err := fsys.ReadString("/proc/sys/kernel/kexec_load_disabled")
	if err != nil {
		return false
	}
	n, _ := strconv.Atoi(s)
	return n != 0
}

// explain turns a syscall's errno into one sentence with the cause and the
// remedy. Errors that are not errnos pass through with their context.
func (e *Engine) explain(err error, call string, r Request) error {
	if err == nil {
		return nil
	}
	what := "kexec"
	if r.Kernel != "" {
		what = r.Kernel
	}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("%s of %s failed: %w", call, what, err)
	}
	euid := os.Geteuid
	if e.Euid != nil {
		euid = e.Euid
	}
	var why string
	switch errno {
	case unix.EPERM:
		switch lock := e.lockdown(); {
		case euid() != 0:
			why = "kexec needs root: run it as root (sudo kxboot ...)"
		case LoadDisabled(e.FS):
			why = "kernel.kexec_load_disabled is 1 on this boot and the kernel never lets it go back to 0; remove the setting that turns it on (a sysctl.d file or sysctl.kernel.kexec_load_disabled=1 on the command line) and reboot through the firmware once"
		case lock != "" && call == "kexec_load":
			why = fmt.Sprintf("the kernel is in lockdown (%s), which forbids kexec_load; use --syscall file with a signed kernel", lock)
		case lock != "":
			why = fmt.Sprintf("the kernel is in lockdown (%s) and refused the load; boot a kernel signed by a key the running kernel trusts", lock)
		default:
			why = "the kernel refused it (EPERM) for a reason kxboot cannot see, such as an LSM policy (SELinux, AppArmor) or a seccomp filter; dmesg may say which"
		}
	case unix.EKEYREJECTED, unix.ENOKEY, unix.EKEYREVOKED, unix.EKEYEXPIRED, unix.EBADMSG:
		why = "the kernel rejected the image's signature: under lockdown or Secure Boot kexec_file_load boots only kernels signed by a trusted key; use your distribution's signed kernel package, or turn Secure Boot off in the firmware"
	case unix.ENOEXEC:
		why = fmt.Sprintf("the running kernel does not accept this image (ENOEXEC): it must be an uncompressed kernel for %s that this kernel's %s supports", e.MachineArch(), call)
	case unix.EINVAL:
		why = fmt.Sprintf("the running kernel refused the image or its arguments (EINVAL; arm64 answers this to an image it does not recognise): check that the image is a kernel for %s and that the command line is under 2048 bytes", e.MachineArch())
	case unix.ENOSYS:
		if call == "kexec_file_load" {
			why = "this kernel has no kexec_file_load (CONFIG_KEXEC_FILE is off, as in Debian 12's arm64 kernels); use --syscall auto or load, which use kexec_load"
		} else {
			why = "this kernel was built without kexec (CONFIG_KEXEC); boot a kernel that has it"
		}
	case unix.EBUSY:
		why = "another kexec operation is under way or a kernel is being loaded (EBUSY); wait and try again"
	case unix.ENOMEM:
		why = "the kernel found no large enough contiguous free memory for the images (ENOMEM); load earlier in the boot, when memory is less fragmented, or free memory (echo 3 > /proc/sys/vm/drop_caches) and try again"
	default:
		why = fmt.Sprintf("the kernel answered %v", errno)
	}
	if call == "unload" || call == "reboot" {
		return fmt.Errorf("%s failed: %s: %w", call, why, err)
	}
	return fmt.Errorf("cannot load %s with %s: %s: %w", what, call, why, errno)
}

// Has says whether the running kernel has a syscall.
type Has int

const (
	Unknown Has = iota // the kernel would not say (EPERM: not root, or kexec_load_disabled)
	Yes
	No
)

// Syscalls asks the running kernel which load syscalls it has, without
// loading or unloading anything (Sys.Probe). This works where the kernel's
// build options are not on the disk, as on most providers' kernels.
func (e *Engine) Syscalls() (file, load Has) {
	f, l := e.Sys.Probe()
	has := func(err error, exists unix.Errno) Has {
		switch {
		case errors.Is(err, exists):
			return Yes
		case errors.Is(err, unix.ENOSYS):
			return No
		}
		return Unknown
	}
	return has(f, unix.EBADF), has(l, unix.EINVAL)
}
