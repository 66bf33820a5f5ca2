// Package journal makes changes to a machine as recorded steps, and undoes
// them exactly. Every step is written to the job's record before it is
// made, so that a crash half-way leaves nothing done that the record does
// not name; undo reverses the recorded steps last first and checks each
// against the machine, so that a second undo, or one after a crash, finishes
// the job or says what it found, instead of guessing. The package knows
// files, links, directories, renames, commands and the sysvinit boot
// order; what to change is the init adapters' business (package initsys).
package journal

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
	"slices"
	"strings"
	"time"

	"github.com/kxboot/kxboot/internal/atomicfile"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/tries"
)

// The jobs kxboot installs, each with its own record.
const (
	JobChain  = "chain"
	JobReboot = "reboot"
)

// Dir holds the records, beside the try record and the history.
const Dir = tries.Dir

// Path is the record file of a job: install.json for the chain boot,
// install-<job>.json for the others.
func Path(job string) string {
	if job == JobChain {
		return Dir + "/install.json"
	}
	return Dir + "/install-" + job + ".json"
}

// Step is one recorded change.
type Step struct {
	// Kind: "file" (created with Content's hash), "link" (created,
	// pointing at Target), "dir" (created), "rename" (Path moved to
	// Target), "command" (Do run; Undo reverses it; either may be
	// empty), "line" (the line Target put into the file Path before its
	// first line that starts with Before, or at its end; undo takes that
	// line out again), "rcsnap" (the sysvinit boot order saved, put back
	// at undo).
	Kind   string   `json:"kind"`
	Path   string   `json:"path,omitempty"`
	Target string   `json:"target,omitempty"`
	SHA256 string   `json:"sha256,omitempty"`
	Mode   uint32   `json:"mode,omitempty"`
	Do     []string `json:"do,omitempty"`
	Undo   []string `json:"undo,omitempty"`
	Before string   `json:"before,omitempty"`
	// Saved is, for "rcsnap", the sysvinit boot order as it was: each
	// /etc/rc?.d link and its target, each /etc/init.d/.depend.* and its text.
	Saved map[string]string `json:"saved,omitempty"`
	Done  bool              `json:"done"`

	content []byte // for "file": what to write
}

// File is the step that creates the file p with content.
func File(p string, mode uint32, content string) Step {
	sum := sha256.Sum256([]byte(content))
	return Step{Kind: "file", Path: p, Mode: mode, SHA256: hex.EncodeToString(sum[:]), content: []byte(content)}
}

// Link is the step that creates the symbolic link p to target.
func Link(p, target string) Step { return Step{Kind: "link", Path: p, Target: target} }

// Rename is the step that moves p to target.
func Rename(p, target string) Step { return Step{Kind: "rename", Path: p, Target: target} }

// Command is the step that runs do, undone by running undo; a nil do or
// undo runs nothing (a reload that must come after a change, or be undone
// after its undo, is planned as two steps).
func Command(do, undo []string) Step { return Step{Kind: "command", Do: do, Undo: undo} }

// Line is the step that puts line into the file p before its first line
// that starts with before ("" or none: at its end).
func Line(p, line, before string) Step {
	return Step{Kind: "line", Path: p, Target: line, Before: before}
}

// SaveBootOrder is the step that saves the sysvinit boot order, to put it
// back at undo (see rcorder.go). Plan it before every update-rc.d: Tidy
// keeps the first.
func SaveBootOrder() Step { return Step{Kind: "rcsnap", Path: "/etc"} }

// Dirs are the steps that create p and its missing parents, outermost first.
func Dirs(fsys rootfs.FS, p string) []Step {
	var missing []string
	for d := p; d != "/" && !fsys.Exists(d); d = path.Dir(d) {
		missing = append([]string{d}, missing...)
	}
	var steps []Step
	for _, d := range missing {
		steps = append(steps, Step{Kind: "dir", Path: d})
	}
	return steps
}

// Tidy drops the directories planned twice (each part of an install plans
// the missing parents it needs) and every boot-order snapshot but the
// first: insserv renumbers other scripts' links when one is added and does
// not number them back on removal, so the order as it was before the first
// update-rc.d is put back at undo, after every script of kxboot is gone.
func Tidy(steps []Step) []Step {
	var out []Step
	seen := map[string]bool{}
	for _, s := range steps {
		if s.Kind == "dir" || s.Kind == "rcsnap" {
			if seen[s.Kind+" "+s.Path] {
				continue
			}
			seen[s.Kind+" "+s.Path] = true
		}
		out = append(out, s)
	}
	return out
}

// Record is what an install did.
type Record struct {
	Job    string    `json:"job"`  // JobChain or JobReboot
	Mode   string    `json:"mode"` // the init adapter's name
	Binary string    `json:"binary"`
	Time   time.Time `json:"time"`
	Steps  []Step    `json:"steps"`
}

