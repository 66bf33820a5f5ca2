package cli

import "github.com/kxboot/kxboot/internal/chain"

// releaseWatchdog stops the watchdog armed before the hop, unless the
// kernel's init took it over.
func releaseWatchdog(env *Env) string { return chain.ReleaseWatchdog(env.FS) }
