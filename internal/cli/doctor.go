package cli

import (
	"encoding/json"

	"github.com/kxboot/kxboot/internal/doctor"
	"github.com/kxboot/kxboot/internal/plan"
)

func runDoctor(env *Env, args []string) error {
	fs := newFlags(env, "doctor", "[--kernel K] [--json]", "Check, without changing anything, whether kexec will work on this machine, and say why not.\nExit status 0 when no check fails. --kernel checks that kernel (with the initrd\nfound beside it) instead of the one the configuration names; the packages'\nkernel hook runs it for each kernel installed.")
	asJSON := fs.Bool("json", false, "print JSON")
	kernel := fs.String("kernel", "", "check this kernel instead of the configured one (default: KERNEL= in the config, else the newest installed)")
	if err := fs.parse(args); err != nil {
		return err
	}
	st := state(env)
	if *kernel != "" && st.In.ConfigErr == nil {
		st.In.Base, st.In.PlanErr = plan.Make(env.FS, st.In.Config, plan.Flags{Kernel: *kernel})
	}
	checks := doctor.Run(doctor.Input{FS: env.FS, Euid: env.Euid(), Arch: env.Engine.MachineArch(), Engine: env.Engine, Boot: &st.In})
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(checks); err != nil {
			return err
		}
	} else {
		doctor.Write(env.Stdout, checks)
	}
	if doctor.Failed(checks) {
		return exitError(1)
	}
	return nil
}
