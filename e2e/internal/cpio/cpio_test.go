package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestExtract checks the archive against GNU cpio, an independent reader.
func TestExtract(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Dir("/bin", 0o755))
	must(w.File("/bin/tool", 0o755, []byte("#!/bin/sh\necho hi\n")))
	must(w.File("/odd", 0o600, []byte("abcde"))) // length not a multiple of 4
	must(w.File("/empty", 0o644, nil))
	must(w.Symlink("/bin/sh", "tool"))
	must(w.Close())
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}

	dir := t.TempDir()
	cmd := exec.Command("cpio", "-i", "-d", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for name, want := range map[string]string{
		"bin/tool": "#!/bin/sh\necho hi\n",
		"odd":      "abcde",
		"empty":    "",
	} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("read %s: %v", name, err)
			continue
		}
		if string(got) != want {
			t.Errorf("%s: got %q; want %q", name, got, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin/tool")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/tool mode: %v, %v; want 0755", fi.Mode(), err)
	}
	if got, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || got != "tool" {
		t.Errorf("bin/sh link: got %q, %v; want %q", got, err, "tool")
	}
}
