package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/tries"
)

// onceFlags are --once, --kernel and --initrd of kxboot chain and kxboot
// reboot: the next hop (at boot or at a reboot) boots that kernel, once.
type onceFlags struct {
	once    *bool
	kernel  *string
	initrds []string
}

func addOnceFlags(fs flagSet) *onceFlags {
	o := &onceFlags{}
	o.once = fs.Bool("once", false, "the next hop boots --kernel K once; the one after goes back to the usual kernel")
	o.kernel = fs.String("kernel", "", "with --once: the kernel to boot once")
	fs.Var(listFlag{&o.initrds}, "initrd", "with --once: its initrd (repeat for several); default: those found beside it")
	return o
}

// check is the usage mistakes of the flags.
func (o *onceFlags) check() error {
	switch {
	case *o.once && *o.kernel == "":
		return fmt.Errorf("%w: --once needs --kernel K, the kernel to boot once", errUsage)
	case !*o.once && (*o.kernel != "" || o.initrds != nil):
		return fmt.Errorf("%w: --kernel and --initrd go with --once", errUsage)
	}
	return nil
}

// set records the one-shot kernel for the next hop, after checking that
// it can be booted, and returns what the next hop will load.
func (o *onceFlags) set(env *Env, by string, dry bool) (tries.Boot, error) {
	cfg, err := config.Load(env.FS)
	if err != nil {
		return tries.Boot{}, err
	}
	req := &tries.OneShot{Kernel: *o.kernel, Initrds: o.initrds, By: by, Asked: time.Now().UTC()}
	c := chain.OnceCandidate(env.FS, cfg, req)
	if c.Err != nil {
		return c.Boot, fmt.Errorf("cannot boot %s once: %w", *o.kernel, c.Err)
	}
	if dry {
		return c.Boot, nil
	}
	s, err := locatedStore(env)
	if err != nil {
		return c.Boot, err
	}
	return c.Boot, askNext(s, req, "the one-shot kernel")
}

// askNext records a one-shot request (a kernel, or a slot) for the next
// hop; what names it in the error.
func askNext(s *tries.Store, req *tries.OneShot, what string) error {
	_, err := s.Update(func(r tries.Record, rerr error) (tries.Record, error) {
		if rerr != nil {
			return r, rerr
		}
		r.Next = req
		return r, nil
	})
	if errors.Is(err, tries.ErrDamaged) {
		return fmt.Errorf("%w; run kxboot reset first", err)
	}
	if err != nil {
		return fmt.Errorf("cannot record %s in %s: %w", what, tries.RecordPath, err)
	}
	return nil
}

// describeBoot prints what a hop loads, one item a line.
func describeBoot(env *Env, b tries.Boot) {
	rel := ""
	if b.Release != "" {
		rel = " (" + b.Release + ")"
	}
	fmt.Fprintf(env.Stdout, "kernel:  %s%s\n", b.Kernel, rel)
	if len(b.Initrds) == 0 {
		fmt.Fprintf(env.Stdout, "initrd:  none\n")
	}
	for i, ir := range b.Initrds {
		label := "initrd:  "
		if i > 0 {
			label = "         "
		}
		fmt.Fprintf(env.Stdout, "%s%s\n", label, ir)
	}
	fmt.Fprintf(env.Stdout, "cmdline: %s\n", b.Cmdline)
}
