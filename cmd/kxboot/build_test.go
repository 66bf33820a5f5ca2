package main

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// wantDeps pins every non-standard package linked into kxboot. kxboot runs as
// PID 1 before /usr is mounted: a new import that drags in a large tree must
// fail here, not grow the binary unnoticed. Change this list only with a
// reason in the commit message. The kexec_load segments are kxboot's own on
// both architectures (internal/kexec, internal/fdt); u-root's loader, which
// built amd64's until 2026-12-02, pulled in five decompressors and 1 MB.
var wantDeps = map[string][]string{
	"amd64": {"golang.org/x/sys"},
	"arm64": {"golang.org/x/sys"},
}

func TestDependencies(t *testing.T) {
	for arch, want := range wantDeps {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", ".")
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list (%s): %v", arch, err)
		}
		var got []string
		for _, m := range strings.Fields(string(out)) {
			if m != "github.com/kxboot/kxboot" && !slices.Contains(got, m) {
				got = append(got, m)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: kxboot links the modules\n  %v\nwant\n  %v\nIf the change is meant, update wantDeps and say why in the commit message.", arch, got, want)
		}
	}
}

// maxSize is the budget of the stripped binary, 4.0 MiB on both
// architectures (measured 2026-12-02 with Go 1.26, after kxboot's own amd64
// kexec_load replaced u-root's: amd64 4067490 bytes, arm64 3866786; with the
// man page, the completions and the usage sentences: 4153506 and 3932322).
const maxSize = 4 << 20

// TestStatic builds kxboot as the README says and checks that it needs no
// dynamic loader, for both architectures.
func TestStatic(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		bin := filepath.Join(t.TempDir(), "kxboot")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", arch, err, out)
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s: the binary has a %v segment: it is not static", arch, p.Type)
			}
		}
		f.Close()
		st, _ := os.Stat(bin)
		t.Logf("%s: static, stripped size %.1f MiB", arch, float64(st.Size())/(1<<20))
		readme, err := os.ReadFile("../../README.md")
		if err != nil {
			t.Fatal(err)
		}
		if said := fmt.Sprintf("%s\n%.1f MiB", arch, float64(st.Size())/(1<<20)); !strings.Contains(strings.ReplaceAll(string(readme), "\n", " "), strings.ReplaceAll(said, "\n", " ")) {
			t.Errorf("the README's size of the %s binary is not the measured %q: update its install section", arch, strings.ReplaceAll(said, "\n", " "))
		}
		if limit := int64(maxSize); st.Size() > limit {
			t.Errorf("%s: the stripped binary has %d bytes, over the %d allowed; a new dependency or a large table? If the growth is meant, raise maxSize and say why in the commit message", arch, st.Size(), limit)
		}
	}
}
