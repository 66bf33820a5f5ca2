package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/kxboot/kxboot/internal/fastreboot"
	"github.com/kxboot/kxboot/internal/initsys"
	"github.com/kxboot/kxboot/internal/install"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/klog"
)

func runInstall(env *Env, args []string) error {
	if len(args) > 0 && args[0] == "reboot" {
		return runInstallReboot(env, args[1:])
	}
	if len(args) == 0 || args[0] != "chain" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			args = []string{"chain", "--help"}
		} else {
			fmt.Fprintln(env.Stderr, "kxboot install: say what to install: kxboot install chain [--mode M], or kxboot install reboot")
			return errUsage
		}
	}
	fs := newFlags(env, "install chain", "[--mode auto|wrapper|systemd|sysvinit|openrc] [--kernel K] [--initrd I ...] [--append A] [--binary B] [--json]",
		`Make the machine hop into the configured kernel at every boot.
wrapper: kxboot stands in for /sbin/init (dpkg-divert on Debian and Ubuntu)
         and runs before any service; the earliest.
systemd, sysvinit, openrc: an early-boot service of that init runs kxboot chain.
auto (default): wrapper where dpkg keeps it safe across init upgrades,
         else the service of the running init.
Writes /etc/default/kxboot when it is absent (from the flags, or from the
droplet-kernel or kexec recipe file found), records every change in
/var/lib/kxboot/install.json, and kxboot uninstall undoes them exactly.`)
	mode := fs.String("mode", "auto", "auto, wrapper, systemd, sysvinit or openrc")
	bin := fs.String("binary", "", "the kxboot binary the boot runs (default: this one)")
	var o install.Options
	fs.StringVar(&o.Kernel, "kernel", "", "kernel to hop into (default: the newest installed, at each boot)")
	fs.Var(listFlag{&o.Initrds}, "initrd", "its initrd; repeat for several, joined in order")
	fs.StringVar(&o.Append, "append", "", "parameters added to the running command line")
	asJSON := fs.Bool("json", false, "print one JSON object: job, mode, changed, messages")
	if err := fs.parse(args[1:]); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "kernel" || f.Name == "initrd" || f.Name == "append" {
			o.Given = true
		}
	})
	o.Mode = initsys.Name(*mode)
	o.Binary = *bin
	var err error
	if o.Binary, err = binary(env, o.Binary); err != nil {
		return err
	}
	return reportInstall(env, journal.JobChain, *asJSON, func(m install.Machine) error { return m.Chain(o) })
}

// binary is the in-machine path of the kxboot binary the boot or the
// shutdown runs: the flag, else this one.
func binary(env *Env, flagged string) (string, error) {
	if flagged != "" {
		return flagged, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return "", err
	}
	return env.FS.Unpath(self), nil
}

func runInstallReboot(env *Env, args []string) error {
	fs := newFlags(env, "install reboot", "[--binary B] [--json]",
		`Make reboot, shutdown -r and systemctl reboot go through kexec into the next
kernel, skipping the firmware; poweroff and halt stay as they are.
systemd: kxboot-reboot.service loads the kernel when it is stopped at shutdown
         (while /boot is mounted); a /usr/lib/systemd/system-shutdown hook jumps.
The kernel is preloaded (now, and by mark-good at each boot) when
REBOOT_PRELOAD allows; the shutdown then keeps it if it is still the one.
sysvinit: runlevel 6 scripts load before umountfs and jump after umountroot.
openrc:  the same two services in the off (Debian) or shutdown runlevel.
If the kernel is gone or the load fails, the reboot goes through the firmware
and the reason is in the kernel log and in kxboot history. Recorded in
/var/lib/kxboot/install-reboot.json; kxboot uninstall reboot undoes it exactly.`)
	bin := fs.String("binary", "", "the kxboot binary the shutdown runs (default: this one)")
	asJSON := fs.Bool("json", false, "print one JSON object: job, mode, changed, messages")
	if err := fs.parse(args); err != nil {
		return err
	}
	b, err := binary(env, *bin)
	if err != nil {
		return err
	}
	if err := reportInstall(env, journal.JobReboot, *asJSON, func(m install.Machine) error { return m.Reboot(install.RebootOptions{Binary: b}) }); err != nil {
		return err
	}
	// Preloaded now (REBOOT_PRELOAD), as mark-good does at the end of
	// each boot; the JSON form keeps its one object on stdout.
	out := env.Stdout
	if *asJSON {
		out = nil
	}
	l := klog.Open(env.FS, out)
	defer l.Close()
	preload(env, l)
	return nil
}

// reportInstall runs an install; with asJSON it prints one object saying
// whether anything changed (for configuration management: Ansible's
// changed_when), instead of the sentences.
func reportInstall(env *Env, job string, asJSON bool, do func(install.Machine) error) error {
	m := installer(env)
	if !asJSON {
		return do(m)
	}
	before, _ := journal.Read(env.FS, job)
	var said []string
	m.Report = func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }
	if err := do(m); err != nil {
		return err
	}
	after, err := journal.Read(env.FS, job)
	if err != nil || after == nil {
		return fmt.Errorf("the install of %s left no readable record: %v", job, err)
	}
	out := struct {
		Job      string   `json:"job"`
		Mode     string   `json:"mode"`
		Changed  bool     `json:"changed"`
		Messages []string `json:"messages"`
	}{job, after.Mode, before == nil || !before.Time.Equal(after.Time), said}
	return json.NewEncoder(env.Stdout).Encode(out)
}

func runUninstall(env *Env, args []string) error {
	jobs := []string{journal.JobReboot, journal.JobChain}
	if len(args) > 0 && (args[0] == journal.JobChain || args[0] == journal.JobReboot) {
		jobs, args = []string{args[0]}, args[1:]
	}
	fs := newFlags(env, "uninstall", "[chain|reboot]", "Undo what kxboot install did, exactly, last change first: both jobs, or the one named. Safe to run again.")
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := installer(env).UninstallJobs(jobs...); err != nil {
		return err
	}
	// A kernel the fast reboot preloaded goes with it: systemd 255 and
	// later would turn the next reboot into a kexec on its own.
	if _, ok := fastreboot.ReadPreloaded(env.FS); ok && slices.Contains(jobs, journal.JobReboot) {
		env.Engine.Unload()
		fastreboot.ForgetPreloaded(env.FS)
		fmt.Fprintln(env.Stdout, "Unloaded the kernel the fast reboot had preloaded.")
	}
	return nil
}

func installer(env *Env) install.Machine {
	return install.Machine{FS: env.FS, Run: runner(env), Report: func(f string, a ...any) { fmt.Fprintf(env.Stdout, f+"\n", a...) }}
}
