// Package initwrap is kxboot as PID 1: installed in place of /sbin/init, it
// runs before any service, decides, and either hops into the owner's kernel
// or hands PID 1 to the original init with the same arguments and
// environment, as if it had never run. Whatever goes wrong (a broken config,
// a missing kernel, a refused load, a panic) ends in that hand-over: PID 1
// never exits, because the kernel panics when it does.
package initwrap

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/console"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/klog"
	"github.com/kxboot/kxboot/internal/mounts"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// Original is where the install puts the init it replaces (by dpkg-divert
// on Debian and Ubuntu, by a rename elsewhere).
const Original = "/sbin/init.kxboot-orig"

// Fallbacks are tried in order when the original init cannot be started:
// the known inits of the distributions, and a shell as the last resort.
var Fallbacks = []string{
	Original,
	"/lib/systemd/systemd", "/usr/lib/systemd/systemd",
	"/lib/sysvinit/init", "/sbin/openrc-init", "/usr/sbin/openrc-init",
	"/etc/init", "/bin/init",
	"/bin/sh", "/bin/busybox",
}

// Env is the machine PID 1 works on.
type Env struct {
	FS      rootfs.FS
	Mounts  mounts.Sys
	Engine  *kexec.Engine
	Console io.Writer // PID 1's stdout: /dev/console
	Args    []string  // argv as the kernel gave it
	Environ []string
	// Exec replaces the process (syscall.Exec); it returns only on failure.
	Exec func(path string, argv, envv []string) error
	// Window is the abort window; nil means console.Window on the
	// kernel's consoles.
	Window func(prompt string, d time.Duration) string
	// Hang is what PID 1 does when nothing at all can be started.
	Hang func()
	// Wire, when set, adjusts the chain's machine after chain.Wire
	// (tests replace the watcher and the state).
	Wire func(*chain.Env)
}

// Run is PID 1's whole life in kxboot: it returns only in tests, where Exec
// and Hang return.
func Run(env Env) {
	logf := func(format string, args ...any) { fmt.Fprintf(env.Console, format+"\n", args...) }
	defer func() {
		if r := recover(); r != nil {
			logf("kxboot: internal error (%v); starting the original init", r)
			handOver(env, logf)
		}
	}()
	undo, err := mounts.Early(env.FS, env.Mounts)
	if err != nil {
		logf("kxboot: %v; starting the original init", err)
		undo()
		handOver(env, logf)
		return
	}
	l := klog.Open(env.FS, env.Console)
	logf = l.Logf
	window := env.Window
	if window == nil {
		devs := console.Devices(env.FS)
		window = func(prompt string, d time.Duration) string { return console.Window(devs, prompt, d) }
	}
	ce := chain.Env{
		FS:     env.FS,
		Engine: env.Engine,
		Logf:   logf,
		Window: window,
		// The root is normally still read-only here; if the kernel
		// mounted it writable, leave it clean for the next kernel.
		BeforeJump: func() error { return mounts.RemountReadOnly(env.FS, env.Mounts) },
	}
	chain.Wire(&ce, env.Mounts)
	if env.Wire != nil {
		env.Wire(&ce)
	}
	chain.Run(ce)
	l.Close()
	undo()
	handOver(env, func(format string, args ...any) { fmt.Fprintf(env.Console, format+"\n", args...) })
}

// handOver execs the original init with PID 1's own argv and environment,
// or the first fallback that starts.
func handOver(env Env, logf func(string, ...any)) {
	for _, p := range Fallbacks {
		if _, err := os.Stat(env.FS.Path(p)); err != nil {
			continue
		}
		if p != Original {
			logf("kxboot: %s is missing or broken; starting %s instead", Original, p)
		}
		argv := env.Args
		if len(argv) == 0 || p == "/bin/sh" || p == "/bin/busybox" {
			argv = []string{p}
		}
		err := env.Exec(env.FS.Path(p), argv, env.Environ)
		if err == nil {
			return // only a test's Exec returns on success
		}
		logf("kxboot: cannot start %s: %v", p, err)
	}
	logf("kxboot: no init could be started (tried %v); the machine waits here. Boot with init=/bin/sh from the provider's console and reinstall the init package", Fallbacks)
	env.Hang()
}

// PassThrough runs the original init with the same arguments when kxboot is
// started as /sbin/init but not as PID 1 (sysvinit's "init 6", systemd's
// "init --version"), so the wrapper stays invisible.
func PassThrough(fsys rootfs.FS, args, environ []string, exec func(string, []string, []string) error) error {
	err := exec(fsys.Path(Original), args, environ)
	return fmt.Errorf("kxboot stands in for /sbin/init here and cannot start the original init %s: %w", Original, err)
}
