package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// hopAppend is what the tests add to the reused command line: a plain
// token and a quoted value whose two spaces must survive byte for byte.
const hopAppend = `kxtest.token=42 kxtest.words="a b  c"`

// hopRoot is the stage 1 initramfs of a hop: kxboot loads kernel B with
// two initrds (their join kept in /var/cache/kxboot) and jumps into it.
// stage2.cpio carries the next /init,
// extra.cpio only /extra/marker, so both being unpacked shows that kxboot
// passed both.
func hopRoot(t *testing.T, syscall string) *harness.Initramfs {
	t.Helper()
	return hopRootOf(t, harness.AMD64, syscall, sayMemmap, sayMemmap)
}

// sayMemmap reports the firmware memory map the kernel got, from
// /sys/firmware/memmap, one "start-end:type" per entry, and the ACPI
// tables it found (through the root pointer it was given or found).
const sayMemmap = `say memmap "$(for d in /sys/firmware/memmap/*; do echo "$(cat $d/start)-$(cat $d/end):$(cat $d/type)"; done | sort | tr '\n' ' ')"
say acpi "$(ls /sys/firmware/acpi/tables 2>/dev/null | tr '\n' ' ')"
`

// hopRootOf is hopRoot for arch's kernels; stage 1 runs pre before the
// load, and stage 2 runs post2 after its own checks.
func hopRootOf(t *testing.T, arch harness.Arch, syscall, pre, post2 string) *harness.Initramfs {
	t.Helper()
	_, b := kernelsOf(t, arch)
	kx, bb := kxbootOf(t, arch), busyboxOf(t, arch)

	stage2 := harness.NewInitramfs().Busybox(bb).HostFile("/bin/kxboot", 0o755, kx)
	stage2.File("/stage2/marker", 0o644, []byte("from stage2.cpio\n"))
	stage2.File("/init", 0o755, harness.Script("2", `
say stage2file "$(cat /stage2/marker)"
say extrafile "$(cat /extra/marker)"
step status kxboot status
step json kxboot status --json
`+post2))
	s2, err := stage2.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	extra, err := harness.NewInitramfs().File("/extra/marker", 0o644, []byte("from extra.cpio\n")).Bytes()
	if err != nil {
		t.Fatal(err)
	}

	root := harness.NewInitramfs().Busybox(bb).HostFile("/bin/kxboot", 0o755, kx)
	root.HostFile("/boot/vmlinuz-"+b.Release, 0o644, b.Image)
	root.File("/stage2.cpio", 0o644, s2)
	root.File("/extra.cpio", 0o644, extra)
	// With /var/cache there, the load keeps the join of the two initrds
	// in /var/cache/kxboot and passes the kept file: the hop proves the
	// next kernel unpacks both from it.
	root.File("/init", 0o755, harness.Script("1", "\n"+pre+`mkdir -p /var/cache
step load kxboot load --kernel /boot/vmlinuz-`+b.Release+` --initrd /stage2.cpio --initrd /extra.cpio --append '`+hopAppend+`' --syscall `+syscall+`
step status kxboot status
say joined "$(ls /var/cache/kxboot)"
say exec "kxboot exec --force"
step exec kxboot exec --force
finish "kxboot exec returned"
`))
	return root
}

// hop boots kernel A, lets kxboot hop into B with the given syscall and
// checks that B came up: the stage 2 /init ran on B.
func hop(t *testing.T, syscall string) *guest {
	a, b := kernels(t)
	gu := boot(t, hopRoot(t, syscall))
	if got := gu.value("1", "release"); got != a.Release {
		gu.errorf("stage 1 ran on %q; want kernel A %q", got, a.Release)
	}
	gu.ok("1", "load")
	gu.field("kxboot status after load", gu.step("1", "status").Out, "loaded", "yes")
	if got := gu.value("1", "joined"); !strings.HasPrefix(got, "initrd-joined-") || strings.Contains(got, " ") {
		gu.errorf("/var/cache/kxboot after the load holds %q; want the one kept join", got)
	}
	if _, ok := gu.r.Stage("2").Get("stage"); !ok {
		ex := gu.r.Stage("1").Step("exec")
		gu.fatalf("kernel B's /init never ran; kxboot exec --force: exit status %d, stderr %q", ex.RC, ex.Stderr())
	}
	if got := gu.value("2", "release"); got != b.Release {
		gu.errorf("after the hop uname -r is %q; want kernel B %q", got, b.Release)
	}
	// Which loader wrote B's boot_params tells which syscall kxboot used:
	// kexec_file_load's bzImage loader writes 0xd0, kxboot's own kexec_load
	// 0xd1 (QEMU's -kernel, A's, is 0xb0).
	gu.value("1", "loader")
	loader := gu.value("2", "loader")
	if want := map[string]string{"file": "d0", "load": "d1"}[syscall]; loader != want {
		gu.errorf("--syscall %s: kernel B's boot_params type_of_loader is %q; want %q, the mark of the loader it was told to use",
			syscall, loader, want)
	}
	// kexec_load passes the firmware's memory map on as it is.
	if m1, m2 := gu.value("1", "memmap"), gu.value("2", "memmap"); syscall == "load" && (m1 != m2 || !strings.Contains(m1, "System RAM")) {
		gu.errorf("kernel B's firmware memory map differs from A's:\n A: %s\n B: %s", m1, m2)
	}
	if a1, a2 := gu.value("1", "acpi"), gu.value("2", "acpi"); a1 != a2 || !strings.Contains(a2, "DSDT") {
		gu.errorf("kernel B found the ACPI tables %q; A had %q", a2, a1)
	}
	return gu
}

