package kexec

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestJoinKept: with /var/cache there, the first load of two initrds
// writes their join into JoinDir and the next load uses it as it is; a
// part rewritten gives a new join and the stale one goes; a dry run, a
// missing /var/cache or a join someone else could have written never
// changes what the kernel gets.
func TestJoinKept(t *testing.T) {
	const want = "ucode\x00\x00\x00main-initrd-cpio"
	parts := []string{"/boot/intel-ucode.img", "/boot/initrd.img-6.1.0-54-cloud-amd64"}
	m := newMachine(t)
	kept := func() []string {
		t.Helper()
		es, _ := os.ReadDir(m.fs.Path(JoinDir))
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	load := func(dry bool) {
		t.Helper()
		m.sys.Initrd = nil
		res, err := m.e.Load(Request{Kernel: kernel, Initrds: parts, DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		if res.InitrdBytes != int64(len(want)) || !dry && string(m.sys.Initrd) != want {
			t.Fatalf("initrd %q (%d bytes); want %q", m.sys.Initrd, res.InitrdBytes, want)
		}
	}

	// No /var/cache: joined in memory, nothing written.
	load(false)
	if _, err := os.Stat(m.fs.Path("/var/cache")); !os.IsNotExist(err) {
		t.Fatalf("a load created /var/cache: %v", err)
	}
	os.MkdirAll(m.fs.Path("/var/cache"), 0o755)
	load(true)
	if got := kept(); len(got) != 0 {
		t.Fatalf("a dry run kept %v", got)
	}

	load(false)
	first := kept()
	if len(first) != 1 {
		t.Fatalf("kept %v; want one join", first)
	}
	p := filepath.Join(m.fs.Path(JoinDir), first[0])
	if b, _ := os.ReadFile(p); string(b) != want {
		t.Fatalf("the kept join holds %q", b)
	}
	if st, _ := os.Stat(m.fs.Path(JoinDir)); st.Mode().Perm() != 0o700 {
		t.Errorf("%s has mode %v; want 0700", JoinDir, st.Mode().Perm())
	}
	// The next load reads the kept file: mark it and see the mark come
	// through (its size is what the join must have).
	os.WriteFile(p, []byte("UCODE\x00\x00\x00MAIN-INITRD-CPIO"), 0o600)
	m.sys.Initrd = nil
	if _, err := m.e.Load(Request{Kernel: kernel, Initrds: parts}); err != nil {
		t.Fatal(err)
	}
	if string(m.sys.Initrd) != "UCODE\x00\x00\x00MAIN-INITRD-CPIO" {
		t.Fatalf("the second load did not use the kept join: %q", m.sys.Initrd)
	}
	// A join others could have written is not used, but written again.
	os.Chmod(p, 0o666)
	load(false)
	if got := kept(); !slices.Equal(got, first) {
		t.Errorf("kept %v; want %v", got, first)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("the join was not written again: mode %v", st.Mode().Perm())
	}
	// A part rewritten: another join, and the old one goes.
	time.Sleep(10 * time.Millisecond)
	m.write(parts[0], []byte("ucode"))
	load(false)
	if got := kept(); len(got) != 1 || got[0] == first[0] {
		t.Errorf("after a part changed: kept %v (before %v)", got, first)
	}
	// A join of the wrong size (cut short) is not used.
	got := kept()
	os.WriteFile(filepath.Join(m.fs.Path(JoinDir), got[0]), []byte("ucode"), 0o600)
	load(false)
}
