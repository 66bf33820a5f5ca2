package journal

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

// runner records the commands and fails the one named.
type runner struct {
	ran  []string
	fail string
}

func (r *runner) Run(name string, args ...string) error {
	line := strings.Join(append([]string{name}, args...), " ")
	r.ran = append(r.ran, line)
	if line == r.fail {
		return fmt.Errorf("%s: exit status 1", line)
	}
	return nil
}

func newJournal(t *testing.T) (Journal, *runner, *[]string) {
	fsys := rootfstest.Tree(t, map[string]string{"/etc/hostname": "box\n", "/sbin/init": "init"}, nil)
	r := &runner{}
	var said []string
	return Journal{FS: fsys, Run: r, Report: func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }}, r, &said
}

func steps(fsys rootfs.FS) []Step {
	s := append(Dirs(fsys, "/etc/kx/sub"), File("/etc/kx/sub/conf", 0o644, "A=1\n"))
	s = append(s, Dirs(fsys, "/etc/kx")...) // planned twice: Tidy drops it
	s = append(s, Rename("/sbin/init", "/sbin/init.orig"), Link("/sbin/init", "/usr/bin/kx"))
	return Tidy(append(s, Command([]string{"tool", "add"}, []string{"tool", "remove"})))
}

func TestApplyUndo(t *testing.T) {
	j, r, _ := newJournal(t)
	rec := &Record{Job: JobChain, Mode: "wrapper", Steps: steps(j.FS)}
	if n := len(rec.Steps); n != 6 {
		t.Fatalf("Tidy left %d steps; want 6: %+v", n, rec.Steps)
	}
	if err := j.Apply(rec, "/sbin/init"); err != nil {
		t.Fatal(err)
	}
	if b, _ := j.FS.ReadFile("/etc/kx/sub/conf"); string(b) != "A=1\n" || !j.FS.Exists("/sbin/init.orig") {
		t.Errorf("apply: conf %q", b)
	}
	back, err := Read(j.FS, JobChain)
	if err != nil || back == nil || len(back.Steps) != 7 || !back.Steps[6].Done || !back.MadeDir() {
		t.Fatalf("record read back: %+v, %v", back, err)
	}
	if err := j.Undo(back); err != nil {
		t.Fatal(err)
	}
	if j.FS.Exists("/etc/kx") || j.FS.Exists("/sbin/init.orig") || j.FS.Exists(Path(JobChain)) {
		t.Errorf("undo left changes behind")
	}
	if b, _ := j.FS.ReadFile("/sbin/init"); string(b) != "init" {
		t.Errorf("/sbin/init is %q after undo", b)
	}
	if got := strings.Join(r.ran, "; "); got != "tool add; tool remove" {
		t.Errorf("commands: %s", got)
	}
}

// TestCrash: a change made but not yet marked done (the power went between
// the two) is undone; a step never made is passed over.
func TestCrash(t *testing.T) {
	j, r, _ := newJournal(t)
	r.fail = "tool add"
	rec := &Record{Job: JobReboot, Steps: steps(j.FS)}
	err := j.Apply(rec, "/sbin/init")
	if err == nil || !strings.Contains(err.Error(), "undone by kxboot uninstall") {
		t.Fatalf("apply: %v", err)
	}
	back, _ := Read(j.FS, JobReboot)
	back.Steps[len(back.Steps)-2].Done = false // the link, made but not recorded
	if err := j.Undo(back); err != nil {
		t.Fatal(err)
	}
	if t1, err := os.Readlink(j.FS.Path("/sbin/init")); err == nil {
		t.Errorf("/sbin/init is still a link to %s", t1)
	}
	if j.FS.Exists("/etc/kx") {
		t.Errorf("/etc/kx is still there")
	}
}

