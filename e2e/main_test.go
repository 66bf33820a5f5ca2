package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// buildDir holds the kxboot binary for the whole run.
var buildDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "kxboot-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

var (
	kernelsMu sync.Mutex
	kernelSet = map[string]*kernelPair{}
)

type kernelPair struct {
	once sync.Once
	a, b harness.Kernel
	err  error
}

// diskDir is a directory, removed when the test ends, for a case's copies
// of a disk image (and its console logs): in RAM, under /dev/shm, where
// there is one. Copies on the host's disk shared its writeback with the
// image copies and builds of the other cases, and a guest's NVMe writes
// then waited past the guest kernel's 30 s I/O timeout, for minutes (a
// journal recovery after a reset, a shutdown's flush; seen in full runs
// on warm caches too). A case's copies take well under a GiB of RAM.
func diskDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "kxtest-")
	if err != nil {
		t.Logf("no directory in /dev/shm (%v): the guest disks go to %s", err, os.TempDir())
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cacheLog is the harness's Logf for what it fetches and builds into the
// cache: a line on stderr.
func cacheLog(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
}

// kernels returns the amd64 provider's kernel A and the newer kernel B.
func kernels(t *testing.T) (a, b harness.Kernel) {
	t.Helper()
	return kernelsOf(t, harness.AMD64)
}

// kernelsOf returns the provider's kernel A and the newer kernel B of
// arch, fetching them once per run, and logs once which accelerator the
// guests of arch run with. Without them the test fails: an e2e case that
// cannot run is a defect, not a skip.
func kernelsOf(t *testing.T, arch harness.Arch) (a, b harness.Kernel) {
	t.Helper()
	kernelsMu.Lock()
	p := kernelSet[arch.GOARCH]
	if p == nil {
		p = &kernelPair{}
		kernelSet[arch.GOARCH] = p
	}
	kernelsMu.Unlock()
	p.once.Do(func() {
		p.a, p.b, p.err = harness.Kernels(arch, cacheLog)
		if p.err == nil {
			// The report (e2e/report) prints this line beside its table.
			fmt.Printf("kxtest-accel: %s guests run with %v\n", arch, harness.Accel(arch, p.a.Image))
		}
	})
	if p.err != nil {
		t.Fatalf("getting Debian %s kernels: %v", arch, p.err)
	}
	return p.a, p.b
}

var (
	kxbootMu   sync.Mutex
	kxbootPath = map[string]string{}
)

// kxboot builds the static amd64 kxboot binary once per run.
func kxboot(t *testing.T) string {
	t.Helper()
	return kxbootOf(t, harness.AMD64)
}

// kxbootOf builds the static kxboot binary for arch once per run.
func kxbootOf(t *testing.T, arch harness.Arch) string {
	t.Helper()
	kxbootMu.Lock()
	defer kxbootMu.Unlock()
	if p := kxbootPath[arch.GOARCH]; p != "" {
		return p
	}
	p, err := harness.BuildKxboot(buildDir, arch)
	if err != nil {
		t.Fatalf("building kxboot: %v", err)
	}
	kxbootPath[arch.GOARCH] = p
	return p
}

var (
	debOnce sync.Once
	debPath string
	debErr  error
)

// kxbootDeb builds kxboot's amd64 .deb once per run, as make package does.
func kxbootDeb(t *testing.T) string {
	t.Helper()
	debOnce.Do(func() {
		root, err := harness.ModuleRoot()
		if err != nil {
			debErr = err
			return
		}
		dist := filepath.Join(buildDir, "dist")
		out, err := exec.Command("make", "-C", root, "package", "DIST="+dist, "PKG_ARCHES=amd64", "PKG_FORMATS=deb").CombinedOutput()
		if err != nil {
			debErr = fmt.Errorf("make package: %v\n%s", err, out)
			return
		}
		m, _ := filepath.Glob(filepath.Join(dist, "kxboot_*_amd64.deb"))
		if len(m) != 1 {
			debErr = fmt.Errorf("make package made %v; want one amd64 .deb", m)
			return
		}
		debPath = m[0]
	})
	if debErr != nil {
		t.Fatal(debErr)
	}
	return debPath
}

func busybox(t *testing.T) string {
	t.Helper()
	return busyboxOf(t, harness.AMD64)
}

func busyboxOf(t *testing.T, arch harness.Arch) string {
	t.Helper()
	bb, err := harness.Busybox(arch)
	if err != nil {
		t.Fatal(err)
	}
	return bb
}

// providerAppend is kernel A's command line. BOOT_IMAGE= and initrd= are
// what a boot loader adds; kxboot must drop them. kxtest.provider=1 must
// survive the hop. The console and the guest parameters are a's
// architecture's (on amd64: ttyS0 and harness.GuestParams).
func providerAppend(a harness.Kernel) string {
	return "console=" + a.Arch.Console + " panic=-1 BOOT_IMAGE=/boot/vmlinuz-" + a.Release +
		" initrd=/boot/initrd.img-" + a.Release + " kxtest.provider=1 " + a.Arch.Params
}

// at waits for the end of runner boot n of a disk guest and checks that
// it ran on the kernel release; it returns the boot's report.
func (gu *guest) at(n int, release string) *harness.Report {
	gu.t.Helper()
	r, err := gu.g.WaitEnd(n, 6*time.Minute)
	if err != nil {
		gu.fatalf("boot %d: %v", n, err)
	}
	gu.r = r
	s := r.Stage(fmt.Sprint(n))
	if got, _ := s.Get("release"); got != release {
		gu.fatalf("boot %d came up on %q; want %q", n, got, release)
	}
	gu.t.Logf("boot %d: %s at %v", n, release, gu.g.Elapsed().Round(100*time.Millisecond))
	return s
}

// guest is a finished guest run and the test it belongs to.
type guest struct {
	t *testing.T
	g *harness.Guest
	r *harness.Report
}

// start boots kernel A with initramfs root, holding one of the guest slots
// until the test ends. The whole console is logged if the test fails.
func start(t *testing.T, root *harness.Initramfs) *guest {
	t.Helper()
	a, _ := kernels(t)
	return startWith(t, root, harness.Options{Kernel: a.Image, Append: providerAppend(a)})
}

// startWith is start for the guest o describes: root becomes its initrd,
// and its console is kept in the test's directory.
func startWith(t *testing.T, root *harness.Initramfs, o harness.Options) *guest {
	t.Helper()
	dir := t.TempDir()
	initrd := filepath.Join(dir, "stage1.cpio")
	if err := root.Write(initrd); err != nil {
		t.Fatal(err)
	}
	sl := claim(t)
	o.Initrd = initrd
	o.ConsoleLog = filepath.Join(dir, "console.log")
	g, err := harness.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	sl.add(g)
	t.Cleanup(func() {
		g.Kill()
		if t.Failed() {
			t.Logf("whole console (%s):\n%s", filepath.Join(dir, "console.log"), g.Console())
			if s := g.Stderr(); s != "" {
				t.Logf("qemu stderr:\n%s", s)
			}
		}
	})
	return &guest{t: t, g: g}
}

// wait waits for the guest to power off, fails the test if qemu did not
// end cleanly, and parses what the guest reported.
func (gu *guest) wait() {
	gu.t.Helper()
	if err := gu.g.Wait(); err != nil {
		gu.fatalf("%v", err)
	}
	gu.t.Logf("guest ran %v", gu.g.Elapsed().Round(100*time.Millisecond))
	gu.r = harness.Parse(gu.g.Lines())
}

// boot runs kernel A with initramfs root until the guest powers off.
func boot(t *testing.T, root *harness.Initramfs) *guest {
	t.Helper()
	gu := start(t, root)
	gu.wait()
	return gu
}

// tail is the end of the console, for failure messages.
func (gu *guest) tail() string {
	return "console tail:\n" + indent(harness.Tail(gu.g.Lines(), 20))
}

func (gu *guest) errorf(format string, args ...any) {
	gu.t.Helper()
	gu.t.Errorf(format+"\n"+gu.tail(), args...)
}

func (gu *guest) fatalf(format string, args ...any) {
	gu.t.Helper()
	gu.t.Fatalf(format+"\n"+gu.tail(), args...)
}

// value returns what stage reported for key, failing the test if nothing.
func (gu *guest) value(stage, key string) string {
	gu.t.Helper()
	v, ok := gu.r.Stage(stage).Get(key)
	if !ok {
		gu.fatalf("stage %s reported no %q (no line %q)", stage, key, harness.Tag+key+": ...")
	}
	gu.t.Logf("stage %s %s: %s", stage, key, v)
	return v
}

// step returns a step stage ran, failing the test if it did not report.
func (gu *guest) step(stage, name string) harness.Step {
	gu.t.Helper()
	s := gu.r.Stage(stage).Step(name)
	if !s.Started {
		gu.fatalf("stage %s never finished step %q", stage, name)
	}
	for _, l := range s.Out {
		gu.t.Logf("stage %s %s stdout: %s", stage, name, l)
	}
	for _, l := range s.Err {
		gu.t.Logf("stage %s %s stderr: %s", stage, name, l)
	}
	gu.t.Logf("stage %s %s exit status: %d", stage, name, s.RC)
	return s
}

// ok fails the test unless the step exited 0.
func (gu *guest) ok(stage, name string) harness.Step {
	gu.t.Helper()
	s := gu.step(stage, name)
	if s.RC != 0 {
		gu.fatalf("stage %s: %s exited %d; stderr: %q", stage, name, s.RC, s.Stderr())
	}
	return s
}

// field fails the test unless some line of out reads "key: value...", with
// any spaces after the colon (kxboot status aligns its columns), whose
// value starts with the word want.
func (gu *guest) field(what string, out []string, key, want string) {
	gu.t.Helper()
	for _, l := range out {
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) != key {
			continue
		}
		if f := strings.Fields(v); len(f) > 0 && f[0] == want {
			return
		}
		gu.errorf("%s: %q; want %s: %s", what, l, key, want)
		return
	}
	gu.errorf("%s: no line %q; got:\n%s", what, key+": "+want, indent(strings.Join(out, "\n")))
}

// tail is the last n lines of s, for a failure's message.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	return "\t" + strings.ReplaceAll(s, "\n", "\n\t")
}

// cmdlineFields splits a kernel command line the way the kernel does:
// at spaces outside double quotes.
func cmdlineFields(s string) []string {
	var fields []string
	var cur strings.Builder
	quoted := false
	for _, c := range s {
		switch {
		case c == '"':
			quoted = !quoted
			cur.WriteRune(c)
		case c == ' ' && !quoted:
			if cur.Len() > 0 {
				fields = append(fields, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(c)
		}
	}
	if cur.Len() > 0 {
		fields = append(fields, cur.String())
	}
	return fields
}
