package cli

import (
	"encoding/json"

	"github.com/kxboot/kxboot/internal/doctor"
)

func runDoctor(env *Env, args []string) error {
	fs := newFlags(env, "doctor", "[--json]", "Check, without changing anything, whether kexec will work on this machine, and say why not.\nExit status 0 when no check fails.")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.parse(args); err != nil {
		return err
	}
	st := state(env)
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
