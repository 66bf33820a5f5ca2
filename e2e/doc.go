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
package e2e
