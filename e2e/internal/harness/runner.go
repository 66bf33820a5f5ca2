package harness

import (
	"fmt"
	"io/fs"
	"sort"
	"strconv"
)

// The runner is baked into every disk image (see Image). Late in every
// boot, whatever the init system, it
//
//  1. counts the boot in /var/lib/kxtest/count (a boot in which it never
//     ran, such as one that kexec left before userspace finished, is not
//     counted);
//  2. reports on the console, in the KXTEST format that Parse reads, as
//     stage N (N = the boot number): boot, counted, release, cmdline, init
//     (the image's flavour), pid1 (/proc/1/comm), root (rw or ro: how / is
//     mounted now), early (how / was mounted when the early probe ran at
//     the start of the boot, "none" if it did not run), loader (type_of_loader
//     of this kernel's boot_params: b0 = QEMU's -kernel, d0 = the kernel's
//     kexec_file_load), uptime (seconds since this kernel started), and
//     script (the path of /etc/kxtest/boot-N.sh, or "none");
//  3. sources /etc/kxtest/boot-N.sh in a subshell, if it exists, with say,
//     step and the kx_ helpers of lib.sh defined, and reports script.rc;
//  4. reports "end: ACTION" and does it: reboot (a clean reboot through
//     the init system, which the harness turns into a firmware reset that
//     boots the provider's kernel again), poweroff (a clean poweroff,
//     which ends qemu), reset and off (the same at once, after a sync,
//     through /proc/sysrq-trigger: most cases do not care how a boot
//     ends, and a clean shutdown under TCG costs 15 to 30 s) or idle
//     (nothing: the guest stays up). A boot without a script, or whose
//     script ends without one of kx_reboot, kx_poweroff, kx_reset, kx_off
//     or kx_idle, powers off cleanly.
//
// While the runner reports and the script runs, kernel messages are kept
// off the console (dmesg -n 1) so they cannot split a report line; the
// previous level is back before the final action, or earlier if the script
// calls kx_loud.

// guestLibPath is where the image holds guestLib.
const guestLibPath = "/usr/local/lib/kxtest/lib.sh"

// guestLib is /usr/local/lib/kxtest/lib.sh.
const guestLib = `# kxtest guest library, sourced by the runner and so by every
# /etc/kxtest/boot-N.sh. Written by the e2e harness (harness/runner.go).
KX_RUN=/run/kxtest

# say KEY VALUE...: report one value on the console.
say() { local k; k=$1; shift; echo "KXTEST $k: $*"; }

# step NAME CMD...: run CMD and report its output lines as NAME.out and
# NAME.err, and its exit status as NAME.rc; returns that status.
step() {
	local n rc l
	n=$1; shift
	"$@" >"$KX_RUN/step.out" 2>"$KX_RUN/step.err" </dev/null
	rc=$?
	while IFS= read -r l || [ -n "$l" ]; do say "$n.out" "$l"; done <"$KX_RUN/step.out"
	while IFS= read -r l || [ -n "$l" ]; do say "$n.err" "$l"; done <"$KX_RUN/step.err"
	say "$n.rc" "$rc"
	return $rc
}

# kx_rootmode prints rw or ro: the first mount option of /.
kx_rootmode() {
	local dev mnt fs opts rest m
	m=unknown
	while read -r dev mnt fs opts rest; do
		[ "$mnt" = / ] && m=${opts%%,*}
	done </proc/mounts
	echo "$m"
}

# What a boot script ends with. Each leaves the script (call them at its
# top level, not in a pipeline or $(...)); the runner then reports
# "end: ACTION" and does it.
kx_reboot() { echo reboot >"$KX_RUN/action"; exit 0; }     # clean reboot through init: firmware reset, kernel A again
kx_poweroff() { echo poweroff >"$KX_RUN/action"; exit 0; } # clean poweroff: qemu ends
kx_reset() { echo reset >"$KX_RUN/action"; exit 0; }       # firmware reset at once, after a sync
kx_off() { echo off >"$KX_RUN/action"; exit 0; }           # power off at once, after a sync: qemu ends
kx_idle() { echo idle >"$KX_RUN/action"; exit 0; }         # leave the guest running

# kx_loud puts kernel messages back on the console.
kx_loud() { [ -z "$KX_PRINTK" ] || dmesg -n "$KX_PRINTK"; }
`

