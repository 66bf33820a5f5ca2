package initsys

import (
	"fmt"
	"os"
	"path"

	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// Paths of OpenRC's runlevels, as Debian lays them out.
const (
	OpenRCLink    = "/etc/runlevels/sysinit/kxboot-chain"
	OpenRCBoot    = "/etc/runlevels/boot/kxboot-chain"
	OpenRCConfirm = "/etc/runlevels/default/kxboot-confirm"
	// OpenRCUmountRoot marks Debian's OpenRC layout: Debian's "rc 6" runs
	// "openrc off" and "openrc reboot", and the latter stops the LSB
	// umount scripts kept in the off runlevel, umountroot last.
	OpenRCUmountRoot = "/etc/runlevels/off/umountroot"
	// OpenRCShutdown is the runlevel "openrc shutdown" and "openrc
	// reboot" enter on Alpine and Gentoo; OpenRCDefault the one a boot
	// ends in.
	OpenRCShutdown = "/etc/runlevels/shutdown"
	OpenRCDefault  = "/etc/runlevels/default"
)

// openrcRebootLevels are the runlevels the OpenRC fast reboot is linked
// into: started at boot, kept through Debian's "off" runlevel.
var openrcRebootLevels = []string{OpenRCDefault, "/etc/runlevels/off"}

// openrc is OpenRC with Debian's layout (sysvinit's PID 1, the LSB umount
// scripts in the off runlevel).
type openrc struct{}

func (openrc) Name() Name { return OpenRC }

func (openrc) Detect(fsys rootfs.FS) bool { return fsys.Exists("/run/openrc") }

func (openrc) Preflight(c Context) error {
	if !c.FS.Exists("/sbin/openrc-run") && !c.FS.Exists("/usr/sbin/openrc-run") {
		return notInstalled(c.FS, "OpenRC is not installed here (no openrc-run)")
	}
	return nil
}

// Chain runs in the sysinit runlevel, or, late, in the boot runlevel after
// the local mounts.
func (openrc) Chain(c Context) []journal.Step {
	link := OpenRCLink
	if c.Late {
		link = OpenRCBoot
	}
	steps := []journal.Step{journal.File(ChainScript, 0o755, openrcScript(c.Binary, c.Late))}
	steps = append(steps, journal.Dirs(c.FS, path.Dir(link))...)
	return append(steps, journal.Link(link, ChainScript))
}

func (openrc) Confirm(c Context) ([]journal.Step, error) {
	steps := []journal.Step{journal.File(ConfirmScript, 0o755, openrcConfirmScript(c.Binary))}
	steps = append(steps, journal.Dirs(c.FS, path.Dir(OpenRCConfirm))...)
	return append(steps, journal.Link(OpenRCConfirm, ConfirmScript)), nil
}

// Reboot places the fast reboot by the layout of the machine's shutdown
// (see layout). The load is a service started now and at every boot and
// stopped when the machine goes down: it loads while /boot is mounted. The
// jump comes after the file systems are read-only. Both run kxboot, which
// acts only on a reboot (Rebooting); a poweroff never kexecs.
func (openrc) Reboot(c Context) ([]journal.Step, error) {
	steps := []journal.Step{journal.File(RebootScript, 0o755, openrcRebootScript(c.Binary))}
	switch layout(c.FS) {
	case debianLayout:
		// Started at boot and kept through Debian's "off" runlevel, so
		// that the "openrc reboot" that follows stops them in order with
		// the LSB umount scripts.
		steps = append(steps, journal.File(JumpScript, 0o755, openrcJumpScript(c.Binary)))
		for _, level := range openrcRebootLevels {
			steps = append(steps, journal.Dirs(c.FS, level)...)
			for _, script := range []string{RebootScript, JumpScript} {
				steps = append(steps, journal.Link(level+"/"+path.Base(script), script))
			}
		}
		steps = append(steps, rcService(JumpScript))
	case shutdownLayout:
		// The load in the default runlevel, stopped when "openrc
		// shutdown" or "openrc reboot" leaves it; the jump started in the
		// shutdown runlevel after mount-ro, as the Alpine recipe's
		// kexec-exec.
		steps = append(steps, journal.File(JumpScript, 0o755, openrcShutdownJumpScript(c.Binary)))
		steps = append(steps, journal.Dirs(c.FS, OpenRCDefault)...)
		steps = append(steps, journal.Link(OpenRCDefault+"/"+path.Base(RebootScript), RebootScript),
			journal.Link(OpenRCShutdown+"/"+path.Base(JumpScript), JumpScript))
		steps = append(steps, busyboxReboot(c.FS)...)
	default:
		return nil, fmt.Errorf("neither %s (Debian's OpenRC, whose \"openrc reboot\" stops the LSB umount scripts) nor %s with mount-ro (Alpine, Gentoo, openrc-init) is here, so kxboot knows no point of the shutdown where the file systems are read-only to jump from; nothing was installed and reboots stay firmware reboots: add mount-ro to the shutdown runlevel (rc-update add mount-ro shutdown), then install again", OpenRCUmountRoot, OpenRCShutdown)
	}
	// Started now, so that this boot's shutdown already stops it.
	return append(steps, rcService(RebootScript)), nil
}

// rcService starts a service now; its undo stops it, which does nothing
// (its stop acts only when the machine goes down).
func rcService(script string) journal.Step {
	svc := path.Base(script)
	return journal.Command([]string{"rc-service", svc, "start"}, []string{"rc-service", svc, "stop"})
}

// The layouts of OpenRC's shutdown.
const (
	noLayout = iota
	// debianLayout: Debian's "rc 6" runs "openrc off" then "openrc
	// reboot", which stops the LSB umount scripts of the off runlevel,
	// umountroot last.
	debianLayout
	// shutdownLayout: a shutdown runlevel with killprocs, savecache and
	// mount-ro (Alpine, Gentoo, openrc-init), entered by "openrc
	// shutdown" or "openrc reboot".
	shutdownLayout
)

// layout tells the layouts apart by the runlevel links (absolute links to
// /etc/init.d, looked at themselves).
func layout(fsys rootfs.FS) int {
	inLevel := func(p string) bool { _, err := os.Lstat(fsys.Path(p)); return err == nil }
	switch {
	case inLevel(OpenRCUmountRoot):
		return debianLayout
	case inLevel(OpenRCShutdown + "/mount-ro"):
		return shutdownLayout
	}
	return noLayout
}

func (openrc) Traces(job string) []string {
	if job == journal.JobChain {
		return []string{ChainScript, OpenRCLink, OpenRCBoot, ConfirmScript, OpenRCConfirm}
	}
	out := []string{RebootScript, JumpScript, OpenRCShutdown + "/" + path.Base(JumpScript)}
	for _, level := range openrcRebootLevels {
		for _, script := range []string{RebootScript, JumpScript} {
			out = append(out, level+"/"+path.Base(script))
		}
	}
	return out
}

// RebootCommand: openrc-init takes its requests from openrc-shutdown;
// sysvinit's and busybox's init from their reboot.
func (openrc) RebootCommand(fsys rootfs.FS) []string {
	if PID1(fsys) == "openrc-init" {
		return []string{"openrc-shutdown", "-r", "now"}
	}
	return []string{"reboot"}
}

// Rebooting: "openrc reboot" sets RC_REBOOT=YES ("openrc shutdown" does
// not); where init cannot say which (upstream busybox), kxboot reboot's
// intent stands in.
func (openrc) Rebooting(fsys rootfs.FS, getenv func(string) string) (bool, error) {
	return getenv("RC_REBOOT") == "YES" || rebootIntended(fsys), nil
}

func (openrc) RebootSignal(fsys rootfs.FS) (string, bool) {
	switch pid1 := PID1(fsys); {
	case layout(fsys) == noLayout:
		return "no OpenRC shutdown layout kxboot knows (no " + OpenRCUmountRoot + ", no mount-ro in " + OpenRCShutdown + "): reboots go through the firmware", false
	case pid1 == "busybox" && !busyboxHasReboot(fsys):
		return "busybox init runs the same ::shutdown: lines for a reboot and a poweroff, and this busybox has no ::reboot: action: only kxboot reboot (which records its intent in " + RebootIntent + ") goes through kexec; a plain reboot goes through the firmware", false
	case pid1 == "busybox":
		return "busybox init runs its ::reboot: lines for a reboot (kxboot's \"openrc reboot\": RC_REBOOT=YES) and ::shutdown: for a poweroff", true
	case pid1 == "openrc-init":
		return "openrc-init runs \"openrc reboot\" (RC_REBOOT=YES) for a reboot and \"openrc shutdown\" for a poweroff", true
	}
	return "init runs \"openrc reboot\" (RC_REBOOT=YES) for a reboot and \"openrc shutdown\" for a poweroff", true
}

// openrcScript runs in the sysinit runlevel once /proc, /sys and /dev are
// there, before the root is checked and made writable; late (a separate
// /boot or /var), in the boot runlevel after the local mounts. The
// dependencies are soft ("after", "before") and name both Alpine/Gentoo's
// services and Debian's LSB ones: a "need" of a service the distribution
// does not have would keep the chain boot from ever starting.
func openrcScript(bin string, late bool) string {
	deps := "after sysfs devfs procfs mountkernfs.sh mountdevsubfs.sh\n\tbefore fsck root checkroot.sh checkfs.sh"
	if late {
		deps = "after localmount mountall.sh"
	}
	return openrcService("kxboot chain boot into the owner's kernel",
		deps+"\n\tkeyword -docker -lxc -openvz -prefix -systemd-nspawn -vserver",
		"ebegin \"kxboot chain boot\"\n\t"+bin+" chain\n\teend 0", "")
}

// openrcConfirmScript runs in the default runlevel after every other
// service, and leaves mark-good in the background as the sysvinit script
// does.
func openrcConfirmScript(bin string) string {
	return openrcService("kxboot confirmation that the owner's kernel booted well", "after *",
		"ebegin \"kxboot mark-good, in the background\"\n\tsetsid "+bin+" mark-good </dev/null >/dev/console 2>&1 &\n\teend 0", "")
}

// The fast reboot's load does its work when it is stopped as the machine
// goes down (RC_GOINGDOWN=YES: "openrc shutdown" or "openrc reboot"; a
// plain rc-service stop does nothing), ordered after the local mounts so
// that it stops before they are unmounted. kxboot then loads only for a
// reboot, and makes sure nothing is loaded otherwise.
func openrcRebootScript(bin string) string {
	return openrcService("kxboot fast reboot: load the next kernel at a reboot", "after localmount", "return 0",
		"[ \"$RC_GOINGDOWN\" = YES ] || return 0\n\tebegin \"kxboot: loading the next kernel\"\n\t"+bin+" reboot --prepare\n\teend 0")
}

// openrcJumpScript is Debian's jump: stopped by "openrc reboot" after the
// LSB umount scripts ("before" them, as stops run in the reverse order of
// starts), once the root is read-only.
func openrcJumpScript(bin string) string {
	return openrcService("kxboot fast reboot: jump into the loaded kernel at a reboot",
		"before kxboot-reboot umountfs umountnfs.sh umountroot mount-ro killprocs", "return 0",
		"[ \"$RC_GOINGDOWN\" = YES ] || return 0\n\t"+bin+" reboot --jump\n\treturn 0")
}

// openrcShutdownJumpScript is started in the shutdown runlevel after
// killprocs, savecache and mount-ro (soft: a machine without savecache
// still orders after the others). kxboot jumps only for a reboot, with a
// kernel loaded and no local file system writable; otherwise the shutdown
// goes on to the firmware reboot or the poweroff.
func openrcShutdownJumpScript(bin string) string {
	return openrcService("kxboot fast reboot: jump into the loaded kernel at a reboot",
		"after killprocs savecache mount-ro", bin+" reboot --jump\n\treturn 0", "")
}

// openrcService is an openrc-run script; stop is left out when empty.
func openrcService(description, depend, start, stop string) string {
	s := fmt.Sprintf(`#!/sbin/openrc-run
# Installed by kxboot install; removed by kxboot uninstall.
description=%q

depend() {
	%s
}

start() {
	%s
}
`, description, depend, start)
	if stop != "" {
		s += fmt.Sprintf("\nstop() {\n\t%s\n}\n", stop)
	}
	return s
}
