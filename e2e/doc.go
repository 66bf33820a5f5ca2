// Package e2e proves kxboot in QEMU guests: a guest boots a Debian kernel
// (the provider's, "A"), runs kxboot and hops into a newer Debian kernel
// ("B"), and the tests read what the guest reports on its serial console.
// The harness lives in internal/harness. Run everything, with a table of
// what each case cost, as root:
//
//	make test          # or: go run ./e2e/report -- -count=1 -parallel 64 ./e2e/
//	make e2e-quick     # the initramfs and tiny-guest cases only
//
// on a Debian machine with what scripts/install-test-deps installs
// (qemu-system-x86, qemu-system-arm, qemu-efi-aarch64, busybox-static,
// debootstrap, e2fsprogs, cpio) and apt access to Debian's kernels, amd64
// and arm64 (cached in /var/cache/kxboot-e2e, or $KXBOOT_E2E_CACHE). The
// make targets fill that cache first (go run ./e2e/prepare), so that no
// image is built while guests run.
//
// Three kinds of guest:
//   - initramfs guests: kernel A with a busybox initramfs that carries
//     kxboot and kernel B (hop_test.go, wrapper_test.go, bad_test.go),
//     and the same on arm64, booted by a device tree and through UEFI
//     firmware (arm64_test.go);
//   - disk guests: Debian disk images of three flavours (systemd,
//     sysvinit, OpenRC) with kernels A and B installed, built once with
//     debootstrap and mke2fs -d and cached beside the kernels in images/.
//     The provider's kernel A boots the disk (an NVMe drive) from qemu's
//     -kernel; a reboot inside the guest boots kernel A again. A runner in
//     each image reports every boot on the console and runs the test's
//     /etc/kxtest/boot-N.sh: see harness.Image, harness.NewDisk,
//     harness.Inject, harness.BootScript and Guest.WaitBoot
//     (chain_test.go, reboot_test.go); and the systemd image for arm64,
//     its second stage run by qemu-user-static (which the build installs
//     and registers itself), booted through UEFI (arm64_disk_test.go);
//   - the tiny guest: the systemd image with a shell script as init behind
//     the kxboot wrapper, booted without an initramfs, for the cases that
//     need many boots (tiny_test.go, tries_test.go); with QEMU's i6300esb
//     watchdog and Debian's generic kernels, on amd64 and arm64, for the
//     hung kernels (watchdog_test.go).
//
// Every case holds a guest slot while its guests run (slots_test.go): two
// at a time, the costliest first. Guests run under TCG unless a probe
// finds KVM working (harness.Accel); harness.Arch carries what differs
// between amd64 and arm64 guests.
package e2e