// guestRunner is /usr/local/lib/kxtest/runner.
const guestRunner = `#!/bin/sh
# kxtest runner: counts this boot, reports it on the console and runs
# /etc/kxtest/boot-N.sh. Written by the e2e harness (harness/runner.go).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
# /dev/console is ttyS0 (console=ttyS0). Unlike /dev/ttyS0 it never becomes
# a controlling terminal, and a getty's vhangup of ttyS0 does not cut it off.
exec </dev/null >/dev/console 2>&1
. /usr/local/lib/kxtest/lib.sh
mkdir -p "$KX_RUN" /var/lib/kxtest
# Once per boot: /run is a new tmpfs in every boot.
[ -e "$KX_RUN/ran" ] && exit 0
: >"$KX_RUN/ran"

n=$(cat /var/lib/kxtest/count 2>/dev/null)
case $n in '' | *[!0-9]*) n=0 ;; esac
n=$((n + 1))
counted=no
if echo "$n" >/var/lib/kxtest/count.new && mv -f /var/lib/kxtest/count.new /var/lib/kxtest/count; then
	counted=yes
fi
sync

read -r KX_PRINTK rest </proc/sys/kernel/printk
dmesg -n 1
KX_BOOT=$n
KX_FLAVOUR=$(cat /etc/kxtest/flavour 2>/dev/null)
export KX_BOOT KX_FLAVOUR KX_PRINTK

say stage "$n"
say boot "$n"
say counted "$counted"
say release "$(uname -r)"
say cmdline "$(cat /proc/cmdline)"
say init "$KX_FLAVOUR"
say pid1 "$(cat /proc/1/comm)"
say root "$(kx_rootmode)"
say early "$(cat "$KX_RUN/early" 2>/dev/null || echo none)"
bp=/sys/kernel/boot_params/data
if [ -e $bp ]; then say loader "$(od -An -tx1 -j528 -N1 $bp | tr -d ' ')"; else say loader none; fi
say uptime "$(cut -d' ' -f1 /proc/uptime)"

action=
script=/etc/kxtest/boot-$n.sh
if [ -f "$script" ]; then
	say script "$script"
	(. "$script")
	say script.rc "$?"
	action=$(cat "$KX_RUN/action" 2>/dev/null)
else
	say script none
fi
case $action in reboot | poweroff | reset | off | idle) ;; *) action=poweroff ;; esac
say end "$action"
kx_loud
sync
case $action in
reboot) reboot ;;
poweroff) poweroff ;;
reset) echo b >/proc/sysrq-trigger ;;
off) echo o >/proc/sysrq-trigger ;;
esac
exit 0
`

// guestEarly is /usr/local/lib/kxtest/early: the early probe, run by each
// init system at the start of the boot, before / is remounted read-write.
const guestEarly = `#!/bin/sh
# kxtest early probe: records how / is mounted this early in the boot, for
# the runner to report. Written by the e2e harness (harness/runner.go).
. /usr/local/lib/kxtest/lib.sh
mkdir -p "$KX_RUN" && kx_rootmode >"$KX_RUN/early"
exit 0
`

const systemdRunnerUnit = `[Unit]
Description=kxtest runner: reports this boot and runs /etc/kxtest/boot-N.sh
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/local/lib/kxtest/runner
StandardInput=null
StandardOutput=null
StandardError=null

[Install]
WantedBy=multi-user.target
`

const systemdEarlyUnit = `[Unit]
Description=kxtest early probe: how / is mounted before remount-fs
DefaultDependencies=no
Before=sysinit.target systemd-remount-fs.service

[Service]
Type=oneshot
ExecStart=/usr/local/lib/kxtest/early

[Install]
WantedBy=sysinit.target
`

const sysvRunnerScript = `#!/bin/sh
### BEGIN INIT INFO
# Provides:          kxtest
# Required-Start:    $all
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:
# Short-Description: kxtest runner
# Description:       Reports this boot and runs /etc/kxtest/boot-N.sh.
### END INIT INFO
case "$1" in
start)
	# In the background, so that rc finishes and the gettys start.
	setsid /usr/local/lib/kxtest/runner </dev/null >/dev/null 2>&1 &
	;;
stop | restart | force-reload | status) ;;
*)
	echo "Usage: $0 start" >&2
	exit 3
	;;
esac
exit 0
`

const sysvEarlyScript = `#!/bin/sh
### BEGIN INIT INFO
# Provides:          kxtest-early
# Required-Start:    mountkernfs
# Required-Stop:
# X-Start-Before:    checkroot
# Default-Start:     S
# Default-Stop:
# Short-Description: kxtest early probe
### END INIT INFO
case "$1" in
start) /usr/local/lib/kxtest/early ;;
esac
exit 0
`

const openrcRunnerScript = `#!/sbin/openrc-run
description="kxtest runner: reports this boot and runs /etc/kxtest/boot-N.sh"
depend() {
	after *
}
start() {
	ebegin "Starting the kxtest runner"
	# In the background, so that the runlevel finishes.
	setsid /usr/local/lib/kxtest/runner </dev/null >/dev/null 2>&1 &
	eend 0
}
`

const openrcEarlyScript = `#!/sbin/openrc-run
description="kxtest early probe: how / is mounted before checkroot"
depend() {
	before checkroot checkroot.sh
}
start() {
	/usr/local/lib/kxtest/early
}
`

