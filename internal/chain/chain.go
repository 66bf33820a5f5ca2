// Package chain is the decision of a chain boot, taken at every boot of a
// machine whose provider forces its own kernel: hop into the owner's kernel
// now, or boot on with the kernel that runs. Decide is a pure function of
// what the machine looks like; Run gathers that, keeps the abort window,
// loads and jumps, and turns every failure into "boot on" with the reason,
// so that a failed hop never strands the machine.
package chain

import (
	"fmt"
	"time"

	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/kimage"
	"github.com/kxboot/kxboot/internal/plan"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// Input is everything the decision looks at.
type Input struct {
	Running   cmdline.Cmdline // this boot's command line
	Config    *config.Config  // nil when it could not be read
	ConfigErr error
	Plan      plan.Plan
	PlanErr   error
	KernelErr error // the planned kernel's image check
}

// Decision says whether to hop, and why, in one line a person reads.
type Decision struct {
	Hop    bool   `json:"hop"`
	Reason string `json:"reason"`
	Kernel string `json:"kernel,omitempty"`
}

func (d Decision) String() string {
	if d.Hop {
		return "hop: " + d.Reason
	}
	return "boot on: " + d.Reason
}

func bootOn(format string, args ...any) Decision {
	return Decision{Reason: fmt.Sprintf(format, args...)}
}

// Decide is the chain boot's decision. The loop guard comes first: a boot
// that already came through kxboot never hops again, whatever else is wrong.
func Decide(in Input) Decision {
	own := ""
	if in.Config != nil {
		own = in.Config.Marker
	}
	if m, ok := in.Running.HasMarker(cmdline.Markers(own)); ok {
		return bootOn("this boot already came through kexec (%s is on the command line)", m)
	}
	if in.ConfigErr != nil {
		return bootOn("the config cannot be used: %v", in.ConfigErr)
	}
	if !in.Config.Enabled {
		where := in.Config.Path
		if line, ok := in.Config.Line["ENABLED"]; ok {
			where = fmt.Sprintf("%s:%d", where, line)
		}
		return bootOn("chain boot is disabled (ENABLED=no in %s)", where)
	}
	if in.PlanErr != nil {
		return bootOn("%v", in.PlanErr)
	}
	if in.KernelErr != nil {
		return bootOn("%v", in.KernelErr)
	}
	rel := ""
	if in.Plan.Release != "" {
		rel = " (" + in.Plan.Release + ")"
	}
	return Decision{Hop: true, Kernel: in.Plan.Kernel,
		Reason: fmt.Sprintf("booting %s%s, named by %s", in.Plan.Kernel, rel, in.Plan.KernelFrom)}
}

// Gather reads the machine into an Input.
func Gather(fsys rootfs.FS) Input {
	var in Input
	running, _ := fsys.ReadString("/proc/cmdline")
	in.Running = cmdline.Parse(running)
	in.Config, in.ConfigErr = config.Load(fsys)
	if in.ConfigErr != nil {
		return in
	}
	in.Plan, in.PlanErr = plan.Make(fsys, in.Config, plan.Flags{})
	if in.PlanErr == nil {
		_, in.KernelErr = kimage.Identify(fsys.Path(in.Plan.Kernel), in.Plan.Kernel)
	}
	return in
}

// Env is what Run acts through.
type Env struct {
	FS     rootfs.FS
	Engine *kexec.Engine
	// Logf reports each step; PID 1 sends it to /dev/kmsg and the console.
	Logf func(format string, args ...any)
	// Window keeps the abort window; it returns the console a key came
	// from, or "" when the time ran out.
	Window func(prompt string, d time.Duration) string
	// BeforeJump makes the jump clean: in service mode it remounts
	// read-only what is writable. Its error is logged, not fatal.
	BeforeJump func() error
	// Record keeps the decision for kxboot status.
	Record func(Decision)
}

// Run decides and, when it is a hop, keeps the abort window, loads the
// kernel and jumps. It returns only when the machine is to boot on, with the
// decision that says why; on a successful jump it does not return.
func Run(env Env) Decision {
	in := Gather(env.FS)
	d := Decide(in)
	if !d.Hop {
		return finish(env, d)
	}
	env.Logf("kxboot: chain: %s", d.Reason)
	if secs := in.Config.AbortSeconds; secs > 0 && env.Window != nil {
		prompt := "kxboot: booting " + d.Kernel + " in %d s; press any key to boot the current kernel instead "
		if who := env.Window(prompt, time.Duration(secs)*time.Second); who != "" {
			return finish(env, bootOn("a key was pressed on %s during the %d s abort window", who, secs))
		}
	}
	res, err := env.Engine.Load(kexec.Request{Kernel: in.Plan.Kernel, Initrds: in.Plan.Initrds, Cmdline: in.Plan.Cmdline})
	if err != nil {
		return finish(env, bootOn("%v", err))
	}
	env.Logf("kxboot: chain: loaded %s with %s; command line: %s", in.Plan.Kernel, res.Syscall, in.Plan.Cmdline)
	if env.BeforeJump != nil {
		if err := env.BeforeJump(); err != nil {
			env.Logf("kxboot: chain: %v; jumping anyway, the file systems are synced", err)
		}
	}
	env.Logf("kxboot: chain: jumping into %s", in.Plan.Kernel)
	if env.Record != nil {
		env.Record(d)
	}
	err = env.Engine.Exec()
	// Still here: the jump failed. Drop the loaded kernel so that no later
	// reboot takes it by surprise, and boot on.
	env.Engine.Unload()
	return finish(env, bootOn("the jump into %s failed: %v", in.Plan.Kernel, err))
}

func finish(env Env, d Decision) Decision {
	env.Logf("kxboot: chain: %s", d)
	if env.Record != nil {
		env.Record(d)
	}
	return d
}

// Explain is the one-line answer of `kxboot chain --dry-run`.
func Explain(fsys rootfs.FS) string {
	in := Gather(fsys)
	d := Decide(in)
	s := "would " + d.String()
	if secs := in.Config.AbortSeconds; d.Hop && secs > 0 {
		s += fmt.Sprintf(", after a %d s abort window", secs)
	}
	return s
}
