// Package install puts kxboot into a machine's boot path and takes it out
// again exactly: the chain boot (kxboot install chain), the fast reboot
// (kxboot install reboot), and their uninstall. What to write is the init
// adapters' (package initsys); every change is a journal step recorded
// before it is made (package journal), so that uninstall, even a second
// one or one after a crash half-way, finishes the job or says what it
// found.
package install

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kxboot/kxboot/internal/atomicfile"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/initsys"
	"github.com/kxboot/kxboot/internal/initwrap"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/tries"
)

// Options are the flags of kxboot install chain.
type Options struct {
	Mode    initsys.Name
	Binary  string // in-machine path of the kxboot binary to run at boot
	Kernel  string
	Initrds []string
	Append  string
	// Given says whether any of Kernel, Initrds, Append was set.
	Given bool
}

// RebootOptions are the flags of kxboot install reboot.
type RebootOptions struct {
	Binary string // in-machine path of the kxboot binary the shutdown runs
}

// Machine is what install works on.
type Machine struct {
	FS     rootfs.FS
	Run    journal.Runner
	Report func(format string, args ...any) // what was done, for people
}

func (m Machine) journal() journal.Journal {
	return journal.Journal{FS: m.FS, Run: m.Run, Report: m.Report}
}

// Chain installs the chain boot. A second install of the same mode changes
// nothing.
func (m Machine) Chain(o Options) error {
	mode := initsys.Choose(m.FS, o.Mode)
	if done, err := m.already(journal.JobChain, mode, func(prev initsys.Name) error {
		return fmt.Errorf("kxboot's chain boot is already installed in %s mode (recorded in %s); run kxboot uninstall chain first", prev, journal.Path(journal.JobChain))
	}); done || err != nil {
		if done {
			m.Report("kxboot chain boot is already installed in %s mode; nothing changed.", mode)
		}
		return err
	}
	place, err := initsys.Get(mode)
	if err != nil {
		return err
	}
	// The config as it is now: the kernel's directory for the early
	// service, or a recipe's file to take over when kxboot has none.
	cfg, cfgErr := config.Load(m.FS)
	dir := "/boot"
	if cfgErr == nil && cfg.Kernel != "" {
		dir = path.Dir(cfg.Kernel)
	} else if o.Kernel != "" {
		dir = path.Dir(o.Kernel)
	}
	c := m.context(o.Binary, dir)
	if err := m.preflight(place, c); err != nil {
		return err
	}
	if o.Given && m.FS.Exists(config.Path) {
		return fmt.Errorf("%s exists already; edit KERNEL, INITRD and APPEND there instead of passing them to install", config.Path)
	}
	steps, err := m.configSteps(o, cfg, cfgErr)
	if err != nil {
		return err
	}
	// The confirmation belongs to the init that runs the machine, in
	// wrapper mode too (the wrapper is only PID 1's first moment), and
	// comes before the chain boot's own steps, so that no hop is
	// installed without its confirmation.
	running := initsys.Running(m.FS)
	confirm, err := m.confirmSteps(running, c)
	if err != nil {
		return err
	}
	steps = append(append(steps, confirm...), place.Chain(c)...)
	r := &journal.Record{Job: journal.JobChain, Mode: string(mode), Binary: o.Binary, Time: time.Now().UTC(), Steps: journal.Tidy(steps)}
	if err := m.journal().Apply(r, initsys.SbinInit); err != nil {
		return err
	}
	m.Report("Installed the kxboot chain boot in %s mode. At every boot the machine now hops into the configured kernel (%s); see kxboot chain --dry-run.", mode, config.Path)
	m.Report("At the end of each boot through kxboot, kxboot mark-good (kxboot-confirm, run by %s) confirms the kernel as good.", running.Name())
	m.Report("Undo it all with: kxboot uninstall")
	return nil
}

// Reboot installs the fast reboot for the running init system: at a
// reboot the next kernel is loaded while /boot is still mounted (kxboot
// reboot --prepare) and jumped into once the file systems are read-only
// (kxboot reboot --jump), where the init system would reset the machine. A
// second install changes nothing.
func (m Machine) Reboot(o RebootOptions) error {
	running := initsys.Running(m.FS)
	mode := running.Name()
	if done, err := m.already(journal.JobReboot, mode, func(prev initsys.Name) error {
		return fmt.Errorf("kxboot fast reboot is installed for %s (recorded in %s), but %s runs the machine now; run kxboot uninstall reboot first", prev, journal.Path(journal.JobReboot), mode)
	}); done || err != nil {
		if done {
			m.Report("kxboot fast reboot is already installed for %s; nothing changed.", mode)
		}
		return err
	}
	c := m.context(o.Binary, "")
	if err := m.preflight(running, c); err != nil {
		return err
	}
	// Every fast reboot is a try, confirmed like a hop of the chain boot.
	confirm, err := m.confirmSteps(running, c)
	if err != nil {
		return err
	}
	steps, err := running.Reboot(c)
	if err != nil {
		return err
	}
	steps = append(confirm, steps...)
	r := &journal.Record{Job: journal.JobReboot, Mode: string(mode), Binary: o.Binary, Time: time.Now().UTC(), Steps: journal.Tidy(steps)}
	if err := m.journal().Apply(r); err != nil {
		return err
	}
	how, every := running.RebootSignal(m.FS)
	if every {
		m.Report("Installed the kxboot fast reboot for %s: reboot, shutdown -r and systemctl reboot now go through kexec into the next kernel (see kxboot reboot --dry-run); poweroff and halt are unchanged.", mode)
	} else {
		m.Report("Installed the kxboot fast reboot for %s: kxboot reboot now goes through kexec into the next kernel (see kxboot reboot --dry-run); a plain reboot, poweroff and halt are unchanged.", mode)
	}
	m.Report("How this machine tells a reboot from a poweroff: %s.", how)
	m.Report("One reboot through the firmware: kxboot reboot --firmware. Undo it with: kxboot uninstall reboot")
	return nil
}