// Read reads a job's record; nil when the job is not installed.
func Read(fsys rootfs.FS, job string) (*Record, error) {
	p := Path(job)
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

// Installed says whether a job's record is there and readable.
func Installed(fsys rootfs.FS, job string) bool {
	r, err := Read(fsys, job)
	return err == nil && r != nil
}

// Runner runs the distribution's own tools (dpkg-divert, update-rc.d,
// systemctl).
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

// Journal makes and undoes the steps of records on a machine.
type Journal struct {
	FS     rootfs.FS
	Run    Runner
	Report func(format string, args ...any) // what was done, for people
}

func (j Journal) save(r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(j.FS.Path(Path(r.Job)), append(b, '\n'), 0o644)
}

// Apply makes the record's steps, writing the record before each change.
// A file or link in the way is found before anything changes; keep names
// the steps themselves move aside (the wrapper's /sbin/init) in movedFirst.
func (j Journal) Apply(r *Record, movedFirst ...string) error {
	for _, s := range r.Steps {
		if s.Done {
			continue // an earlier Apply of this record made it
		}
		if _, err := os.Lstat(j.FS.Path(s.Path)); err == nil && (s.Kind == "file" || s.Kind == "link" && !slices.Contains(movedFirst, s.Path)) {
			return fmt.Errorf("%s exists already; kxboot will not overwrite it: move it away (or remove it if it is a left-over of kxboot), then install again", s.Path)
		}
	}
	if !j.FS.Exists(Dir) {
		if err := os.MkdirAll(j.FS.Path(Dir), 0o755); err != nil {
			return err
		}
		r.Steps = append([]Step{{Kind: "dir", Path: Dir, Done: true}}, r.Steps...)
	}
	for i := range r.Steps {
		if r.Steps[i].Done {
			continue
		}
		if err := j.save(r); err != nil {
			return fmt.Errorf("cannot write %s: %w", Path(r.Job), err)
		}
		if err := j.do(&r.Steps[i]); err != nil {
			j.save(r)
			return fmt.Errorf("%w; what was done so far is undone by kxboot uninstall", err)
		}
		r.Steps[i].Done = true
	}
	return j.save(r)
}

// do makes one change.
func (j Journal) do(s *Step) error {
	hp := j.FS.Path(s.Path)
	switch s.Kind {
	case "dir":
		if err := os.Mkdir(hp, 0o755); err != nil {
			return fmt.Errorf("cannot create %s: %w", s.Path, err)
		}
		j.Report("created %s/", s.Path)
	case "file":
		if _, err := os.Lstat(hp); err == nil {
			return fmt.Errorf("%s exists already; kxboot will not overwrite it", s.Path)
		}
		if err := atomicfile.Write(hp, s.content, fs.FileMode(s.Mode)); err != nil {
			return fmt.Errorf("cannot write %s: %w", s.Path, err)
		}
		j.Report("created %s", s.Path)
	case "link":
		if err := os.Symlink(s.Target, hp); err != nil {
			return fmt.Errorf("cannot link %s to %s: %w", s.Path, s.Target, err)
		}
		j.Report("linked %s -> %s", s.Path, s.Target)
	case "rename":
		if err := os.Rename(hp, j.FS.Path(s.Target)); err != nil {
			return fmt.Errorf("cannot move %s to %s: %w", s.Path, s.Target, err)
		}
		j.Report("moved %s to %s", s.Path, s.Target)
	case "rcsnap":
		s.Saved = bootOrder(j.FS)
	case "command":
		if len(s.Do) == 0 {
			return nil
		}
		if err := j.Run.Run(s.Do[0], s.Do[1:]...); err != nil {
			return err
		}
		j.Report("ran %s", strings.Join(s.Do, " "))
	case "line":
		if err := j.editLines(s.Path, func(lines []string) []string { return insertLine(lines, s.Target, s.Before) }); err != nil {
			return err
		}
		j.Report("added %q to %s", s.Target, s.Path)
	}
	return nil
}

// Undo reverses a record's steps, last first, saving the record after each,
// then removes the record. The directory that holds the records is left:
// the caller removes it once no job is installed.
func (j Journal) Undo(r *Record) error {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		s := &r.Steps[i]
		if s.Kind == "dir" && s.Path == Dir {
			continue // holds the record itself: last
		}
		if !s.Done && !j.inPlace(s) {
			continue // never done: a crash came before it
		}
		if err := j.undo(s); err != nil {
			j.save(r)
			return err
		}
		s.Done = false
		if err := j.save(r); err != nil {
			return err
		}
	}
	if err := os.Remove(j.FS.Path(Path(r.Job))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// MadeDir says whether the record created the directory of the records.
func (r *Record) MadeDir() bool {
	for _, s := range r.Steps {
		if s.Kind == "dir" && s.Path == Dir {
			return true
		}
	}
	return false
}

// inPlace says whether a step that the record does not mark done was done
// all the same (a crash between the change and the record).
func (j Journal) inPlace(s *Step) bool {
	hp := j.FS.Path(s.Path)
	switch s.Kind {
	case "dir":
		_, err := os.Lstat(hp)
		return err == nil
	case "file":
		return j.sameFile(s) // a different file there was not kxboot's
	case "link":
		t, err := os.Readlink(hp)
		return err == nil && t == s.Target
	case "rename":
		_, err := os.Lstat(j.FS.Path(s.Target))
		return err == nil
	case "command":
		return true // the undo commands are safe to run when nothing is there
	case "line":
		b, err := os.ReadFile(hp)
		return err == nil && slices.Contains(strings.Split(string(b), "\n"), s.Target)
	case "rcsnap":
		return s.Saved != nil
	}
	return false
}

func (j Journal) sameFile(s *Step) bool {
	b, err := os.ReadFile(j.FS.Path(s.Path))
	if err != nil {
		return false
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]) == s.SHA256
}

// undo reverses one step, or says why it cannot.
func (j Journal) undo(s *Step) error {
	hp := j.FS.Path(s.Path)
	switch s.Kind {
	case "file":
		if _, err := os.Lstat(hp); errors.Is(err, fs.ErrNotExist) {
			j.Report("%s is already gone", s.Path)
			return nil
		}
		if !j.sameFile(s) {
			// The owner changed it: keep their work beside, not in place.
			saved := s.Path + ".kxboot-saved"
			if err := os.Rename(hp, j.FS.Path(saved)); err != nil {
				return fmt.Errorf("cannot move the edited %s aside: %w", s.Path, err)
			}
			j.Report("%s was edited after install; kept as %s", s.Path, saved)
			return nil
		}
		if err := os.Remove(hp); err != nil {
			return fmt.Errorf("cannot remove %s: %w", s.Path, err)
		}
		j.Report("removed %s", s.Path)
	case "link":
		t, err := os.Readlink(hp)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			j.Report("%s is already gone", s.Path)
			return nil
		case err != nil || t != s.Target:
			return fmt.Errorf("%s is no longer kxboot's link to %s (something replaced it, a package upgrade perhaps); kxboot leaves it: check it, remove it if it is not needed, then run kxboot uninstall again", s.Path, s.Target)
		}
		if err := os.Remove(hp); err != nil {
			return fmt.Errorf("cannot remove %s: %w", s.Path, err)
		}
		j.Report("removed %s", s.Path)
	case "dir":
		if err := os.Remove(hp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			j.Report("left %s/ in place: it is not empty", s.Path)
			return nil
		}
		j.Report("removed %s/", s.Path)
	case "rename":
		if _, err := os.Lstat(j.FS.Path(s.Target)); errors.Is(err, fs.ErrNotExist) {
			j.Report("%s is already back", s.Path)
			return nil
		}
		if _, err := os.Lstat(hp); err == nil {
			return fmt.Errorf("both %s and %s exist (an init package upgrade put a new %s in place?); kxboot does not choose between them: keep one, remove the other, then run kxboot uninstall again", s.Path, s.Target, s.Path)
		}
		if err := os.Rename(j.FS.Path(s.Target), hp); err != nil {
			return fmt.Errorf("cannot move %s back to %s: %w", s.Target, s.Path, err)
		}
		j.Report("moved %s back to %s", s.Target, s.Path)
	case "rcsnap":
		j.restoreBootOrder(s.Saved)
	case "command":
		if len(s.Undo) == 0 {
			return nil
		}
		if err := j.Run.Run(s.Undo[0], s.Undo[1:]...); err != nil {
			return err
		}
		j.Report("ran %s", strings.Join(s.Undo, " "))
	case "line":
		gone := true
		err := j.editLines(s.Path, func(lines []string) []string {
			if i := slices.Index(lines, s.Target); i >= 0 {
				gone = false
				return slices.Delete(lines, i, i+1)
			}
			return lines
		})
		switch {
		case errors.Is(err, fs.ErrNotExist) || err == nil && gone:
			j.Report("%q is already gone from %s", s.Target, s.Path)
		case err != nil:
			return err
		default:
			j.Report("took %q out of %s", s.Target, s.Path)
		}
	}
	return nil
}

// editLines rewrites the file p through edit, keeping its mode; a file
// that edit leaves as it was is not written.
func (j Journal) editLines(p string, edit func([]string) []string) error {
	hp := j.FS.Path(p)
	st, err := os.Stat(hp)
	if err != nil {
		return fmt.Errorf("cannot edit %s: %w", p, err)
	}
	b, err := os.ReadFile(hp)
	if err != nil {
		return fmt.Errorf("cannot edit %s: %w", p, err)
	}
	lines := strings.Split(string(b), "\n")
	edited := strings.Join(edit(slices.Clone(lines)), "\n")
	if edited == string(b) {
		return nil
	}
	if err := atomicfile.Write(hp, []byte(edited), st.Mode().Perm()); err != nil {
		return fmt.Errorf("cannot write %s: %w", p, err)
	}
	return nil
}

// insertLine puts line before the first of lines that starts with before,
// or at the end (before the empty string a final newline leaves).
func insertLine(lines []string, line, before string) []string {
	at := len(lines)
	if at > 0 && lines[at-1] == "" {
		at--
	}
	if before != "" {
		for i, l := range lines {
			if strings.HasPrefix(l, before) {
				at = i
				break
			}
		}
	}
	return slices.Insert(lines, at, line)
}
