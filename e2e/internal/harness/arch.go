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
	// UEFI is the host path of the UEFI firmware that BootUEFI gives to
	// qemu's -bios, and UEFIPackage the Debian package that holds it; ""
	// where the harness boots this architecture only through qemu's own
	// loader.
	UEFI, UEFIPackage string
	// Params go on the command line of every guest of this architecture
	// (e2e's providerAppend, DiskAppendOf): GuestParams on amd64; on arm64
	// only cryptomgr.notests, as no_timer_check is an x86 parameter that
	// an arm64 kernel would hand to /init as an argument.
	Params string
}

var (
	// AMD64 guests: the PC machine, a 16550 serial port, Debian's cloud
	// kernels (CONFIG_KEXEC and CONFIG_KEXEC_FILE).
	AMD64 = Arch{
		GOARCH: "amd64", ELF: elf.EM_X86_64,
		QEMU: "qemu-system-x86_64", QEMUPackage: "qemu-system-x86",
		Console: "ttyS0", KernelFlavour: "cloud-amd64", BootParams: true,
		Params: GuestParams,
		// OVMF: the fast reboot benchmark's UEFI firmware baseline; no
		// test boots amd64 through it.
		UEFI: "/usr/share/ovmf/OVMF.fd", UEFIPackage: "ovmf",
	}
	// ARM64 guests: QEMU's virt machine, started with a device tree by
	// qemu or through edk2 (BootUEFI), a PL011 serial port, Debian's
	// cloud kernels (CONFIG_KEXEC without CONFIG_KEXEC_FILE: only
	// kexec_load works there). The CPU is "max" with pointer
	// authentication computed by QEMU's cheap IMPLEMENTATION DEFINED
	// algorithm instead of QARMA5: the kernels sign return addresses in
	// every function, and under TCG QARMA5 made a boot to /init take
	// about 7.5 s instead of 2.5 s (a hop case 27.7 s instead of 11.7 s);
	// the guest still runs with pointer authentication on, as on recent
	// arm64 servers. Under KVM Args puts -cpu host after it.
	ARM64 = Arch{
		GOARCH: "arm64", ELF: elf.EM_AARCH64,
		QEMU: "qemu-system-aarch64", QEMUPackage: "qemu-system-arm",
		Machine: []string{"-M", "virt", "-cpu", "max,pauth-impdef=on"},
		Console: "ttyAMA0", KernelFlavour: "cloud-arm64",
		UEFI: "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd", UEFIPackage: "qemu-efi-aarch64",
		Params: "cryptomgr.notests",
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

// checkBoot says why guests of a cannot boot through b, if they cannot.
func (a Arch) checkBoot(b BootPath) error {
	switch b {
	case BootQEMU:
		return nil
	case BootUEFI:
		a = a.orAMD64()
		if a.UEFI == "" {
			return fmt.Errorf("the harness has no UEFI firmware for %s guests", a.GOARCH)
		}
		if !exists(a.UEFI) {
			return fmt.Errorf("UEFI firmware %s does not exist: apt-get install %s", a.UEFI, a.UEFIPackage)
		}
		return nil
	}
	return fmt.Errorf("unknown boot path %q; want BootQEMU or BootUEFI", string(b))
}
