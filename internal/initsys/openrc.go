package initsys

import (
	"fmt"
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
)

// openrcRebootLevels are the runlevels the OpenRC fast reboot is linked
// into: started at boot, kept through Debian's "off" runlevel.
var openrcRebootLevels = []string{"/etc/runlevels/default", "/etc/runlevels/off"}

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

// Reboot places two services, started at boot and kept through Debian's
// "off" runlevel, so that the "openrc reboot" that follows stops them in
// order with the LSB umount scripts.
func (openrc) Reboot(c Context) ([]journal.Step, error) {
	if !c.FS.Exists(OpenRCUmountRoot) {
		return nil, fmt.Errorf("%s does not exist: kxboot's OpenRC fast reboot knows Debian's layout, where \"openrc reboot\" makes the root read-only with that LSB script and then kxboot jumps, but not a mount-ro in the shutdown runlevel (Alpine, Gentoo), which busybox init also runs to power off; nothing was installed and reboots stay firmware reboots", OpenRCUmountRoot)
	}
	steps := []journal.Step{
		journal.File(RebootScript, 0o755, openrcRebootScript(c.Binary)),
		journal.File(JumpScript, 0o755, openrcJumpScript(c.Binary)),
	}
	for _, level := range openrcRebootLevels {
		steps = append(steps, journal.Dirs(c.FS, level)...)
		for _, script := range []string{RebootScript, JumpScript} {
			steps = append(steps, journal.Link(level+"/"+path.Base(script), script))
		}
	}
	// Started now, so that this boot's reboot already stops them; their
	// stop does nothing unless OpenRC is rebooting.
	for _, svc := range []string{path.Base(JumpScript), path.Base(RebootScript)} {
		steps = append(steps, journal.Command([]string{"rc-service", svc, "start"}, []string{"rc-service", svc, "stop"}))
	}
	return steps, nil
}

func (openrc) Traces(job string) []string {
	if job == journal.JobChain {
		return []string{ChainScript, OpenRCLink, OpenRCBoot, ConfirmScript, OpenRCConfirm}
	}
	out := []string{RebootScript, JumpScript}
	for _, level := range openrcRebootLevels {
		for _, script := range []string{RebootScript, JumpScript} {
			out = append(out, level+"/"+path.Base(script))
		}
	}
	return out
}

func (openrc) RebootCommand() []string { return []string{"reboot"} }

// Rebooting: the services act only when OpenRC sets RC_REBOOT=YES.
func (openrc) Rebooting(rootfs.FS) (bool, error) { return true, nil }

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

// The fast reboot's services do their work when they are stopped, and only
// when OpenRC says the machine is going down for a reboot (RC_REBOOT=YES,
// which "openrc reboot" sets; a poweroff never kexecs). Stops run in the
// reverse order of starts: the load ("after" the local mounts) stops before
// they are unmounted; the jump ("before" the umount scripts and the load)
// stops after the root is read-only.
func openrcRebootScript(bin string) string {
	return openrcService("kxboot fast reboot: load the next kernel at a reboot", "after localmount", "return 0",
		"[ \"$RC_REBOOT\" = YES ] || return 0\n\tebegin \"kxboot: loading the next kernel\"\n\t"+bin+" reboot --prepare\n\teend 0")
}

func openrcJumpScript(bin string) string {
	return openrcService("kxboot fast reboot: jump into the loaded kernel at a reboot",
		"before kxboot-reboot umountfs umountnfs.sh umountroot mount-ro killprocs", "return 0",
		"[ \"$RC_REBOOT\" = YES ] || return 0\n\t"+bin+" reboot --jump\n\treturn 0")
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
