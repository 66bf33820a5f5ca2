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

// BuildKxboot builds ./cmd/kxboot of the module as a static binary in dir
// and checks that it is static.
func BuildKxboot(dir string) (string, error) {
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
	out := filepath.Join(dir, "kxboot")
	cmd := exec.Command(goCmd, "build", "-o", out, "./cmd/kxboot")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("CGO_ENABLED=0 go build ./cmd/kxboot: %w\n%s", err, b)
	}
	if err := CheckStatic(out); err != nil {
		return "", err
	}
	return out, nil
}

// CheckStatic reports an error unless name is an x86-64 ELF executable with
// no program interpreter and no shared libraries: it must run as the only
// program in an initramfs.
func CheckStatic(name string) error {
	f, err := elf.Open(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%s is built for %v; want x86-64", name, f.Machine)
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

// Busybox returns the host's static busybox (Debian's busybox-static).
func Busybox() (string, error) {
	const p = "/bin/busybox"
	if !exists(p) {
		return "", fmt.Errorf("%s does not exist: apt-get install busybox-static", p)
	}
	if err := CheckStatic(p); err != nil {
		return "", fmt.Errorf("%w (the guest needs busybox-static, not busybox)", err)
	}
	return p, nil
}

// QEMU returns the path of qemu-system-x86_64.
func QEMU() (string, error) {
	p, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", fmt.Errorf("qemu-system-x86_64 not found: apt-get install qemu-system-x86: %w", err)
	}
	return p, nil
}
