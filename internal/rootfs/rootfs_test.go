package rootfs

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func tree(t *testing.T) FS {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	fsys := New(dir)
	os.MkdirAll(fsys.Path("/boot"), 0o755)
	os.WriteFile(fsys.Path("/boot/vmlinuz-6.1.0-54-amd64"), []byte("k"), 0o644)
	os.Symlink("boot/vmlinuz-6.1.0-54-amd64", fsys.Path("/vmlinuz"))   // Debian: relative
	os.Symlink("/boot/vmlinuz-6.1.0-54-amd64", fsys.Path("/vmlinuz2")) // absolute: inside the root
	os.Symlink("../../../../../boot", fsys.Path("/up"))                // cannot leave the root
	os.Symlink("loop2", fsys.Path("/loop1"))
	os.Symlink("loop1", fsys.Path("/loop2"))
	return fsys
}

func TestResolve(t *testing.T) {
	fsys := tree(t)
	for in, want := range map[string]string{
		"/vmlinuz":                   "/boot/vmlinuz-6.1.0-54-amd64",
		"/vmlinuz2":                  "/boot/vmlinuz-6.1.0-54-amd64",
		"/up/vmlinuz-6.1.0-54-amd64": "/boot/vmlinuz-6.1.0-54-amd64",
		"/boot/../vmlinuz":           "/boot/vmlinuz-6.1.0-54-amd64",
		"/boot/missing":              "/boot/missing",
	} {
		got, err := fsys.Resolve(in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := fsys.Resolve("/loop1"); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("Resolve(loop) = %v", err)
	}
}

func TestPathAndUnpath(t *testing.T) {
	fsys := FS{Root: "/tmp/r"}
	if got := fsys.Path("/proc/../etc/x"); got != "/tmp/r/etc/x" {
		t.Errorf("Path = %q", got)
	}
	if got := fsys.Path("../../etc/x"); got != "/tmp/r/etc/x" {
		t.Errorf("Path escapes the root: %q", got)
	}
	if got := fsys.Unpath("/tmp/r/boot/x"); got != "/boot/x" {
		t.Errorf("Unpath = %q", got)
	}
	if got := Host.Path("/proc/cmdline"); got != "/proc/cmdline" {
		t.Errorf("Host.Path = %q", got)
	}
}

func TestGlob(t *testing.T) {
	fsys := tree(t)
	got, err := fsys.Glob("/boot/vmlinuz-*")
	if err != nil || len(got) != 1 || got[0] != "/boot/vmlinuz-6.1.0-54-amd64" {
		t.Errorf("Glob = %v, %v", got, err)
	}
}

func TestTrusted(t *testing.T) {
	fsys := tree(t)
	if err := fsys.Trusted("/vmlinuz"); err != nil {
		t.Fatalf("a clean tree: %v", err)
	}
	k := fsys.Path("/boot/vmlinuz-6.1.0-54-amd64")
	os.Chmod(k, 0o664)
	err := fsys.Trusted("/vmlinuz")
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "/vmlinuz is writable by group or others (mode 0664)") ||
		!strings.Contains(err.Error(), "chmod go-w /boot/vmlinuz-6.1.0-54-amd64") {
		t.Errorf("group-writable kernel: %v", err)
	}
	os.Chmod(k, 0o644)
	os.Chmod(fsys.Path("/boot"), 0o777)
	if err := fsys.Trusted("/vmlinuz"); err == nil || !strings.Contains(err.Error(), "sits in /boot, which is writable") {
		t.Errorf("world-writable /boot: %v", err)
	}
	os.Chmod(fsys.Path("/boot"), 0o755)
	other := FS{Root: fsys.Root, Owner: fsys.Owner + 1}
	if err := other.Trusted("/boot/vmlinuz-6.1.0-54-amd64"); err == nil || !strings.Contains(err.Error(), "is owned by uid") {
		t.Errorf("wrong owner: %v", err)
	}
	if err := fsys.Trusted("/boot/none"); err == nil {
		t.Error("a missing file was trusted")
	}
}
