package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/kxboot/kxboot/e2e/internal/harness"
	"github.com/kxboot/kxboot/internal/testimg"
)

// TestBadInputs gives kxboot load three files that are not kernels and a
// kernel that a non-root user could have written. Each must fail with exit
// status 1 and one sentence naming the file and the cause, and leave the
// guest running with nothing loaded; load --dry-run must refuse each with
// the same sentence and status.
func TestBadInputs(t *testing.T) {
	t.Parallel()
	_, b := kernels(t)
	img, err := os.ReadFile(b.Image)
	if err != nil {
		t.Fatal(err)
	}
	root := harness.NewInitramfs().Busybox(busybox(t)).HostFile("/bin/kxboot", 0o755, kxboot(t))
	root.File("/bad/notes.txt", 0o644, []byte("This is a text file, not a kernel.\n"))
	root.File("/bad/vmlinuz-truncated", 0o644, img[:64<<10])
	// A well-formed (small, fake) bzImage, group-writable.
	root.File("/bad/vmlinuz-writable", 0o664, testimg.BzImage(16384, b.Release))

	cases := []struct {
		name, file, want string
	}{
		{"missing", "/boot/vmlinuz-missing", "does not exist"},
		{"text", "/bad/notes.txt", "not a bootable kernel image"},
		{"truncated", "/bad/vmlinuz-truncated", "truncated"},
		{"writable", "/bad/vmlinuz-writable", "writable by group or others"},
	}
	var script strings.Builder
	for _, c := range cases {
		script.WriteString("step dry-" + c.name + " kxboot load --dry-run --kernel " + c.file + "\n")
		script.WriteString("step " + c.name + " kxboot load --kernel " + c.file + "\n")
		script.WriteString("say alive after-" + c.name + "\n")
	}
	script.WriteString("step status kxboot status\n")
	root.File("/init", 0o755, harness.Script("1", script.String()))

	gu := boot(t, root)
	for _, c := range cases {
		gu.refused("1", c.name, c.file, c.want)
		dry, real := gu.step("1", "dry-"+c.name), gu.step("1", c.name)
		if dry.RC != real.RC || dry.Stderr() != real.Stderr() {
			gu.errorf("kxboot load --dry-run --kernel %s: exit %d, %q; the load itself: exit %d, %q; want the same refusal", c.file, dry.RC, dry.Stderr(), real.RC, real.Stderr())
		}
	}
	alive := gu.r.Stage("1").All("alive")
	if want := []string{"after-missing", "after-text", "after-truncated", "after-writable"}; strings.Join(alive, " ") != strings.Join(want, " ") {
		gu.errorf("the guest reported alive %q; want %q", alive, want)
	}
	gu.field("kxboot status after the failed loads", gu.step("1", "status").Out, "loaded", "no")
}

// refused fails the test unless the step name of stage, kxboot load
// --kernel file, exited 1 with one line on stderr: a sentence that starts
// with "kxboot: ", names the file and says want besides the file's name
// (which may hold the word, as /bad/vmlinuz-truncated does).
func (gu *guest) refused(stage, name, file, want string) {
	gu.t.Helper()
	s := gu.step(stage, name)
	if s.RC != 1 {
		gu.errorf("kxboot load --kernel %s: exit status %d; want 1", file, s.RC)
	}
	msg := s.Stderr()
	switch {
	case len(s.Err) != 1:
		gu.errorf("kxboot load --kernel %s: stderr has %d lines; want one sentence: %q", file, len(s.Err), msg)
	case !strings.HasPrefix(msg, "kxboot: "):
		gu.errorf("kxboot load --kernel %s: stderr %q does not start with %q", file, msg, "kxboot: ")
	}
	if !strings.Contains(strings.ReplaceAll(msg, file, ""), want) || !strings.Contains(msg, file) {
		gu.errorf("kxboot load --kernel %s: stderr %q; want it to name the file and say %q", file, msg, want)
	}
}
