package cli

import (
	"encoding/json"

	"github.com/kxboot/kxboot/internal/bootstate"
	"github.com/kxboot/kxboot/internal/status"
)

func runStatus(env *Env, args []string) error {
	fs := newFlags(env, "status", "[--json]", "Show the running kernel, whether this boot came through kxboot, whether a kernel is loaded, and the configuration in force.")
	asJSON := fs.Bool("json", false, "print JSON (its fields: docs/status.md)")
	if err := fs.parse(args); err != nil {
		return err
	}
	r := status.From(bootstate.Read(env.FS, env.Engine))
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	status.Write(env.Stdout, r)
	return nil
}
