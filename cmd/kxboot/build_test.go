package main

import (
	"debug/elf"
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
// reason in the commit message. u-root's pkg/boot/linux (amd64's kexec_load)
// is the only import of u-root, and only from internal/kexec; the rest below
// it is what that package needs (bzimage decompressors).
var wantDeps = map[string][]string{
	"amd64": {
		"github.com/dustin/go-humanize",
		"github.com/klauspost/compress",
		"github.com/pierrec/lz4/v4",
		"github.com/therootcompany/xz",
		"github.com/u-root/u-root",
		"github.com/u-root/uio",
		"github.com/ulikunitz/xz",
		"golang.org/x/exp",
		"golang.org/x/sys",
	},
	// arm64's kexec_load segments are kxboot's own (internal/kexec,
	// internal/fdt): no u-root there.
	"arm64": {
		"golang.org/x/sys",
	},
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

func TestUrootOnlyInEngine(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "github.com/kxboot/kxboot/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		if !strings.HasPrefix(pkg, "github.com/kxboot/") || pkg == "github.com/kxboot/kxboot/internal/kexec" {
			continue
		}
		if strings.Contains(imports, "github.com/u-root/") {
			t.Errorf("%s imports u-root; only internal/kexec may", pkg)
		}
	}
}

// maxSize caps the stripped binary (measured 2026-12-01 with Go 1.26:
// amd64 4788386 bytes, arm64 3539106; after the boot state, status,
// init adapters and journal packages, amd64 4874402, arm64 3604642),
// with about 8% room left.
var maxSize = map[string]int64{"amd64": 5_300_000, "arm64": 3_900_000}

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
		if limit := maxSize[arch]; st.Size() > limit {
			t.Errorf("%s: the stripped binary has %d bytes, over the %d allowed; a new dependency or a large table? If the growth is meant, raise maxSize and say why in the commit message", arch, st.Size(), limit)
		}
	}
}
