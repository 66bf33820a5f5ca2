// Package e2e proves kxboot in QEMU guests: a guest boots a Debian kernel
// (the provider's, "A"), runs kxboot from its initramfs and hops into a newer
// Debian kernel ("B"), whose /init reports what it sees on the serial
// console. The harness lives in internal/harness; run with
//
//	go test -v -count=1 ./e2e/
//
// as root on a machine with qemu-system-x86, busybox-static and apt access
// to Debian's kernels (cached in /var/cache/kxboot-e2e, or
// $KXBOOT_E2E_CACHE).
//
// The chain-boot tests boot whole Debian guests instead: disk images of
// three flavours (systemd, sysvinit, OpenRC) with kernels A and B
// installed, built once with debootstrap and mke2fs -d (debootstrap and
// e2fsprogs; a few minutes) and cached beside the kernels in images/. The
// provider's kernel A boots the disk from qemu's -kernel; a reboot inside
// the guest boots kernel A again. A runner in each image reports every
// boot on the console and runs the test's /etc/kxtest/boot-N.sh: see
// harness.Image, harness.NewDisk, harness.Inject, harness.BootScript and
// Guest.WaitBoot, and disk_test.go for a test that uses them.
package e2e
