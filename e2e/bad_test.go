package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// TestBadInputs gives kxboot load three files that are not kernels. Each
// must fail with exit status 1 and one sentence naming the file and the
// cause, and leave the guest running with nothing loaded.
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

	cases := []struct {
		name, file, want string
	}{
		{"missing", "/boot/vmlinuz-missing", "does not exist"},
		{"text", "/bad/notes.txt", "not a bootable kernel image"},
		{"truncated", "/bad/vmlinuz-truncated", "truncated"},
	}
	var script strings.Builder
	for _, c := range cases {
		script.WriteString("step " + c.name + " kxboot load --kernel " + c.file + "\n")
		script.WriteString("say alive after-" + c.name + "\n")
	}
	script.WriteString("step status kxboot status\n")
	root.File("/init", 0o755, harness.Script("1", script.String()))

	gu := boot(t, root)
	for _, c := range cases {
		gu.refused("1", c.name, c.file, c.want)
	}
	alive := gu.r.Stage("1").All("alive")
	if want := []string{"after-missing", "after-text", "after-truncated"}; strings.Join(alive, " ") != strings.Join(want, " ") {
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
