// Package install puts kxboot into a machine's boot path and takes it out
// again exactly. Every change is a step recorded, before it is made, in
// /var/lib/kxboot/install.json; uninstall undoes the recorded steps in
// reverse and checks each against the machine, so that a second uninstall,
// or one after a crash half-way, finishes the job or says what it found,
// instead of guessing.
package install

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/atomicfile"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/initwrap"
	"github.com/kxboot/kxboot/internal/mounts"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/tries"
)

// Mode is how the chain boot is placed in the boot.
type Mode string

const (
	Auto     Mode = "auto"
	Wrapper  Mode = "wrapper" // kxboot stands in for /sbin/init
	Systemd  Mode = "systemd"
	Sysvinit Mode = "sysvinit"
	OpenRC   Mode = "openrc"
)

// Modes lists the modes a user can name.
var Modes = []Mode{Auto, Wrapper, Systemd, Sysvinit, OpenRC}

// Paths kxboot installs.
const (
	StateDir     = "/var/lib/kxboot"
	ManifestPath = StateDir + "/install.json"
	// RebootManifest records kxboot install reboot, which stands beside
	// the chain boot's install.
	RebootManifest = StateDir + "/install-reboot.json"
	SystemdUnit    = "/etc/systemd/system/kxboot-chain.service"
	SystemdWants   = "/etc/systemd/system/sysinit.target.wants"
	InitScript     = "/etc/init.d/kxboot-chain"
	OpenRCLink     = "/etc/runlevels/sysinit/kxboot-chain"
	OpenRCBoot     = "/etc/runlevels/boot/kxboot-chain"
	Init           = "/sbin/init"

	// The confirmation service, which runs kxboot mark-good at the end
	// of every boot, for the init that runs the machine.
	ConfirmUnit   = "/etc/systemd/system/kxboot-confirm.service"
	ConfirmWants  = "/etc/systemd/system/multi-user.target.wants"
	ConfirmScript = "/etc/init.d/kxboot-confirm"
	OpenRCConfirm = "/etc/runlevels/default/kxboot-confirm"
)

// lateMounts are the paths the chain needs before the hop: it reads the
// kernel under /boot and writes its try record under StateDir. When any is
// its own mount, the chain runs once the local file systems are mounted.
var lateMounts = []string{"/boot", "/var", "/var/lib", StateDir}

// stateMounts are the mounts the wrapper, which runs when only / is
// mounted, would write its try record beneath instead of into.
var stateMounts = []string{"/var", "/var/lib", StateDir}

// Runner runs the distribution's own tools (dpkg-divert, update-rc.d).
type Runner interface {
	Run(name string, args ...string) error
}

// Exec runs commands on the machine, chrooted when the root is not "/".
type Exec struct{ FS rootfs.FS }