// confirmSteps are the steps of the confirmation service, which both jobs
// need and one install record holds: none when the other job's install
// placed it already.
func (m Machine) confirmSteps(running initsys.Init, c initsys.Context) ([]journal.Step, error) {
	steps, err := running.Confirm(c)
	if err != nil {
		return nil, err
	}
	if p := confirmFile(steps); p != "" && m.FS.Exists(p) && m.heldBy(p) != "" {
		return nil, nil
	}
	return steps, nil
}

// confirmFile is the file the confirmation steps write.
func confirmFile(steps []journal.Step) string {
	for _, s := range steps {
		if s.Kind == "file" {
			return s.Path
		}
	}
	return ""
}

// heldBy is the installed job whose record wrote the file p, or "".
func (m Machine) heldBy(p string) string {
	for _, job := range []string{journal.JobChain, journal.JobReboot} {
		r, err := journal.Read(m.FS, job)
		if err != nil || r == nil {
			continue
		}
		for _, s := range r.Steps {
			if s.Kind == "file" && s.Path == p && s.Done {
				return job
			}
		}
	}
	return ""
}

// handOver gives the confirmation service to the job that stays when the
// uninstalled one held it: its steps are planned again and added to that
// job's record.
func (m Machine) handOver(gone *journal.Record) error {
	other := otherJob(gone.Job)
	r, err := journal.Read(m.FS, other)
	if err != nil || r == nil {
		return err
	}
	running := initsys.Running(m.FS)
	steps, err := running.Confirm(m.context(r.Binary, ""))
	if err != nil {
		return err
	}
	p := confirmFile(steps)
	held := false
	for _, s := range gone.Steps {
		held = held || s.Kind == "file" && s.Path == p
	}
	if !held || m.FS.Exists(p) {
		return nil
	}
	if gone.MadeDir() && !r.MadeDir() {
		// The state directory goes with the last install, as it would
		// have with the one that made it.
		r.Steps = append([]journal.Step{{Kind: "dir", Path: journal.Dir, Done: true}}, r.Steps...)
	}
	r.Steps = append(r.Steps, steps...)
	if err := m.journal().Apply(r); err != nil {
		return fmt.Errorf("kxboot %s stays installed, but its confirmation service could not be put back: %w", other, err)
	}
	m.Report("kxboot %s stays installed and keeps its confirmation service (%s).", other, p)
	return nil
}

func otherJob(job string) string {
	if job == journal.JobChain {
		return journal.JobReboot
	}
	return journal.JobChain
}

// already checks a job's record before an install in mode: done when that
// mode is installed already, the error of other when another one is.
func (m Machine) already(job string, mode initsys.Name, other func(prev initsys.Name) error) (bool, error) {
	r, err := journal.Read(m.FS, job)
	if err != nil || r == nil {
		return false, err
	}
	if prev := initsys.Name(r.Mode); prev != mode {
		return false, other(prev)
	}
	return true, nil
}

// context is what the adapters plan from; kernelDir matters to the chain
// boot alone.
func (m Machine) context(bin, kernelDir string) initsys.Context {
	return initsys.Context{FS: m.FS, Binary: bin, KernelDir: kernelDir, Late: initsys.SeparateMount(m.FS, initsys.LateMounts...) != ""}
}

// preflight refuses what would not work, before anything changes.
func (m Machine) preflight(p initsys.Placement, c initsys.Context) error {
	if !path.IsAbs(c.Binary) || !m.FS.Exists(c.Binary) {
		return fmt.Errorf("the kxboot binary %q is not on this machine; install it first (install -m 0755 kxboot /usr/local/sbin/kxboot)", c.Binary)
	}
	if err := m.FS.Trusted(c.Binary); err != nil {
		return fmt.Errorf("refusing to boot through %s: %w", c.Binary, err)
	}
	return p.Preflight(c)
}

