package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kxboot/kxboot/internal/install"
)

func runInstall(env *Env, args []string) error {
	if len(args) == 0 || args[0] != "chain" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			args = []string{"chain", "--help"}
		} else {
			fmt.Fprintln(env.Stderr, "kxboot install: say what to install: kxboot install chain [--mode M] (fast reboot comes later)")
			return errUsage
		}
	}
	fs := newFlags(env, "install chain", "[--mode auto|wrapper|systemd|sysvinit|openrc] [--kernel K] [--initrd I ...] [--append A]",
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
	if err := fs.parse(args[1:]); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "kernel" || f.Name == "initrd" || f.Name == "append" {
			o.Given = true
		}
	})
	o.Mode = install.Mode(*mode)
	o.Binary = *bin
	if o.Binary == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		if self, err = filepath.EvalSymlinks(self); err != nil {
			return err
		}
		o.Binary = env.FS.Unpath(self)
	}
	return installer(env).Chain(o)
}

func runUninstall(env *Env, args []string) error {
	fs := newFlags(env, "uninstall", "", "Undo what kxboot install did, exactly, last change first. Safe to run again.")
	if err := fs.parse(args); err != nil {
		return err
	}
	return installer(env).Uninstall()
}

func installer(env *Env) install.Machine {
	run := env.Runner
	if run == nil {
		run = install.Exec{FS: env.FS}
	}
	return install.Machine{FS: env.FS, Run: run, Report: func(f string, a ...any) { fmt.Fprintf(env.Stdout, f+"\n", a...) }}
}
