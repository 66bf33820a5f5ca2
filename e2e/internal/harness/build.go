package harness

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// ModuleRoot walks up from the working directory to the directory holding
// go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if exists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above it")
		}
		dir = parent
	}
}

// goTool finds the go command: on $PATH (go test puts its own GOROOT/bin
// first), else beside the toolchain that built this program.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	for _, p := range []string{filepath.Join(runtime.GOROOT(), "bin", "go"), "/usr/local/go/bin/go"} {
		if exists(p) {
			return p, nil
		}
	}
	return "", errors.New("no go command on $PATH, in GOROOT or in /usr/local/go/bin")
}

// BuildKxboot builds ./cmd/kxboot of the module as a static binary for
// arch in dir and checks that it is static.
func BuildKxboot(dir string, arch Arch) (string, error) {
	arch = arch.orAMD64()
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	if !exists(filepath.Join(root, "cmd", "kxboot")) {
		return "", fmt.Errorf("%s/cmd/kxboot does not exist: there is no kxboot to test yet", root)
	}
	goCmd, err := goTool()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "kxboot-"+arch.GOARCH)
	cmd := exec.Command(goCmd, "build", "-o", out, "./cmd/kxboot")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("CGO_ENABLED=0 GOARCH=%s go build ./cmd/kxboot: %w\n%s", arch.GOARCH, err, b)
	}
	if err := CheckStatic(out, arch); err != nil {
		return "", err
	}
	return out, nil
}

// CheckStatic reports an error unless name is an ELF executable for arch
// with no program interpreter and no shared libraries: it must run as the
// only program in an initramfs.
func CheckStatic(name string, arch Arch) error {
	arch = arch.orAMD64()
	f, err := elf.Open(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	if f.Machine != arch.ELF {
		return fmt.Errorf("%s is built for %v; want %v (%s)", name, f.Machine, arch.ELF, arch.GOARCH)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			r := p.Open()
			buf := make([]byte, p.Filesz)
			r.Read(buf)
			return fmt.Errorf("%s is dynamically linked: it asks for the interpreter %q", name, string(trimNUL(buf)))
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		return fmt.Errorf("%s needs shared libraries %v", name, libs)
	}
	return nil
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// Busybox returns a static busybox for arch: the host's own
// (/bin/busybox, Debian's busybox-static) for the host's architecture,
// else busybox-static of arch fetched with apt-get download and kept in
// the cache.
func Busybox(arch Arch) (string, error) {
	arch = arch.orAMD64()
	if arch.Native() {
		const p = "/bin/busybox"
		if !exists(p) {
			return "", fmt.Errorf("%s does not exist: apt-get install busybox-static", p)
		}
		if err := CheckStatic(p, arch); err != nil {
			return "", fmt.Errorf("%w (the guest needs busybox-static, not busybox)", err)
		}
		return p, nil
	}
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "busybox-"+arch.GOARCH)
	unlock, err := lockDir(dir)
	if err != nil {
		return "", err
	}
	defer unlock()
	if !exists(p) {
		work, err := os.MkdirTemp(dir, ".download-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(work)
		deb, err := aptDownload(work, "busybox-static", arch)
		if err != nil {
			return "", err
		}
		got, err := extractDeb(deb, work, map[string]string{"bin/busybox": "busybox"})
		if err != nil {
			return "", err
		}
		if got["busybox"] == "" {
			return "", fmt.Errorf("%s has no bin/busybox", deb)
		}
		if err := os.Chmod(got["busybox"], 0o755); err != nil {
			return "", err
		}
		if err := os.Rename(got["busybox"], p); err != nil {
			return "", err
		}
	}
	if err := CheckStatic(p, arch); err != nil {
		return "", err
	}
	return p, nil
}

// QEMU returns the path of arch's emulator.
func QEMU(arch Arch) (string, error) {
	arch = arch.orAMD64()
	p, err := exec.LookPath(arch.QEMU)
	if err != nil {
		return "", fmt.Errorf("%s not found: apt-get install %s: %w", arch.QEMU, arch.QEMUPackage, err)
	}
	return p, nil
}
