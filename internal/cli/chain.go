package cli

import (
	"fmt"
	"time"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/console"
	"github.com/kxboot/kxboot/internal/klog"
	"github.com/kxboot/kxboot/internal/mounts"
)

func runChain(env *Env, args []string) error {
	fs := newFlags(env, "chain", "[--dry-run] | --once --kernel K [--initrd I ...]",
		`Take the chain boot decision now and act on it: hop into the configured
kernel (after the abort window), or boot on with the running one and say why.
The early-boot services run this; the init wrapper does the same as PID 1.
Before the jump the writable file systems are remounted read-only.
--dry-run explains the decision in one line and changes nothing.
--once --kernel K makes the next hop boot K, once (like grub-reboot): the
boot after goes back to the usual kernel. It is a try like any hop.`)
	dry := fs.Bool("dry-run", false, "explain the decision in one line; load nothing")
	once := addOnceFlags(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := once.check(); err != nil {
		return err
	}
	if *once.once {
		b, err := once.set(env, "kxboot chain --once", *dry)
		if err != nil {
			return err
		}
		verb := "boots"
		if *dry {
			verb = "would boot"
		}
		fmt.Fprintf(env.Stdout, "kxboot chain: the next hop %s %s once; the one after goes back to the usual kernel\n", verb, b.Kernel)
		describeBoot(env, b)
		return nil
	}
	if *dry {
		st := state(env)
		fmt.Fprintln(env.Stdout, "kxboot chain: "+chain.Explain(st.In, st.NextBoot))
		return nil
	}
	// An early service may run before /proc, /sys or /dev are mounted
	// (no initramfs mounted them); they stay for the init that follows.
	if env.Mounts != nil {
		if _, err := mounts.Early(env.FS, env.Mounts); err != nil {
			fmt.Fprintf(env.Stderr, "kxboot: %v\n", err)
		}
	}
	l := klog.Open(env.FS, env.Stderr)
	defer l.Close()
	devs := console.Devices(env.FS)
	ce := chain.Env{
		FS:         env.FS,
		Engine:     env.Engine,
		Logf:       l.Logf,
		Window:     func(prompt string, d time.Duration) string { return console.Window(devs, prompt, d) },
		BeforeJump: func() error { return mounts.RemountReadOnly(env.FS, env.Mounts) },
	}
	chain.Wire(&ce, env.Mounts)
	chain.Run(ce)
	return nil // booting on is a success for the boot: the service must not fail it
}
