package cli

import (
	"fmt"

	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/fastreboot"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/plan"
)

// planFlags registers the flags that choose what to load.
func planFlags(fs flagSet, f *plan.Flags) {
	fs.StringVar(&f.Kernel, "kernel", "", "kernel image to load (default: KERNEL= in the config, else the newest installed)")
	fs.Var(listFlag{&f.Initrds}, "initrd", "initrd to load; repeat it for several, joined in order (microcode first)")
	fs.BoolVar(&f.NoInitrd, "no-initrd", false, "load no initrd at all")
	fs.Var(optString{&f.Append}, "append", "parameters to add to the command line (replaces APPEND= of the config)")
	fs.Var(optString{&f.Cmdline}, "cmdline", "the whole command line, instead of reusing the running one")
}

// makePlan reads the config and works out what would be loaded.
func makePlan(env *Env, f plan.Flags) (plan.Plan, error) {
	if f.Append != nil && f.Cmdline != nil {
		return plan.Plan{}, fmt.Errorf("%w: --append and --cmdline do not go together: --cmdline gives the whole command line; put the additions in it", errUsage)
	}
	if f.NoInitrd && len(f.Initrds) > 0 {
		return plan.Plan{}, fmt.Errorf("%w: --no-initrd and --initrd do not go together: drop one of them", errUsage)
	}
	cfg, err := config.Load(env.FS)
	if err != nil {
		return plan.Plan{}, err
	}
	return plan.Make(env.FS, cfg, f)
}

func runLoad(env *Env, args []string) error {
	fs := newFlags(env, "load", "[--kernel K] [--initrd I ... | --no-initrd] [--append A | --cmdline C] [--syscall auto|file|load] [--dry-run]",
		`Load a kernel so that "kxboot exec --force" (or a kexec reboot) starts it.
With no flags it loads what /etc/default/kxboot names, else the newest
installed kernel with its initrd and the running command line. The new
command line always carries the marker (kxboot.chained=1) that tells the
next boot it came through kxboot.`)
	var f plan.Flags
	planFlags(fs, &f)
	dry := fs.Bool("dry-run", false, "check everything a load checks and print the kernel, initrds and command line; load nothing")
	sys := fs.String("syscall", "auto", "auto (kexec_file_load, then kexec_load if missing), file, or load")
	if err := fs.parse(args); err != nil {
		return err
	}
	method, err := kexec.ParseMethod(*sys)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	p, err := makePlan(env, f)
	if err != nil {
		return err
	}
	res, err := env.Engine.Load(kexec.Request{Kernel: p.Kernel, Initrds: p.Initrds, Cmdline: p.Cmdline, Method: method, DryRun: *dry})
	if err != nil {
		return err
	}
	how := res.Syscall
	if res.FellBack {
		how += " (this kernel has no kexec_file_load)"
	}
	if *dry {
		// Every check and step of the load ran, but the syscall.
		fmt.Fprintf(env.Stdout, "Would load with %s (dry run: every check passed, nothing loaded):\n%s", how, p.Describe())
		return nil
	}
	fastreboot.ForgetPreloaded(env.FS) // the shutdown must not keep this one as its own
	fmt.Fprintf(env.Stdout, "Loaded with %s:\n%s", how, p.Describe())
	fmt.Fprintf(env.Stdout, "Start it with: kxboot exec --force (at once, no clean shutdown), or systemctl kexec.\n")
	return nil
}

func runUnload(env *Env, args []string) error {
	fs := newFlags(env, "unload", "", "Drop the loaded kernel, so that the next reboot goes through the firmware.")
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := env.Engine.Unload(); err != nil {
		return err
	}
	fastreboot.ForgetPreloaded(env.FS)
	fmt.Fprintln(env.Stdout, "No kernel is loaded now.")
	return nil
}

func runExec(env *Env, args []string) error {
	fs := newFlags(env, "exec", "--force",
		`Jump into the loaded kernel now. This skips a clean shutdown: services
are not stopped and file systems are synced but not unmounted. Use it from
an initramfs or a rescue shell; on a running system prefer systemctl kexec.`)
	force := fs.Bool("force", false, "jump even though nothing is shut down cleanly")
	if err := fs.parse(args); err != nil {
		return err
	}
	if !*force {
		fmt.Fprintln(env.Stderr, "kxboot: exec jumps into the loaded kernel at once and skips a clean shutdown (services keep running, file systems are only synced); run kxboot exec --force if that is what you want, or systemctl kexec for a clean one")
		return errUsage
	}
	loaded, err := env.Engine.Loaded()
	if err != nil {
		return err
	}
	if !loaded {
		return kexec.ErrNotLoaded
	}
	fmt.Fprintln(env.Stdout, "kxboot: syncing and jumping into the loaded kernel")
	return env.Engine.Exec()
}