func (e Exec) Run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if e.FS.Root != "/" && e.FS.Root != "" {
		cmd = exec.Command("chroot", append([]string{e.FS.Root, name}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Step is one recorded change.
type Step struct {
	// Kind: "file" (created with Content's hash), "link" (created,
	// pointing at Target), "dir" (created), "rename" (Path moved to
	// Target), "command" (Do run; Undo reverses it).
	Kind   string   `json:"kind"`
	Path   string   `json:"path,omitempty"`
	Target string   `json:"target,omitempty"`
	SHA256 string   `json:"sha256,omitempty"`
	Mode   uint32   `json:"mode,omitempty"`
	Do     []string `json:"do,omitempty"`
	Undo   []string `json:"undo,omitempty"`
	// Saved is, for "rcsnap", the sysvinit boot order as it was: each
	// /etc/rc?.d link and its target, each /etc/init.d/.depend.* and its text.
	Saved map[string]string `json:"saved,omitempty"`
	Done  bool              `json:"done"`

	content []byte // for "file": what to write
}

// Record is what an install did.
type Record struct {
	Job    string    `json:"job"` // "chain" or "reboot"
	Mode   Mode      `json:"mode"`
	Binary string    `json:"binary"`
	Time   time.Time `json:"time"`
	Steps  []Step    `json:"steps"`
}

// Options are the flags of kxboot install chain.
type Options struct {
	Mode    Mode
	Binary  string // in-machine path of the kxboot binary to run at boot
	Kernel  string
	Initrds []string
	Append  string
	// Given says whether any of Kernel, Initrds, Append was set.
	Given bool
}

// Machine is what install works on.
type Machine struct {
	FS     rootfs.FS
	Run    Runner
	Report func(format string, args ...any) // what was done, for people
}

// Jobs are what kxboot installs, each with its own record.
const (
	JobChain  = "chain"
	JobReboot = "reboot"
)

// manifest is the record file of a job.
func manifest(job string) string {
	if job == JobReboot {
		return RebootManifest
	}
	return ManifestPath
}

// ReadRecord reads the chain boot's install record; nil when it is not
// installed.
func ReadRecord(fsys rootfs.FS) (*Record, error) { return ReadJob(fsys, JobChain) }

// ReadJob reads a job's install record; nil when it is not installed.
func ReadJob(fsys rootfs.FS, job string) (*Record, error) {
	p := manifest(job)
	b, err := fsys.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v); remove what it lists by hand, then remove it", p, err)
	}
	return &r, nil
}

func (m Machine) save(r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(m.FS.Path(manifest(r.Job)), append(b, '\n'), 0o644)
}

// RunningInit says which init system runs the machine now.
func RunningInit(fsys rootfs.FS) Mode {
	switch {
	case fsys.Exists("/run/systemd/system"):
		return Systemd
	case fsys.Exists("/run/openrc"):
		return OpenRC
	}
	return Sysvinit
}

// hasDpkg says whether the machine's packages are dpkg's, so that
// dpkg-divert can keep /sbin/init ours across init package upgrades.
func hasDpkg(fsys rootfs.FS) bool {
	return fsys.Exists("/var/lib/dpkg/status") && (fsys.Exists("/usr/bin/dpkg-divert") || fsys.Exists("/bin/dpkg-divert"))
}

// ChooseMode resolves auto: the earliest mode that stays safe. The wrapper
// runs before any service, but only dpkg-divert keeps it in place when the
// init package is upgraded, and it cannot write its try record to a
// separate /var; elsewhere the service of the running init is the safe
// choice.
func ChooseMode(fsys rootfs.FS, want Mode) Mode {
	if want != Auto && want != "" {
		return want
	}
	if hasDpkg(fsys) && separateMount(fsys, stateMounts...) == "" {
		return Wrapper
	}
	return RunningInit(fsys)
}

// rcOrder reads the sysvinit boot order: every link of /etc/rc?.d with its
// target, and the text of insserv's /etc/init.d/.depend.* files.
func rcOrder(fsys rootfs.FS) map[string]string {
	out := map[string]string{}
	links, _ := fsys.Glob("/etc/rc?.d/*")
	for _, l := range links {
		if t, err := os.Readlink(fsys.Path(l)); err == nil {
			out[l] = "link:" + t
		}
	}
	deps, _ := fsys.Glob("/etc/init.d/.depend.*")
	for _, d := range deps {
		if b, err := fsys.ReadFile(d); err == nil {
			out[d] = "file:" + string(b)
		}
	}
	return out
}

// scripts is the set of rc entries by directory and target, numbers aside.
func scripts(order map[string]string) map[string]bool {
	set := map[string]bool{}
	for p, v := range order {
		if strings.HasPrefix(v, "link:") {
			set[path.Dir(p)+" "+v] = true
		}
	}
	return set
}

// restoreOrder puts the saved boot order back when the scripts are the same
// ones and only their numbers differ (what insserv's renumbering leaves);
// when another package added or removed a script since, insserv's order
// stays and the report says so.
func (m Machine) restoreOrder(saved map[string]string) {
	now := rcOrder(m.FS)
	a, b := scripts(saved), scripts(now)
	same := len(a) == len(b)
	for k := range a {
		same = same && b[k]
	}
	if !same {
		m.Report("the sysvinit boot order changed since install (scripts were added or removed); left /etc/rc?.d as insserv made it")
		return
	}
	for p, v := range now {
		if saved[p] != v && strings.HasPrefix(v, "link:") {
			os.Remove(m.FS.Path(p))
		}
	}
	changed := false
	for p, v := range saved {
		if now[p] == v {
			continue
		}
		changed = true
		if t, ok := strings.CutPrefix(v, "link:"); ok {
			os.Symlink(t, m.FS.Path(p))
		} else if text, ok := strings.CutPrefix(v, "file:"); ok {
			atomicfile.Write(m.FS.Path(p), []byte(text), 0o644)
		}
	}
	if changed {
		m.Report("put the sysvinit boot order back as it was before the install (insserv had renumbered it)")
	}
}

// sameDevice says whether two in-machine paths are on one file system.
func sameDevice(fsys rootfs.FS, a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(fsys.Path(a), &sa) != nil || unix.Stat(fsys.Path(b), &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}

// separateMount returns the first of the in-machine paths that is its own
// mount, or "" when all of them are on the root file system.
func separateMount(fsys rootfs.FS, points ...string) string {
	ms, _ := mounts.List(fsys)
	for _, p := range points {
		for _, m := range ms {
			if m.Point == p {
				return p
			}
		}
	}
	return ""
}

// Chain installs the chain boot. A second install of the same mode changes
// nothing.
func (m Machine) Chain(o Options) error {
	mode := ChooseMode(m.FS, o.Mode)
	prev, err := ReadRecord(m.FS)
	if err != nil {
		return err
	}
	if prev != nil {
		if prev.Job == "chain" && prev.Mode == mode {
			m.Report("kxboot chain boot is already installed in %s mode; nothing changed.", mode)
			return nil
		}
		return fmt.Errorf("kxboot's chain boot is already installed in %s mode (recorded in %s); run kxboot uninstall chain first", prev.Mode, ManifestPath)
	}
	if err := m.preflight(mode, o); err != nil {
		return err
	}
	steps, err := m.plan(mode, o)
	if err != nil {
		return err
	}
	r := &Record{Job: JobChain, Mode: mode, Binary: o.Binary, Time: time.Now().UTC(), Steps: steps}
	if err := m.apply(r); err != nil {
		return err
	}
	m.Report("Installed the kxboot chain boot in %s mode. At every boot the machine now hops into the configured kernel (%s); see kxboot chain --dry-run.", mode, config.Path)
	m.Report("At the end of each boot through kxboot, kxboot mark-good (kxboot-confirm, run by %s) confirms the kernel as good.", RunningInit(m.FS))
	m.Report("Undo it all with: kxboot uninstall")
	return nil
}

// apply makes the recorded steps, writing the record before each change,
// so that a crash leaves nothing done that uninstall does not know of.
func (m Machine) apply(r *Record) error {
	// A file or link in the way is found before anything changes (the
	// wrapper's /sbin/init is moved aside by an earlier step).
	for _, s := range r.Steps {
		if _, err := os.Lstat(m.FS.Path(s.Path)); err == nil && (s.Kind == "file" || s.Kind == "link" && s.Path != Init) {
			return fmt.Errorf("%s exists already; kxboot will not overwrite it: move it away (or remove it if it is a left-over of kxboot), then install again", s.Path)
		}
	}
	if !m.FS.Exists(StateDir) {
		if err := os.MkdirAll(m.FS.Path(StateDir), 0o755); err != nil {
			return err
		}
		r.Steps = append([]Step{{Kind: "dir", Path: StateDir, Done: true}}, r.Steps...)
	}
	for i := range r.Steps {
		if r.Steps[i].Done {
			continue
		}
		if err := m.save(r); err != nil {
			return fmt.Errorf("cannot write %s: %w", manifest(r.Job), err)
		}
		if err := m.do(&r.Steps[i]); err != nil {
			m.save(r)
			return fmt.Errorf("%w; what was done so far is undone by kxboot uninstall", err)
		}
		r.Steps[i].Done = true
	}
	return m.save(r)
}

// preflight refuses what would not work, before anything changes.
func (m Machine) preflight(mode Mode, o Options) error {
	if !path.IsAbs(o.Binary) || !m.FS.Exists(o.Binary) {
		return fmt.Errorf("the kxboot binary %q is not on this machine; install it first (install -m 0755 kxboot /usr/local/sbin/kxboot)", o.Binary)
	}
	if err := m.FS.Trusted(o.Binary); err != nil {
		return fmt.Errorf("refusing to boot through %s: %w", o.Binary, err)
	}
	if o.Given && m.FS.Exists(config.Path) {
		return fmt.Errorf("%s exists already; edit KERNEL, INITRD and APPEND there instead of passing them to install", config.Path)
	}
	switch mode {
	case Wrapper:
		if m.FS.Exists(initwrap.Original) {
			return fmt.Errorf("%s exists: an earlier wrapper install was not undone; restore /sbin/init from it by hand (or reinstall the init package), then install again", initwrap.Original)
		}
		if !m.FS.Exists(Init) {
			return fmt.Errorf("%s does not exist, so there is no init to wrap; choose --mode systemd, sysvinit or openrc", Init)
		}
		// The kernel mounts only the root before it starts init: a
		// binary on another file system (a separate /usr) would leave
		// /sbin/init pointing at nothing.
		if !sameDevice(m.FS, o.Binary, "/") {
			return fmt.Errorf("%s is not on the root file system, which is all the kernel has mounted when it starts /sbin/init; copy kxboot to /sbin/kxboot and install with --binary /sbin/kxboot, or choose a service mode", o.Binary)
		}
		// Likewise the try record the chain writes before the hop.
		if p := separateMount(m.FS, stateMounts...); p != "" {
			return fmt.Errorf("%s is a separate mount, and the wrapper runs before anything but / is mounted, so the try record it writes to %s would land under the mount point; choose --mode systemd, sysvinit or openrc", p, StateDir)
		}
	case Systemd:
		if !m.FS.Exists("/lib/systemd/systemd") && !m.FS.Exists("/usr/lib/systemd/systemd") {
			return fmt.Errorf("systemd is not installed here; choose --mode %s", RunningInit(m.FS))
		}
	case Sysvinit:
		if !m.FS.Exists("/etc/init.d") {
			return fmt.Errorf("there is no /etc/init.d here; choose --mode %s", RunningInit(m.FS))
		}
	case OpenRC:
		if !m.FS.Exists("/sbin/openrc-run") && !m.FS.Exists("/usr/sbin/openrc-run") {
			return fmt.Errorf("OpenRC is not installed here (no openrc-run); choose --mode %s", RunningInit(m.FS))
		}
	default:
		return fmt.Errorf("unknown mode %q: use auto, wrapper, systemd, sysvinit or openrc", mode)
	}
	// The confirmation service goes to the running init whatever the mode.
	if RunningInit(m.FS) == Sysvinit && !m.FS.Exists("/etc/init.d") {
		return fmt.Errorf("there is no /etc/init.d here for %s, which confirms each boot through kxboot, and no systemd or OpenRC runs the machine; kxboot can confirm boots only under systemd, sysvinit or OpenRC", ConfirmScript)
	}
	return nil
}

func fileStep(p string, mode uint32, content string) Step {
	sum := sha256.Sum256([]byte(content))
	return Step{Kind: "file", Path: p, Mode: mode, SHA256: hex.EncodeToString(sum[:]), content: []byte(content)}
}

// plan lists the steps of an install.
func (m Machine) plan(mode Mode, o Options) ([]Step, error) {
	var steps []Step
	if !m.FS.Exists(config.Path) {
		c, err := config.Load(m.FS)
		if err != nil {
			return nil, err
		}
		kernel, initrds, appendArgs := o.Kernel, o.Initrds, o.Append
		if !o.Given && c.Path != "" {
			// Moving from a recipe: its settings become kxboot's.
			text, err := config.Format(c)
			if err != nil {
				return nil, err
			}
			steps = append(steps, m.dirs(path.Dir(config.Path))...)
			steps = append(steps, fileStep(config.Path, 0o644, text))
			m.Report("Taking the settings of %s into %s; its own init script, if still installed, should be disabled.", c.Path, config.Path)
		} else {
			steps = append(steps, m.dirs(path.Dir(config.Path))...)
			steps = append(steps, fileStep(config.Path, 0o644, configFile(kernel, initrds, appendArgs, config.DefaultAbortSeconds)))
		}
	}
	steps = append(steps, m.confirm(o.Binary)...)
	sep := separateMount(m.FS, lateMounts...) != ""
	switch mode {
	case Wrapper:
		if hasDpkg(m.FS) {
			steps = append(steps, Step{Kind: "command",
				Do:   []string{"dpkg-divert", "--package", "kxboot", "--divert", initwrap.Original, "--rename", "--add", Init},
				Undo: []string{"dpkg-divert", "--package", "kxboot", "--divert", initwrap.Original, "--rename", "--remove", Init}})
		} else {
			steps = append(steps, Step{Kind: "rename", Path: Init, Target: initwrap.Original})
		}
		steps = append(steps, Step{Kind: "link", Path: Init, Target: o.Binary})
	case Systemd:
		dir := "/boot"
		if c, err := config.Load(m.FS); err == nil && c.Kernel != "" {
			dir = path.Dir(c.Kernel)
		} else if o.Kernel != "" {
			dir = path.Dir(o.Kernel)
		}
		steps = append(steps, fileStep(SystemdUnit, 0o644, systemdUnit(o.Binary, dir)))
		steps = append(steps, m.dirs(SystemdWants)...)
		steps = append(steps, Step{Kind: "link", Path: SystemdWants + "/kxboot-chain.service", Target: SystemdUnit})
	case Sysvinit:
		// Debian's rc runs the scripts insserv knows (its .depend files),
		// so the script must go through update-rc.d.
		steps = append(steps, fileStep(InitScript, 0o755, sysvinitScript(o.Binary, sep)))
		steps = append(steps, updateRC("kxboot-chain"))
	case OpenRC:
		steps = append(steps, fileStep(InitScript, 0o755, openrcScript(o.Binary, sep)))
		link := OpenRCLink
		if sep {
			link = OpenRCBoot
		}
		steps = append(steps, m.dirs(path.Dir(link))...)
		steps = append(steps, Step{Kind: "link", Path: link, Target: InitScript})
	}
	return tidy(steps), nil
}

// confirm lists the steps of the service that runs kxboot mark-good at the
// end of every boot. It belongs to the init that runs the machine, in
// wrapper mode too (the wrapper is only PID 1's first moment), and comes
// before the chain boot's own steps, so that no hop is installed without
// its confirmation.
func (m Machine) confirm(bin string) []Step {
	var steps []Step
	switch RunningInit(m.FS) {
	case Systemd:
		steps = append(steps, m.dirs(path.Dir(ConfirmUnit))...)
		steps = append(steps, fileStep(ConfirmUnit, 0o644, confirmUnit(bin, hasBootComplete(m.FS))))
		steps = append(steps, m.dirs(ConfirmWants)...)
		steps = append(steps, Step{Kind: "link", Path: ConfirmWants + "/kxboot-confirm.service", Target: ConfirmUnit})
	case Sysvinit:
		steps = append(steps, fileStep(ConfirmScript, 0o755, sysvinitConfirmScript(bin)))
		steps = append(steps, updateRC("kxboot-confirm"))
	case OpenRC:
		steps = append(steps, fileStep(ConfirmScript, 0o755, openrcConfirmScript(bin)))
		steps = append(steps, m.dirs(path.Dir(OpenRCConfirm))...)
		steps = append(steps, Step{Kind: "link", Path: OpenRCConfirm, Target: ConfirmScript})
	}
	return steps
}

// hasBootComplete says whether systemd knows boot-complete.target (240 and
// later).
func hasBootComplete(fsys rootfs.FS) bool {
	for _, d := range []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"} {
		if fsys.Exists(d + "/boot-complete.target") {
			return true
		}
	}
	return false
}

// updateRC registers an init script with update-rc.d.
func updateRC(name string) Step {
	return Step{Kind: "command",
		Do:   []string{"update-rc.d", name, "defaults"},
		Undo: []string{"update-rc.d", "-f", name, "remove"}}
}

// tidy drops the directories planned twice (the chain's and the
// confirmation's steps each plan the missing parents they need) and saves
// the sysvinit boot order once, before the first update-rc.d: insserv
// renumbers other scripts' links when one is added and does not number them
// back on removal, so the order is put back exactly at uninstall, after
// every script of kxboot is gone.
func tidy(steps []Step) []Step {
	var out []Step
	dirs := map[string]bool{}
	snapped := false
	for _, s := range steps {
		if s.Kind == "dir" {
			if dirs[s.Path] {
				continue
			}
			dirs[s.Path] = true
		}
		if s.Kind == "command" && s.Do[0] == "update-rc.d" && !snapped {
			out = append(out, Step{Kind: "rcsnap", Path: "/etc"})
			snapped = true
		}
		out = append(out, s)
	}
	return out
}

// dirs are the steps that create p and its missing parents, outermost first.
func (m Machine) dirs(p string) []Step {
	var missing []string
	for d := p; d != "/" && !m.FS.Exists(d); d = path.Dir(d) {
		missing = append([]string{d}, missing...)
	}
	var steps []Step
	for _, d := range missing {
		steps = append(steps, Step{Kind: "dir", Path: d})
	}
	return steps
}

// do makes one change.
func (m Machine) do(s *Step) error {
	hp := m.FS.Path(s.Path)
	switch s.Kind {
	case "dir":
		if err := os.Mkdir(hp, 0o755); err != nil {
			return fmt.Errorf("cannot create %s: %w", s.Path, err)
		}
		m.Report("created %s/", s.Path)
	case "file":
		if _, err := os.Lstat(hp); err == nil {
			return fmt.Errorf("%s exists already; kxboot will not overwrite it", s.Path)
		}
		if err := atomicfile.Write(hp, s.content, fs.FileMode(s.Mode)); err != nil {
			return fmt.Errorf("cannot write %s: %w", s.Path, err)
		}
		m.Report("created %s", s.Path)
	case "link":
		if err := os.Symlink(s.Target, hp); err != nil {
			return fmt.Errorf("cannot link %s to %s: %w", s.Path, s.Target, err)
		}
		m.Report("linked %s -> %s", s.Path, s.Target)
	case "rename":
		if err := os.Rename(hp, m.FS.Path(s.Target)); err != nil {
			return fmt.Errorf("cannot move %s to %s: %w", s.Path, s.Target, err)
		}
		m.Report("moved %s to %s", s.Path, s.Target)
	case "rcsnap":
		s.Saved = rcOrder(m.FS)
	case "command":
		if err := m.Run.Run(s.Do[0], s.Do[1:]...); err != nil {
			return err
		}
		m.Report("ran %s", strings.Join(s.Do, " "))
	}
	return nil
}

// Uninstall undoes what the records say was done: the fast reboot first,
// then the chain boot, each last step first. It is idempotent: steps
// already undone are recognised and passed over.
func (m Machine) Uninstall() error { return m.UninstallJobs(JobReboot, JobChain) }

// UninstallJobs undoes the named jobs' installs, in order.
func (m Machine) UninstallJobs(jobs ...string) error {
	any := false
	for _, job := range jobs {
		r, err := ReadJob(m.FS, job)
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		any = true
		if err := m.undoJob(r); err != nil {
			return err
		}
	}
	if !any {
		if traces := m.traces(jobs); len(traces) > 0 {
			return fmt.Errorf("kxboot has no install record (%s), yet %s: kxboot did not install them or lost its record; remove them by hand, or restore /sbin/init from %s if that exists", manifest(jobs[0]), strings.Join(traces, "; "), initwrap.Original)
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

// undoJob undoes one record's steps, last first, then removes the record.
func (m Machine) undoJob(r *Record) error {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		s := &r.Steps[i]
		if s.Kind == "dir" && s.Path == StateDir {
			continue // holds the record itself: last
		}
		if !s.Done && !m.inPlace(s) {
			continue // never done: a crash came before it
		}
		if err := m.undo(s); err != nil {
			m.save(r)
			return err
		}
		s.Done = false
		if err := m.save(r); err != nil {
			return err
		}
	}
	if err := os.Remove(m.FS.Path(manifest(r.Job))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	chain, _ := ReadJob(m.FS, JobChain)
	reboot, _ := ReadJob(m.FS, JobReboot)
	if chain == nil && reboot == nil {
		// The try record and the history belong to the install:
		// without it they mean nothing, and a later install starts
		// afresh.
		var state []string
		for _, p := range []string{tries.RecordPath, tries.HistoryPath} {
			state = append(append(state, m.FS.Path(p)), atomicfile.Leftovers(m.FS.Path(p))...)
		}
		for _, hp := range state {
			if err := os.Remove(hp); err == nil {
				m.Report("removed %s", m.FS.Unpath(hp))
			}
		}
	}
	for _, s := range r.Steps {
		if s.Kind == "dir" && s.Path == StateDir {
			if err := os.Remove(m.FS.Path(StateDir)); err == nil {
				m.Report("removed %s/", StateDir)
			}
		}
	}
	return nil
}

// inPlace says whether a step that the record does not mark done was done
// all the same (a crash between the change and the record).
func (m Machine) inPlace(s *Step) bool {
	hp := m.FS.Path(s.Path)
	switch s.Kind {
	case "dir":
		_, err := os.Lstat(hp)
		return err == nil
	case "file":
		return m.sameFile(s) // a different file there was not kxboot's
	case "link":
		t, err := os.Readlink(hp)
		return err == nil && t == s.Target
	case "rename":
		_, err := os.Lstat(m.FS.Path(s.Target))
		return err == nil
	case "command":
		return true // the undo commands are safe to run when nothing is there
	case "rcsnap":
		return s.Saved != nil
	}
	return false
}

func (m Machine) sameFile(s *Step) bool {
	b, err := os.ReadFile(m.FS.Path(s.Path))
	if err != nil {
		return false
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]) == s.SHA256
}

// undo reverses one step, or says why it cannot.
func (m Machine) undo(s *Step) error {
	hp := m.FS.Path(s.Path)
	switch s.Kind {
	case "file":
		if _, err := os.Lstat(hp); errors.Is(err, fs.ErrNotExist) {
			m.Report("%s is already gone", s.Path)
			return nil
		}
		if !m.sameFile(s) {
			// The owner changed it: keep their work beside, not in place.
			saved := s.Path + ".kxboot-saved"
			if err := os.Rename(hp, m.FS.Path(saved)); err != nil {
				return fmt.Errorf("cannot move the edited %s aside: %w", s.Path, err)
			}
			m.Report("%s was edited after install; kept as %s", s.Path, saved)
			return nil
		}
		if err := os.Remove(hp); err != nil {
			return fmt.Errorf("cannot remove %s: %w", s.Path, err)
		}
		m.Report("removed %s", s.Path)
	case "link":
		t, err := os.Readlink(hp)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			m.Report("%s is already gone", s.Path)
			return nil
		case err != nil || t != s.Target:
			return fmt.Errorf("%s is no longer kxboot's link to %s (something replaced it, a package upgrade perhaps); kxboot leaves it: check it, remove it if it is not needed, then run kxboot uninstall again", s.Path, s.Target)
		}
		if err := os.Remove(hp); err != nil {
			return fmt.Errorf("cannot remove %s: %w", s.Path, err)
		}
		m.Report("removed %s", s.Path)
	case "dir":
		if err := os.Remove(hp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.Report("left %s/ in place: it is not empty", s.Path)
			return nil
		}
		m.Report("removed %s/", s.Path)
	case "rename":
		if _, err := os.Lstat(m.FS.Path(s.Target)); errors.Is(err, fs.ErrNotExist) {
			m.Report("%s is already back", s.Path)
			return nil
		}
		if _, err := os.Lstat(hp); err == nil {
			return fmt.Errorf("both %s and %s exist (an init package upgrade put a new %s in place?); kxboot does not choose between them: keep one, remove the other, then run kxboot uninstall again", s.Path, s.Target, s.Path)
		}
		if err := os.Rename(m.FS.Path(s.Target), hp); err != nil {
			return fmt.Errorf("cannot move %s back to %s: %w", s.Target, s.Path, err)
		}
		m.Report("moved %s back to %s", s.Target, s.Path)
	case "rcsnap":
		m.restoreOrder(s.Saved)
	case "command":
		if err := m.Run.Run(s.Undo[0], s.Undo[1:]...); err != nil {
			return err
		}
		m.Report("ran %s", strings.Join(s.Undo, " "))
	}
	return nil
}

// traces lists what an install would have left, for an uninstall that
// finds no record.
func (m Machine) traces(jobs []string) []string {
	var out []string
	var paths []string
	for _, job := range jobs {
		if job == JobChain {
			paths = append(paths, SystemdUnit, InitScript, OpenRCLink, OpenRCBoot, ConfirmUnit, ConfirmWants+"/kxboot-confirm.service", ConfirmScript, OpenRCConfirm, initwrap.Original)
		} else {
			paths = append(paths, rebootPaths...)
		}
	}
	for _, p := range paths {
		if _, err := os.Lstat(m.FS.Path(p)); err == nil {
			out = append(out, p+" exists")
		}
	}
	return out
}

// WrapperIntact says, for a wrapper install, whether /sbin/init still
// leads to kxboot; a package upgrade that replaced it (without dpkg-divert)
// turns the chain boot off silently otherwise.
func WrapperIntact(fsys rootfs.FS, r *Record) (bool, string) {
	if r == nil || r.Mode != Wrapper {
		return true, ""
	}
	t, err := os.Readlink(fsys.Path(Init))
	if err != nil || t != r.Binary {
		return false, fmt.Sprintf("%s no longer leads to %s (an init package upgrade replaced it?); the chain boot does not run: kxboot uninstall, then kxboot install chain", Init, r.Binary)
	}
	return true, ""
}
