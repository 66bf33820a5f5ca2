package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// The arm64 disk guest: the systemd image built for arm64 (Debian 12 with
// Debian's cloud-arm64 kernels A and B), booted the way arm64 servers
// boot: qemu's virt machine runs edk2 (harness.BootUEFI), which starts
// kernel A through its EFI stub with ACPI, so the device tree the kernel
// keeps holds only /chosen and RAM is described by the EFI memory map
// alone. That is the situation kxboot's arm64 kexec_load has to handle.
// Kernel A mounts the NVMe root itself, without an initramfs
// (Image.BootDirect: 12 s a boot sooner than with Debian's initramfs under
// TCG); kernel B gets its initramfs from kxboot, through kexec_load.
//
// There is no boot_params on arm64 to say who loaded a kernel, so the
// proof of a hop is the one Guest.Hops counts: a second "Linux version"
// banner in the same qemu process, with no firmware reset before it (a
// reset ends qemu: -no-reboot), and kxboot's marker on the new kernel's
// command line. Every boot that reaches the runner gets checkBoot's
// checks, as on amd64.

// startArm64Disk boots a copy of the arm64 systemd image through UEFI
// with files written into it, stopping qemu if more than maxKernels
// kernels start.
func startArm64Disk(t *testing.T, maxKernels int, files ...harness.GuestFile) (dg *diskGuest, a, b harness.Kernel) {
	t.Helper()
	a, b = kernelsOf(t, harness.ARM64)
	img := imageOf(t, harness.ARM64, harness.Systemd)
	files = append(files,
		harness.GuestFile{Path: "/usr/local/sbin/kxboot", Mode: 0o755, HostPath: kxbootOf(t, harness.ARM64)},
		harness.GuestFile{Path: "/usr/local/lib/kxtest/chain.sh", Mode: 0o644, Data: []byte(chainLib)})
	dg = startDisk(t, img, func(o *harness.Options) {
		o.Boot = harness.BootUEFI
		o.MaxKernels = maxKernels
		o.Timeout = 12 * time.Minute
	}, files...)
	return dg, a, b
}

// arm64ChainInstall is boot 1 of both cases: install the chain boot in mode,
// keep the installed config, and shorten the next boot's abort window to
// 1 s.
func arm64ChainInstall(mode, kB, iB string) harness.GuestFile {
	return harness.BootScript(1, `step install kxboot install chain --mode `+mode+` --kernel `+kB+` --initrd `+iB+`
cp /etc/default/kxboot /root/kxboot.installed
sed -i 's/^ABORT_SECONDS=.*/ABORT_SECONDS="1"/' /etc/default/kxboot
kx_reset`)
}

// hopped checks the hop boot n of an arm64 chain case: kernel B with the
// marker and the provider's parameters after a 1 s abort window, and the
// kxboot-confirm service's confirmation.
func (dg *diskGuest) hopped(n int, b harness.Kernel, mode, kB string) {
	dg.t.Helper()
	s := dg.at(n, b.Release)
	cmd, _ := s.Get("cmdline")
	if !strings.Contains(cmd, "kxboot.chained=1") || !strings.Contains(cmd, "kxtest.provider=1") {
		dg.errorf("kernel B's command line %q lacks the marker or the provider's parameters", cmd)
	}
	if _, err := dg.g.WaitFor("kxboot: booting "+kB+" in 1 s; press any key", time.Second); err != nil {
		dg.errorf("the abort window of the hop never showed: %v", err)
	}
	if hops := dg.g.Hops(); hops < 1 {
		dg.errorf("boot %d runs kernel B, but no kernel started without a firmware reset before it (kernels: %v)", n, dg.g.Kernels())
	}
	if !strings.Contains(dg.g.Console(), "kxboot: chain: loaded "+kB+" with kexec_load;") {
		dg.errorf("the console does not say that kxboot loaded B with kexec_load (the only syscall these kernels have)")
	}
	dg.ok(fmt.Sprint(n), "confirmed")
	dg.has(n, "status", "via kxboot: yes")
	dg.has(n, "status", "tries:      0 unconfirmed; "+kB+" confirmed healthy")
	dg.has(n, "status", "installed:  chain "+mode)
}

// startedBy checks how the kernels of a whole run started: starts firmware
// boots, each running edk2 and the EFI stub once ("UEFI firmware (", "EFI
// stub: Booting Linux Kernel"), and hops kernels entered by kexec, which
// go through neither; every kernel printed its banner once.
func (dg *diskGuest) startedBy(starts, hops int) {
	dg.t.Helper()
	con := dg.g.Console()
	for _, s := range []string{"UEFI firmware (", "EFI stub: Booting Linux Kernel"} {
		if n := strings.Count(con, s); n != starts {
			dg.errorf("%q is on the console %d times; want %d (once per firmware start; kexec enters B directly)", s, n, starts)
		}
	}
	if k := len(dg.g.Kernels()); k != starts+hops {
		dg.errorf("%d kernels started; want %d firmware starts and %d hops", k, starts, hops)
	}
	if h, r := dg.g.Hops(), dg.g.Resets(); h != hops || r != starts-1 {
		dg.errorf("%d hops and %d firmware resets; want %d hops (never two in a boot) and %d resets", h, r, hops, starts-1)
	}
}

