package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/kxboot/kxboot/internal/bootstate"
	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/fastreboot"
	"github.com/kxboot/kxboot/internal/initsys"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/klog"
	"github.com/kxboot/kxboot/internal/tries"
)

func runReboot(env *Env, args []string) error {
	fs := newFlags(env, "reboot", "[--dry-run] [--firmware | --once --kernel K [--initrd I ...]]",
		`Reboot now, cleanly, through the init system: with kxboot install reboot in
place the reboot goes through kexec into the next kernel (the configured one,
else the newest installed; the chain boot's kernel when that is installed),
skipping the firmware. --firmware makes this one reboot go through the
firmware; the next plain reboot goes through kexec again. --once --kernel K
boots K at this reboot (like grub-reboot); the next goes back to the usual
kernel. Every reboot through kexec is a try: a kernel that does not confirm
(kxboot mark-good) is not booted again by the next reboot, which goes to
the last known-good kernel or through the firmware. --dry-run says what the
next reboot would boot, and changes nothing.
The init glue installed by kxboot install reboot runs --prepare at shutdown
(load, while /boot is mounted) and --jump at its very end.`)
	dry := fs.Bool("dry-run", false, "say what the next reboot would boot; change nothing")
	firmware := fs.Bool("firmware", false, "this one reboot through the firmware")
	prepare := fs.Bool("prepare", false, "(init glue) load the next kernel at shutdown")
	jump := fs.Bool("jump", false, "(init glue) jump into the loaded kernel at the end of a reboot")
	armed := fs.Bool("armed", false, "(init glue) say that the fast reboot is armed")
	once := addOnceFlags(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := once.check(); err != nil {
		return err
	}
	if *once.once && (*firmware || *prepare || *jump || *armed) {
		return fmt.Errorf("%w: --once goes with a reboot through kexec, not with --firmware or the init glue", errUsage)
	}
	if *prepare || *jump {
		l := klog.Open(env.FS, env.Stdout)
		defer l.Close()
		e := rebootEnv(env, l.Logf)
		if *prepare {
			fastreboot.Prepare(e)
		} else {
			fastreboot.Jump(e)
		}
		return nil // a reboot is never stopped by kxboot
	}
	if *once.once {
		if !state(env).NextReboot.Installed {
			return fmt.Errorf("the fast reboot is not installed, so kxboot reboot --once cannot boot another kernel; run kxboot install reboot first (with the chain boot installed, kxboot chain --once --kernel K and a reboot do it)")
		}
		b, err := once.set(env, "kxboot reboot --once", *dry)
		if err != nil {
			return err
		}
		if *dry {
			fmt.Fprintf(env.Stdout, "kxboot reboot: would boot %s once through kexec; the reboot after goes back to the usual kernel\n", b.Kernel)
			describeBoot(env, b)
			return nil
		}
	}
	next := state(env).NextReboot
	switch {
	case *armed:
		fmt.Fprintln(env.Stdout, "kxboot: reboot: the fast reboot is armed: "+next.String())
		return nil
	case *dry && *firmware:
		fmt.Fprintln(env.Stdout, "kxboot reboot: would reboot once through the firmware; after it, "+next.String())
		return nil
	case *dry:
		fmt.Fprintln(env.Stdout, "kxboot reboot: "+next.String())
		if next.Choice.Load {
			describeBoot(env, next.Choice.Hop.Boot)
		}
		return nil
	}
	if *firmware {
		if err := fastreboot.RequestFirmware(env.FS, "kxboot reboot --firmware"); err != nil {
			return fmt.Errorf("cannot write %s: %w", fastreboot.FirmwareFlag, err)
		}
		env.Engine.Unload()
		fastreboot.ForgetPreloaded(env.FS)
		fmt.Fprintln(env.Stdout, "kxboot: rebooting through the firmware, once")
		return initReboot(env)
	}
	fastreboot.ClearFirmware(env.FS)
	if !next.Installed {
		return fmt.Errorf("the fast reboot is not installed, so a reboot would go through the firmware; run kxboot install reboot first (or kxboot reboot --firmware for a firmware reboot)")
	}
	if c := next.Choice; c.Load {
		fmt.Fprintf(env.Stdout, "kxboot: rebooting through kexec, %s\n", c.Reason)
	} else {
		fmt.Fprintf(env.Stdout, "kxboot: rebooting through the firmware: %s\n", c.Reason)
	}
	// Where the init system cannot tell the shutdown glue a reboot from a
	// poweroff (upstream busybox init), this is how it knows.
	if err := initsys.RecordRebootIntent(env.FS); err != nil {
		return fmt.Errorf("cannot write %s: %w", initsys.RebootIntent, err)
	}
	return initReboot(env)
}

// initReboot asks the init system that runs the machine for a clean reboot.
func initReboot(env *Env) error {
	cmd := initsys.Running(env.FS).RebootCommand(env.FS)
	return runner(env).Run(cmd[0], cmd[1:]...)
}

// runner runs the distribution's tools: the test's, else the machine's.
func runner(env *Env) journal.Runner {
	if env.Runner != nil {
		return env.Runner
	}
	return journal.Exec{FS: env.FS}
}

// rebootEnv wires the fast reboot to the machine.
func rebootEnv(env *Env, logf func(string, ...any)) fastreboot.Env {
	init := initsys.Running(env.FS)
	return fastreboot.Env{
		FS: env.FS, Engine: env.Engine, Logf: logf,
		Store: &tries.Store{FS: env.FS, Mounts: env.Mounts}, Now: time.Now,
		BootID: chain.BootID(env.FS), Release: chain.Release(env.FS),
		Rebooting:       func() (bool, error) { return init.Rebooting(env.FS, os.Getenv) },
		ArmWatchdog:     chain.NativeWatchdog(env.FS),
		ReleaseWatchdog: func() string { return chain.ReleaseWatchdog(env.FS) },
	}
}

// preload loads the next reboot's kernel ahead (fastreboot.Preload) and
// says what it did on l.
func preload(env *Env, l *klog.Logger) {
	if s := fastreboot.Preload(rebootEnv(env, l.Logf)); s != "" {
		l.Logf("%s", s)
	}
}

// state reads the machine's boot state, once per command.
func state(env *Env) bootstate.State { return bootstate.Read(env.FS, env.Engine) }