// serialGettyOn is added to /etc/inittab on sysvinit and OpenRC: a login
// prompt on the serial console (ttyS0 on amd64) for a person watching a
// guest, which comes up beside the runner without holding the boot back.
// (The systemd image masks its serial getty: there multi-user.target
// waited for it.)
func serialGettyOn(console string) string {
	return "T0:2345:respawn:/sbin/getty -L " + console + " 115200 vt100\n"
}

// treeFile is a file the recipe writes into the debootstrap tree.
type treeFile struct {
	mode fs.FileMode
	data string
}

// guestFiles returns the files that the recipe of flavour adds to the
// tree, by path in the guest.
func guestFiles(flavour string, arch Arch) map[string]treeFile {
	files := map[string]treeFile{
		guestLibPath:                   {0o644, guestLib},
		"/usr/local/lib/kxtest/runner": {0o755, guestRunner},
		"/usr/local/lib/kxtest/early":  {0o755, guestEarly},
		"/etc/kxtest/flavour":          {0o644, flavour + "\n"},
		"/etc/hostname":                {0o644, "kxtest-" + flavour + "\n"},
		"/etc/hosts":                   {0o644, "127.0.0.1\tlocalhost\n127.0.1.1\tkxtest-" + flavour + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
		"/etc/fstab":                   {0o644, "# The disk is the guest's only drive: an NVMe drive (harness.Options.NVMe).\n/dev/nvme0n1\t/\text4\terrors=remount-ro\t0\t1\n"},
		// No network in a guest.
		"/etc/resolv.conf": {0o644, ""},
		// Keep package scripts from starting daemons in the chroot;
		// removed at the end of the build.
		"/usr/sbin/policy-rc.d": {0o755, "#!/bin/sh\nexit 101\n"},
	}
	if arch.orAMD64().GOARCH != AMD64.GOARCH {
		// The initramfs without modules: mkinitramfs's default (MODULES=most)
		// took 200 s per kernel when run by qemu-user, against 35 s for
		// this, and made a 12.7 MB initrd instead of 5 MB, which kxboot
		// loads and kernel B unpacks under TCG at every hop. The guest's
		// root needs no module: the cloud kernels have the NVMe driver, the
		// PCI host bridge and ext4 built in.
		files["/etc/initramfs-tools/conf.d/kxtest-modules"] = treeFile{0o644, "# kxtest: nothing in the initramfs needs a module (harness/runner.go)\nMODULES=list\n"}
	}
	switch flavour {
	case Systemd:
		files["/etc/systemd/system/kxtest.service"] = treeFile{0o644, systemdRunnerUnit}
		files["/etc/systemd/system/kxtest-early.service"] = treeFile{0o644, systemdEarlyUnit}
	case Sysvinit:
		files["/etc/init.d/kxtest"] = treeFile{0o755, sysvRunnerScript}
		files["/etc/init.d/kxtest-early"] = treeFile{0o755, sysvEarlyScript}
	case OpenRC:
		files["/etc/init.d/kxtest"] = treeFile{0o755, openrcRunnerScript}
		files["/etc/init.d/kxtest-early"] = treeFile{0o755, openrcEarlyScript}
	}
	return files
}

// sortedPaths returns the keys of files in order.
func sortedPaths(files map[string]treeFile) []string {
	p := make([]string, 0, len(files))
	for k := range files {
		p = append(p, k)
	}
	sort.Strings(p)
	return p
}

// BootScript returns /etc/kxtest/boot-N.sh with body: the runner sources it
// in the boot numbered n, with say, step, kx_reboot, kx_poweroff, kx_idle
// and kx_loud defined and $KX_BOOT, $KX_FLAVOUR set. Its kx_reset is
// cleanResetSh's.
func BootScript(n int, body string) GuestFile {
	return GuestFile{
		Path: "/etc/kxtest/boot-" + strconv.Itoa(n) + ".sh",
		Mode: 0o644,
		Data: []byte(fmt.Sprintf("# boot %d, sourced by the kxtest runner\n%s\n%s\n", n, cleanResetSh, body)),
	}
}

// cleanResetSh replaces lib.sh's kx_reset in boot scripts: before the
// reset it remounts every file system read-only (sysrq u), so the next
// boot mounts a clean root instead of replaying its journal. A reset
// followed by a journal replay was the one place disk guests stalled:
// at about 1.3 s of uptime, the replay's first writes timed out on QEMU
// 7.2's emulated NVMe ("I/O ... timeout, aborting", a controller reset,
// again, for minutes): four times in two sessions' full runs, each in a
// TestChain case, three of them known to be the boot after kx_reset
// (docs/testing.md).
// The action is written first: /run goes read-only too.
const cleanResetSh = `kx_reset() {
	echo reset >"$KX_RUN/action"
	sync
	echo u >/proc/sysrq-trigger
	i=0
	while [ "$(kx_rootmode)" != ro ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	exit 0
}`
