package cli

import (
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/fastreboot"
	"github.com/kxboot/kxboot/internal/install"
	"github.com/kxboot/kxboot/internal/klog"
	"github.com/kxboot/kxboot/internal/tries"
)

func runReboot(env *Env, args []string) error {
	fs := newFlags(env, "reboot", "[--dry-run] [--firmware]",
		`Reboot now, cleanly, through the init system: with kxboot install reboot in
place the reboot goes through kexec into the next kernel (the configured one,
else the newest installed; the chain boot's kernel when that is installed),
skipping the firmware. --firmware makes this one reboot go through the
firmware; the next plain reboot goes through kexec again. --dry-run says what
the next reboot would boot, and changes nothing.
The init glue installed by kxboot install reboot runs --prepare at shutdown
(load, while /boot is mounted) and --jump at its very end.`)
	dry := fs.Bool("dry-run", false, "say what the next reboot would boot; change nothing")
	firmware := fs.Bool("firmware", false, "this one reboot through the firmware")
	prepare := fs.Bool("prepare", false, "(init glue) load the next kernel at shutdown")
	jump := fs.Bool("jump", false, "(init glue) jump into the loaded kernel at the end of a reboot")
	armed := fs.Bool("armed", false, "(init glue) say that the fast reboot is armed")
	if err := fs.parse(args); err != nil {
		return err
	}
	switch {
	case *prepare || *jump:
		l := klog.Open(env.FS, env.Stdout)
		defer l.Close()
		e := rebootEnv(env, l.Logf)
		if *prepare {
			fastreboot.Prepare(e)
		} else {
			fastreboot.Jump(e)
		}
		return nil // a reboot is never stopped by kxboot
	case *armed:
		fmt.Fprintln(env.Stdout, "kxboot: reboot: the fast reboot is armed: "+nextReboot(env))
		return nil
	case *dry && *firmware:
		fmt.Fprintln(env.Stdout, "kxboot reboot: would reboot once through the firmware; after it, "+nextReboot(env))
		return nil
	case *dry:
		fmt.Fprintln(env.Stdout, "kxboot reboot: "+nextReboot(env))
		if c := fastreboot.Decide(env.FS); c.Load {
			fmt.Fprint(env.Stdout, c.Plan.Describe())
		}
		return nil
	}
	mode := install.RunningInit(env.FS)
	if *firmware {
		if err := fastreboot.RequestFirmware(env.FS, "kxboot reboot --firmware"); err != nil {
			return fmt.Errorf("cannot write %s: %w", fastreboot.FirmwareFlag, err)
		}
		env.Engine.Unload()
		fmt.Fprintln(env.Stdout, "kxboot: rebooting through the firmware, once")
		return initReboot(env, mode)
	}
	fastreboot.ClearFirmware(env.FS)
	if !fastreboot.Installed(env.FS) {
		return fmt.Errorf("the fast reboot is not installed, so a reboot would go through the firmware; run kxboot install reboot first (or kxboot reboot --firmware for a firmware reboot)")
	}
	c := fastreboot.Decide(env.FS)
	if c.Load {
		fmt.Fprintf(env.Stdout, "kxboot: rebooting through kexec into %s\n", c.Reason)
	} else {
		fmt.Fprintf(env.Stdout, "kxboot: rebooting through the firmware: %s\n", c.Reason)
	}
	return initReboot(env, mode)
}

// nextReboot says in one sentence what the next reboot boots.
func nextReboot(env *Env) string {
	if !fastreboot.Installed(env.FS) {
		return "the fast reboot is not installed (kxboot install reboot): the next reboot goes through the firmware"
	}
	if ok, why := fastreboot.FirmwareRequested(env.FS); ok {
		return "the next reboot goes through the firmware, once (" + why + ")"
	}
	c := fastreboot.Decide(env.FS)
	if !c.Load {
		return "the next reboot goes through the firmware: " + c.Reason
	}
	return "the next reboot goes through kexec into " + c.Reason
}

// initReboot asks the init system for a clean reboot.
func initReboot(env *Env, mode install.Mode) error {
	name, args := "reboot", []string(nil)
	if mode == install.Systemd {
		name, args = "systemctl", []string{"reboot"}
	}
	run := env.Runner
	if run == nil {
		run = install.Exec{FS: env.FS}
	}
	return run.Run(name, args...)
}

// rebootEnv wires the fast reboot to the machine.
func rebootEnv(env *Env, logf func(string, ...any)) fastreboot.Env {
	e := fastreboot.Env{
		FS: env.FS, Engine: env.Engine, Logf: logf,
		Store: &tries.Store{FS: env.FS, Mounts: env.Mounts}, Now: time.Now,
		BootID: chain.BootID(env.FS), Release: chain.Release(env.FS),
	}
	if install.RunningInit(env.FS) == install.Systemd {
		e.Jobs = func() (string, error) {
			out, err := exec.Command("systemctl", "list-jobs", "--no-legend", "--no-pager").Output()
			return strings.TrimSpace(string(out)), err
		}
	}
	return e
}