func TestHopFileLoad(t *testing.T) {
	t.Parallel()
	a, b := kernels(t)
	gu := hop(t, "file")

	cmd := gu.value("2", "cmdline")
	for _, want := range []string{
		"console=ttyS0", "panic=-1", "kxtest.provider=1", // reused from A
		"kxtest.token=42", `kxtest.words="a b  c"`, // appended
		"kxboot.chained=1", // the marker
	} {
		if !strings.Contains(cmd, want) {
			gu.errorf("kernel B's /proc/cmdline lacks %q: %q", want, cmd)
		}
	}
	for _, f := range cmdlineFields(cmd) {
		if strings.HasPrefix(f, "BOOT_IMAGE=") || strings.HasPrefix(f, "initrd=") {
			gu.errorf("kernel B's /proc/cmdline kept the boot loader's %q: %q", f, cmd)
		}
	}
	if n := strings.Count(cmd, "kxboot.chained=1"); n != 1 {
		gu.errorf("the marker appears %d times in %q; want once", n, cmd)
	}
	if n := strings.Count(cmd, "kxtest.provider=1"); n != 1 {
		gu.errorf("kxtest.provider=1 appears %d times in %q; want once", n, cmd)
	}

	gu.landedOn(b)
	js := gu.ok("2", "json").Stdout()
	var status struct {
		Release   string `json:"release"`
		ViaKxboot *bool  `json:"via_kxboot"`
		Loaded    *bool  `json:"loaded"`
	}
	if err := json.Unmarshal([]byte(js), &status); err != nil {
		gu.errorf("kxboot status --json on B: %v in %s", err, js)
	}
	if status.Release != b.Release || status.ViaKxboot == nil || !*status.ViaKxboot || status.Loaded == nil || *status.Loaded {
		gu.errorf("kxboot status --json on B: %s; want release %q, via_kxboot true, loaded false", js, b.Release)
	}
	t.Logf("hop %s -> %s through kexec_file_load", a.Release, b.Release)
}

func TestHopKexecLoad(t *testing.T) {
	t.Parallel()
	a, b := kernels(t)
	gu := hop(t, "load")
	cmd := gu.value("2", "cmdline")
	for _, want := range []string{"kxtest.provider=1", `kxtest.words="a b  c"`, "kxboot.chained=1"} {
		if !strings.Contains(cmd, want) {
			gu.errorf("kernel B's /proc/cmdline lacks %q: %q", want, cmd)
		}
	}
	gu.landedOn(b)
	t.Logf("hop %s -> %s through kexec_load", a.Release, b.Release)
}

// landedOn checks what stage 2 of a hop root (hopRootOf) reports on kernel
// B: both initrds arrived (each holds one marker), and kxboot status there
// says the boot came through kxboot, on B.
func (gu *guest) landedOn(b harness.Kernel) {
	gu.t.Helper()
	if got := gu.value("2", "stage2file"); got != "from stage2.cpio" {
		gu.errorf("/stage2/marker (first initrd): got %q; want %q", got, "from stage2.cpio")
	}
	if got := gu.value("2", "extrafile"); got != "from extra.cpio" {
		gu.errorf("/extra/marker (second initrd): got %q; want %q", got, "from extra.cpio")
	}
	st := gu.ok("2", "status")
	gu.field("kxboot status on B", st.Out, "via kxboot", "yes")
	gu.field("kxboot status on B", st.Out, "kernel", b.Release)
}