// TestChainArm64 installs the chain boot in the arm64 disk guest, booted
// through UEFI, and follows it over consecutive boots of the provider's
// kernel A.
//
// wrapper (kxboot as PID 1, then systemd):
//
//	1 (A)      kxboot install chain --mode wrapper; abort window 1 s; reset
//	2 (A→B)    the hop: B with the marker, its Debian initramfs loaded by
//	           kxboot; kxboot-confirm confirms; then the owner's
//	           APPEND names a root that does not exist, B's initramfs is
//	           moved away, MAX_TRIES=2, PANIC=2; reset
//	(A→B) ×2   B panics ("VFS: Unable to mount root fs"), panic=2 resets
//	           the machine: two failed tries
//	3 (A)      MAX_TRIES reached: kernel A stays, FALLBACK with the
//	           reason in status and history; power off
//
// systemd (kxboot-chain.service early in systemd's boot):
//
//	1 (A)      kxboot install chain --mode systemd; abort window 1 s; reset
//	2 (A→B)    the hop, confirmed; power off
//
// The panic runs in the wrapper case, where a try is cheapest: kxboot
// decides as PID 1, before systemd starts. What is the same on every
// architecture (uninstall, the key in the window, a broken config, the
// deadline watcher) is TestChain's, on amd64.
func TestChainArm64(t *testing.T) {
	t.Parallel()
	t.Run("wrapper", func(t *testing.T) {
		t.Parallel()
		_, b := kernelsOf(t, harness.ARM64)
		kB, iB := "/boot/vmlinuz-"+b.Release, "/boot/initrd.img-"+b.Release
		dg, a, b := startArm64Disk(t, 8,
			arm64ChainInstall("wrapper", kB, iB),
			harness.BootScript(2, `. /usr/local/lib/kxtest/chain.sh
step confirmed kx_confirmed
step status kxboot status
mv `+iB+` /root/
sed -i -e '/^INITRD=/d' -e '/^MAX_TRIES=/d' -e '/^PANIC=/d' -e '/^APPEND=/d' -e 's/^ABORT_SECONDS=.*/ABORT_SECONDS="0"/' /etc/default/kxboot
printf 'MAX_TRIES="2"\nPANIC="2"\nAPPEND="root=/dev/nonexistent"\n' >>/etc/default/kxboot
step conf cat /etc/default/kxboot
kx_reset`),
			harness.BootScript(3, report+"kx_off"))
		dg.at(1, a.Release)
		dg.ok("1", "install")
		dg.hopped(2, b, "wrapper", kB)
		dg.at(3, a.Release)
		dg.fellBack(3, "2 unconfirmed hops in a row into "+kB+" (last: the kernel never confirmed",
			"hop/1 confirmed/1 hop/1 failed/1 hop/2 failed/2 fallback/0")
		if n := strings.Count(dg.g.Console(), "Kernel panic - not syncing: VFS: Unable to mount root fs"); n != 2 {
			dg.errorf("kernel B panicked %d times the way the case means; want 2", n)
		}
		if _, err := dg.g.WaitFor("Rebooting in 2 seconds", time.Second); err != nil {
			dg.errorf("kernel B did not get PANIC=2 as panic=2: %v", err)
		}
		if err := dg.g.Wait(); err != nil {
			dg.fatalf("qemu did not end after the power off: %v", err)
		}
		dg.kernelsWere(a.Release, a.Release, b.Release, a.Release, b.Release, a.Release, b.Release, a.Release)
		dg.startedBy(5, 3)
	})
	t.Run("systemd", func(t *testing.T) {
		t.Parallel()
		_, b := kernelsOf(t, harness.ARM64)
		kB, iB := "/boot/vmlinuz-"+b.Release, "/boot/initrd.img-"+b.Release
		dg, a, b := startArm64Disk(t, 3,
			arm64ChainInstall("systemd", kB, iB),
			harness.BootScript(2, `. /usr/local/lib/kxtest/chain.sh
step confirmed kx_confirmed
step status kxboot status
kx_off`))
		dg.at(1, a.Release)
		dg.ok("1", "install")
		dg.hopped(2, b, "systemd", kB)
		if err := dg.g.Wait(); err != nil {
			dg.fatalf("qemu did not end after the power off: %v", err)
		}
		dg.kernelsWere(a.Release, a.Release, b.Release)
		dg.startedBy(2, 1)
	})
}