// TestOwnersChanges: an edited file is kept beside; a link replaced by
// something else stops the undo with a sentence that says what to do.
func TestOwnersChanges(t *testing.T) {
	j, _, said := newJournal(t)
	rec := &Record{Job: JobChain, Steps: steps(j.FS)}
	if err := j.Apply(rec, "/sbin/init"); err != nil {
		t.Fatal(err)
	}
	rootfstest.Write(t, j.FS, "/etc/kx/sub/conf", []byte("A=2\n"))
	os.Remove(j.FS.Path("/sbin/init"))
	os.Symlink("/lib/systemd/systemd", j.FS.Path("/sbin/init"))
	err := j.Undo(rec)
	if err == nil || !strings.Contains(err.Error(), "/sbin/init is no longer kxboot's link to /usr/bin/kx") {
		t.Fatalf("undo: %v", err)
	}
	if back, _ := Read(j.FS, JobChain); back == nil {
		t.Fatalf("the record went with a failed undo")
	}
	os.Remove(j.FS.Path("/sbin/init"))
	if err := j.Undo(rec); err != nil {
		t.Fatal(err)
	}
	if b, _ := j.FS.ReadFile("/etc/kx/sub/conf.kxboot-saved"); string(b) != "A=2\n" {
		t.Errorf("the edited file was not kept: %q (said %q)", b, *said)
	}
}

func TestApplyRefusesWhatIsInTheWay(t *testing.T) {
	j, _, _ := newJournal(t)
	rec := &Record{Job: JobChain, Steps: []Step{File("/etc/kx.conf", 0o644, "new"), File("/etc/hostname", 0o644, "x")}}
	err := j.Apply(rec)
	if err == nil || !strings.Contains(err.Error(), "/etc/hostname exists already; kxboot will not overwrite it") {
		t.Fatalf("apply: %v", err)
	}
	if j.FS.Exists("/etc/kx.conf") || j.FS.Exists(Dir) {
		t.Errorf("a refused apply changed the tree")
	}
}

// TestLine: a line goes in before the anchor and comes out exactly; the
// owner's edits elsewhere in the file stay; the reload commands around it
// run after the change and after its undo.
func TestLine(t *testing.T) {
	j, r, _ := newJournal(t)
	const tab = "::sysinit:/sbin/openrc sysinit\n::shutdown:/sbin/openrc shutdown\n"
	rootfstest.Write(t, j.FS, "/etc/inittab", []byte(tab))
	os.Chmod(j.FS.Path("/etc/inittab"), 0o600)
	hup := []string{"kill", "-HUP", "1"}
	rec := &Record{Job: JobReboot, Steps: []Step{
		Command(nil, hup),
		Line("/etc/inittab", "::reboot:/sbin/openrc reboot", "::shutdown:"),
		Command(hup, nil),
	}}
	if err := j.Apply(rec); err != nil {
		t.Fatal(err)
	}
	want := "::sysinit:/sbin/openrc sysinit\n::reboot:/sbin/openrc reboot\n::shutdown:/sbin/openrc shutdown\n"
	if b, _ := j.FS.ReadFile("/etc/inittab"); string(b) != want {
		t.Errorf("inittab after apply:\n%s", b)
	}
	if st, _ := os.Stat(j.FS.Path("/etc/inittab")); st.Mode().Perm() != 0o600 {
		t.Errorf("inittab's mode became %v", st.Mode())
	}
	// The owner adds a line of their own meanwhile.
	b, _ := j.FS.ReadFile("/etc/inittab")
	rootfstest.Write(t, j.FS, "/etc/inittab", append(b, "ttyS0::respawn:/sbin/getty -L 0 ttyS0 vt100\n"...))
	if err := j.Undo(rec); err != nil {
		t.Fatal(err)
	}
	if b, _ := j.FS.ReadFile("/etc/inittab"); string(b) != tab+"ttyS0::respawn:/sbin/getty -L 0 ttyS0 vt100\n" {
		t.Errorf("inittab after undo:\n%s", b)
	}
	if got := strings.Join(r.ran, "; "); got != "kill -HUP 1; kill -HUP 1" {
		t.Errorf("commands: %s", got)
	}
	// Without the anchor the line goes at the end; a second undo finds it gone.
	if got := insertLine([]string{"a", "b", ""}, "x", "::shutdown:"); strings.Join(got, "\n") != "a\nb\nx\n" {
		t.Errorf("insertLine = %q", got)
	}
	rec.Steps[1].Done = true
	if err := j.Undo(rec); err != nil {
		t.Errorf("a second undo: %v", err)
	}
}
