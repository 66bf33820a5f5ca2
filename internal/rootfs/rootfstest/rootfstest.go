// Package rootfstest builds fake machine trees for tests: a temp directory
// standing for "/", with files and links at in-machine paths.
package rootfstest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// New returns an empty machine root (mode 0755, so the trust check passes).
func New(t testing.TB) rootfs.FS {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return rootfs.New(dir)
}

// Write writes data at in-machine path p (mode 0644), making directories 0755.
func Write(t testing.TB, fsys rootfs.FS, p string, data []byte) {
	t.Helper()
	host := fsys.Path(p)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Link makes a symbolic link at in-machine path p pointing at target, as written.
func Link(t testing.TB, fsys rootfs.FS, p, target string) {
	t.Helper()
	host := fsys.Path(p)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, host); err != nil {
		t.Fatal(err)
	}
}

// Tree returns a machine root holding files (path: contents) and links (path: target).
func Tree(t testing.TB, files, links map[string]string) rootfs.FS {
	t.Helper()
	fsys := New(t)
	for p, data := range files {
		Write(t, fsys, p, []byte(data))
	}
	for p, target := range links {
		Link(t, fsys, p, target)
	}
	return fsys
}