// configSteps write /etc/default/kxboot when it is absent: from the flags,
// or from a recipe's file the machine ran before (c, as config.Load read
// it, with its error).
func (m Machine) configSteps(o Options, c *config.Config, err error) ([]journal.Step, error) {
	if m.FS.Exists(config.Path) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	text := configFile(o.Kernel, o.Initrds, o.Append, config.DefaultAbortSeconds)
	if !o.Given && c.Path != "" {
		// Moving from a recipe: its settings become kxboot's.
		if text, err = config.Format(c); err != nil {
			return nil, err
		}
		m.Report("Taking the settings of %s into %s; its own init script, if still installed, should be disabled.", c.Path, config.Path)
	}
	return append(journal.Dirs(m.FS, path.Dir(config.Path)), journal.File(config.Path, 0o644, text)), nil
}

// Uninstall undoes what the records say was done: the fast reboot first,
// then the chain boot, each last step first. It is idempotent: steps
// already undone are recognised and passed over.
func (m Machine) Uninstall() error { return m.UninstallJobs(journal.JobReboot, journal.JobChain) }

// UninstallJobs undoes the named jobs' installs, in order.
func (m Machine) UninstallJobs(jobs ...string) error {
	any := false
	for _, job := range jobs {
		r, err := journal.Read(m.FS, job)
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		any = true
		if err := m.journal().Undo(r); err != nil {
			return err
		}
		if !slices.Contains(jobs, otherJob(job)) {
			if err := m.handOver(r); err != nil {
				return err
			}
		}
		m.forgetState(r)
	}
	if !any {
		if traces := m.traces(jobs); len(traces) > 0 {
			return fmt.Errorf("kxboot has no install record (%s), yet %s: kxboot did not install them or lost its record; remove them by hand, or restore /sbin/init from %s if that exists", journal.Path(jobs[0]), strings.Join(traces, "; "), initwrap.Original)
		}
		if len(jobs) == 1 {
			m.Report("kxboot's %s is not installed; nothing to undo.", jobs[0])
		} else {
			m.Report("kxboot is not installed; nothing to undo.")
		}
		return nil
	}
	m.Report("kxboot is uninstalled (%s); the next boot and reboot go as before the install.", strings.Join(jobs, ", "))
	return nil
}

// forgetState removes the try record and the history once no job is
// installed: without an install they mean nothing, and a later install
// starts afresh. The state directory goes too when an install made it.
func (m Machine) forgetState(r *journal.Record) {
	if journal.Installed(m.FS, journal.JobChain) || journal.Installed(m.FS, journal.JobReboot) {
		return
	}
	var state []string
	for _, p := range []string{tries.RecordPath, tries.HistoryPath} {
		state = append(append(state, m.FS.Path(p)), atomicfile.Leftovers(m.FS.Path(p))...)
	}
	for _, hp := range state {
		if err := os.Remove(hp); err == nil {
			m.Report("removed %s", m.FS.Unpath(hp))
		}
	}
	if r.MadeDir() {
		if err := os.Remove(m.FS.Path(journal.Dir)); err == nil {
			m.Report("removed %s/", journal.Dir)
		}
	}
}

// traces lists what an install would have left, for an uninstall that
// finds no record.
func (m Machine) traces(jobs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, job := range jobs {
		for _, p := range initsys.Placements() {
			for _, t := range p.Traces(job) {
				if _, err := os.Lstat(m.FS.Path(t)); err == nil && !seen[t] {
					seen[t] = true
					out = append(out, t+" exists")
				}
			}
		}
	}
	return out
}

// configFile is a new /etc/default/kxboot.
func configFile(kernel string, initrds []string, appendArgs string, abort int) string {
	var b strings.Builder
	b.WriteString(`# kxboot settings, read without a shell: write values out, no $ or backquotes.
# ENABLED=no stops the chain boot at the next boot without uninstalling.
ENABLED="yes"
# The kernel to hop into; empty means the newest installed kernel.
`)
	fmt.Fprintf(&b, "KERNEL=%s\n", config.Quote(kernel))
	b.WriteString("# Its initrds, in order (microcode first); empty means the ones found beside it.\n")
	fmt.Fprintf(&b, "INITRD=%s\n", config.Quote(strings.Join(initrds, " ")))
	b.WriteString("# Added to the running command line (CMDLINE= would replace it).\n")
	fmt.Fprintf(&b, "APPEND=%s\n", config.Quote(appendArgs))
	b.WriteString("# Seconds to wait for a key on the consoles before the hop; 0 skips the wait.\n")
	fmt.Fprintf(&b, "ABORT_SECONDS=\"%d\"\n", abort)
	fmt.Fprintf(&b, `# Unconfirmed hops in a row before kxboot stays on the provider's kernel
# (kxboot reset, or a change of kernel or command line, starts over).
MAX_TRIES="%d"
# A command that must succeed before kxboot mark-good confirms the hop,
# for example a ping of the gateway; empty confirms on reaching mark-good.
HEALTH_CMD=""
# Seconds after the hop to confirm, else the try failed: a firmware reboot.
HEALTH_DEADLINE="%d"
`, config.DefaultMaxTries, config.DefaultHealthDeadline)
	return b.String()
}
