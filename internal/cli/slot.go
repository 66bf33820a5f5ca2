package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/tries"
)

func runSlot(env *Env, args []string) error {
	fs := newFlags(env, "slot", "[list] | set-next NAME",
		`The slots of an A/B scheme (SLOT_<NAME>_KERNEL, _INITRD, _CMDLINE, _ROOT in
/etc/default/kxboot). The chain boot boots the active slot: the last one
kxboot mark-good confirmed, else the first by name. set-next NAME makes the
next hop boot NAME once; confirmed there (kxboot mark-good), NAME becomes
the active slot; not confirmed, the boot after returns to the active slot.
list (the default) shows the slots, which is active and which is next.`)
	// The words come before any flag: list, or set-next NAME.
	var rest []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		rest, args = append(rest, args[0]), args[1:]
	}
	if err := fs.parse(args); err != nil {
		return err
	}
	list := len(rest) == 0 || len(rest) == 1 && rest[0] == "list"
	if !list && !(len(rest) == 2 && rest[0] == "set-next") {
		return fmt.Errorf("%w: kxboot slot takes list or set-next NAME", errUsage)
	}
	// On a slot's own root, the slots are those of the machine that
	// hopped, whose record and config the chain boot goes by.
	st, err := locatedStore(env)
	if err != nil {
		return err
	}
	cfg, err := config.Load(st.FS)
	if err != nil {
		return err
	}
	if len(cfg.Slots) == 0 {
		return fmt.Errorf("%s names no slots; add SLOT_A_KERNEL=... and SLOT_B_KERNEL=... (with SLOT_<NAME>_ROOT for a slot's own root file system) to use them", orDefault(cfg.Path, config.Path))
	}
	switch {
	case list:
		r, err := st.Read()
		if err != nil {
			return err
		}
		active, why := chain.ActiveSlot(cfg, r)
		for _, s := range cfg.Slots {
			mark := " "
			if s.Name == active.Name {
				mark = "*"
			}
			root := "this machine's files"
			if s.Root != "" {
				root = "root " + s.Root
			}
			fmt.Fprintf(env.Stdout, "%s %s  %s  (%s)\n", mark, s.Name, s.Kernel, root)
		}
		fmt.Fprintf(env.Stdout, "active: %s\n", why)
		if n := r.Next; n != nil && n.Slot != "" {
			fmt.Fprintf(env.Stdout, "next:   slot %s, once (%s)\n", n.Slot, n.By)
		}
		return nil
	case len(rest) == 2 && rest[0] == "set-next":
		name := rest[1]
		if _, ok := cfg.Slot(name); !ok {
			return fmt.Errorf("%w: there is no slot %s in %s; the slots are %v", errUsage, name, cfg.Path, cfg.SlotNames())
		}
		req := &tries.OneShot{Slot: name, By: "kxboot slot set-next", Asked: time.Now().UTC()}
		if err := askNext(st, req, "the next slot"); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "kxboot slot: the next hop boots slot %s once; kxboot mark-good there makes it the active slot\n", name)
		return nil
	}
	return fmt.Errorf("%w: kxboot slot takes list or set-next NAME", errUsage)
}

// locatedStore is the try record this boot goes by: this machine's, or on
// a slot's root the one of the machine that hopped (tries.StateParam).
func locatedStore(env *Env) (*tries.Store, error) {
	st := &tries.Store{FS: env.FS, Mounts: env.Mounts}
	line, _ := env.FS.ReadString("/proc/cmdline")
	if err := st.Locate(line); err != nil {
		return nil, err
	}
	return st, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
