package harness

import (
	"debug/elf"
	"fmt"
	"runtime"
)

// Arch is what differs between the architectures a guest can have: the
// binary kxboot is built as, the emulator and its machine, the serial
// console, the Debian kernel packages, and how the guest shows that a
// kexec happened. Options, Kernels, BuildKxboot and Busybox take one; the
// zero value of Options.Arch means AMD64.
type Arch struct {
	// GOARCH is Go's name of the architecture and Debian's.
	GOARCH string
	// ELF is the machine that CheckStatic wants in a binary.
	ELF elf.Machine
	// QEMU is the emulator command and QEMUPackage the Debian package
	// that holds it.
	QEMU, QEMUPackage string
	// Machine are qemu's machine and CPU options, before anything else.
	Machine []string
	// Console is the serial console's name in the guest (console=...).
	Console string
	// KernelFlavour ends the Debian kernel packages the guests boot:
	// linux-image-6.1.0-N-FLAVOUR, whose release is 6.1.0-N-FLAVOUR.
	KernelFlavour string
	// BootParams tells whether the guest's kernel shows the boot_params
	// it got (x86: /sys/kernel/boot_params/data), whose type_of_loader
	// says who loaded it: b0 for qemu's -kernel, d0 for a kexec loader.
	// Elsewhere a kexec shows only as a kernel banner that no reset
	// preceded (Guest.Hops).
	BootParams bool
}

var (
	// AMD64 guests: the PC machine, a 16550 serial port, Debian's cloud
	// kernels (CONFIG_KEXEC and CONFIG_KEXEC_FILE).
	AMD64 = Arch{
		GOARCH: "amd64", ELF: elf.EM_X86_64,
		QEMU: "qemu-system-x86_64", QEMUPackage: "qemu-system-x86",
		Console: "ttyS0", KernelFlavour: "cloud-amd64", BootParams: true,
	}
	// ARM64 guests: QEMU's virt machine with a device tree, a PL011
	// serial port, Debian's cloud kernels (CONFIG_KEXEC without
	// CONFIG_KEXEC_FILE: only kexec_load works there).
	ARM64 = Arch{
		GOARCH: "arm64", ELF: elf.EM_AARCH64,
		QEMU: "qemu-system-aarch64", QEMUPackage: "qemu-system-arm",
		Machine: []string{"-M", "virt", "-cpu", "max"},
		Console: "ttyAMA0", KernelFlavour: "cloud-arm64",
	}
)

// Arches lists the architectures by GOARCH.
var Arches = map[string]Arch{"amd64": AMD64, "arm64": ARM64}

// orAMD64 is a, or AMD64 for the zero Arch.
func (a Arch) orAMD64() Arch {
	if a.GOARCH == "" {
		return AMD64
	}
	return a
}

// Native tells whether the host runs this architecture, so that KVM could
// run its guests.
func (a Arch) Native() bool { return a.orAMD64().GOARCH == runtime.GOARCH }

func (a Arch) String() string { return a.orAMD64().GOARCH }

// ArchNamed returns the architecture whose GOARCH is name.
func ArchNamed(name string) (Arch, error) {
	a, ok := Arches[name]
	if !ok {
		return Arch{}, fmt.Errorf("unknown guest architecture %q; want amd64 or arm64", name)
	}
	return a, nil
}
