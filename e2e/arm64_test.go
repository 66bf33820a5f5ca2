package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// The arm64 cases boot Debian's arm64 cloud kernels in QEMU's virt machine
// (harness.ARM64, TCG on these machines), each in both ways an arm64
// machine starts its kernel (arm64Boots): qemu's own loader with a device
// tree, as on boards, and UEFI firmware with ACPI, as on servers, where
// the kernel's device tree holds only /chosen and RAM is described by the
// EFI memory map. The stages report how their kernel came up (bootedBy),
// so a case cannot pass on the wrong path. Debian's arm64 kernels have no
// kexec_file_load: every hop here goes through kexec_load.
//
// Without x86's boot_params, the evidence of a kexec is the console of
// one qemu process (hoppedOnce): kernel B's banner after A's with no
// reset between them (Guest.Hops: -no-reboot makes a reset end qemu),
// and on the UEFI path one firmware start and one EFI stub for the two
// kernels; then B's own report (its release, the marker on its command
// line, the stage 2 /init that only B's initrd holds).
//
// An arm64 boot costs about three amd64 ones under TCG, so each case folds
// its checks into as few guests as it can, as TestBadInputs does.

// arm64Boot is one way an arm64 machine starts the provider's kernel.
type arm64Boot struct {
	name string
	path harness.BootPath
}

var arm64Boots = []arm64Boot{
	{"devicetree", harness.BootQEMU},
	{"uefi", harness.BootUEFI},
}

// arm64Each runs f as a parallel subtest for each boot path.
func arm64Each(t *testing.T, f func(t *testing.T, bp arm64Boot)) {
	for _, bp := range arm64Boots {
		t.Run(bp.name, func(t *testing.T) {
			t.Parallel()
			f(t, bp)
		})
	}
}

// startArm64 boots the arm64 kernel A with initramfs root through bp, with
// cmdline as its command line.
func startArm64(t *testing.T, bp arm64Boot, root *harness.Initramfs, cmdline string) *guest {
	t.Helper()
	a, _ := kernelsOf(t, harness.ARM64)
	return startWith(t, root, harness.Options{Arch: harness.ARM64, Boot: bp.path, Kernel: a.Image, Append: cmdline})
}

// firmwareReport has a stage say how its kernel was started: whether it
// sees EFI and ACPI, and the device tree it was given (the blob up to the
// end of its strings block, gzipped and in base64, for fdtNodes; qemu pads
// its own to 1 MiB).
const firmwareReport = `say efi "$(if [ -d /sys/firmware/efi ]; then echo yes; else echo no; fi)"
say acpi "$(if [ -d /sys/firmware/acpi/tables ]; then echo yes; else echo no; fi)"
if [ -r /sys/firmware/fdt ]; then
	fdt_o=$(od -An -tx1 -j12 -N4 /sys/firmware/fdt | tr -d ' \n')
	fdt_s=$(od -An -tx1 -j32 -N4 /sys/firmware/fdt | tr -d ' \n')
	step fdt sh -c "head -c $((0x$fdt_o + 0x$fdt_s)) /sys/firmware/fdt | busybox gzip | busybox base64"
fi
`

// bootedBy fails the test unless the kernel of stage runs the way bp
// says. On the device-tree path it sees neither EFI nor ACPI, and its
// device tree describes RAM in memory nodes. On the UEFI path it sees EFI
// and ACPI; the kernel that the firmware started (fromFirmware) also got
// a device tree of /chosen alone, without a memory node, that hands over
// the EFI memory map. A kernel that came through kexec on a UEFI machine
// must still find the firmware's EFI and ACPI tables: without them it
// knows neither its devices nor, here, its console.
func (gu *guest) bootedBy(stage string, bp arm64Boot, fromFirmware bool) {
	gu.t.Helper()
	efi, acpi := gu.value(stage, "efi"), gu.value(stage, "acpi")
	s := gu.r.Stage(stage).Step("fdt")
	if !s.Started || s.RC != 0 {
		gu.fatalf("stage %s could not read /sys/firmware/fdt (exit status %d): %q", stage, s.RC, s.Stderr())
	}
	gz, err := base64.StdEncoding.DecodeString(strings.Join(s.Out, ""))
	if err != nil {
		gu.fatalf("stage %s: the device tree's base64: %v", stage, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		gu.fatalf("stage %s: the device tree's gzip: %v", stage, err)
	}
	blob, err := io.ReadAll(zr)
	if err != nil {
		gu.fatalf("stage %s: the device tree's gzip: %v", stage, err)
	}
	nodes, err := fdtNodes(blob)
	if err != nil {
		gu.fatalf("stage %s: /sys/firmware/fdt: %v", stage, err)
	}
	var paths, memory []string
	var chosen map[string][]byte
	for _, n := range nodes {
		paths = append(paths, n.path)
		if n.memory() {
			memory = append(memory, n.path)
		}
		if n.path == "/chosen" {
			chosen = n.props
		}
	}
	gu.t.Logf("stage %s: efi %s, acpi %s, device tree nodes: %s", stage, efi, acpi, strings.Join(paths, " "))
	switch bp.path {
	case harness.BootQEMU:
		if efi != "no" || acpi != "no" {
			gu.errorf("stage %s on the device-tree path sees EFI %s and ACPI %s; want neither", stage, efi, acpi)
		}
		if len(memory) == 0 {
			gu.errorf("stage %s on the device-tree path: its device tree has no memory node (nodes: %s)", stage, strings.Join(paths, " "))
		}
	case harness.BootUEFI:
		if efi != "yes" || acpi != "yes" {
			gu.errorf("stage %s on the UEFI path sees EFI %s and ACPI %s; want both (/sys/firmware/efi, /sys/firmware/acpi/tables)", stage, efi, acpi)
		}
		if !fromFirmware {
			return
		}
		if len(memory) > 0 || !slices.Equal(paths, []string{"/", "/chosen"}) {
			gu.errorf("stage %s on the UEFI path: its device tree has nodes %s (memory nodes: %v); want / and /chosen alone", stage, strings.Join(paths, " "), memory)
		}
		if _, ok := chosen["linux,uefi-mmap-start"]; !ok {
			gu.errorf("stage %s on the UEFI path: /chosen does not hand over the EFI memory map (no linux,uefi-mmap-start)", stage)
		}
	}
}

// hoppedOnce fails the test unless the console shows kernel A, then
// kernel B entered by one kexec: two banners in one qemu process with no
// reset between them and, through UEFI, the firmware and the EFI stub
// once (for A; kexec enters B's Image directly).
func (gu *guest) hoppedOnce(bp arm64Boot, a, b harness.Kernel) {
	gu.t.Helper()
	if got, want := gu.g.Kernels(), []string{a.Release, b.Release}; !slices.Equal(got, want) {
		gu.errorf("kernels started: %q; want %q (A, then B once)", got, want)
	}
	if h := gu.g.Hops(); h != 1 {
		gu.errorf("%d kernels started without a reset before them; want 1 (the hop into B)", h)
	}
	if bp.path == harness.BootUEFI {
		con := gu.g.Console()
		for _, s := range []string{"UEFI firmware (", "EFI stub: Booting Linux Kernel"} {
			if n := strings.Count(con, s); n != 1 {
				gu.errorf("%q is on the console %d times; want once (the firmware starts A, kexec starts B)", s, n)
			}
		}
	}
}

// arm64Refusal is a file kxboot load must refuse on an arm64 machine.
type arm64Refusal struct{ name, file, want string }

// arm64Refusals: a missing file, an amd64 kernel, a text file and an
// arm64 Image cut short (its first 300000 bytes, the header intact).
var arm64Refusals = []arm64Refusal{
	{"missing", "/boot/vmlinuz-missing", "does not exist"},
	{"amd64", "/bad/vmlinuz-amd64", "amd64"},
	{"text", "/bad/notes.txt", "not a bootable kernel image"},
	{"truncated", "/bad/vmlinuz-truncated", "truncated"},
}

// addRefusals puts the files of arm64Refusals into root: the truncated
// one cut from b, the amd64 one the amd64 kernel B.
func addRefusals(t *testing.T, root *harness.Initramfs, b harness.Kernel) {
	t.Helper()
	img, err := os.ReadFile(b.Image)
	if err != nil {
		t.Fatal(err)
	}
	_, x86 := kernelsOf(t, harness.AMD64)
	root.File("/bad/notes.txt", 0o644, []byte("This is a text file, not a kernel.\n"))
	root.File("/bad/vmlinuz-truncated", 0o644, img[:300000])
	root.HostFile("/bad/vmlinuz-amd64", 0o644, x86.Image)
}

// gzLoadSteps loads kernel B's Image.gz (addImageGz) with kexec_load,
// reports kexec_loaded and unloads it again.
const gzLoadSteps = `step gzload kxboot load --kernel /boot/Image.gz --syscall load --no-initrd
say gzloaded "$(cat /sys/kernel/kexec_loaded)"
step gzunload kxboot unload
`

// addImageGz puts kernel B's Image, gzipped, in root as /boot/Image.gz.
func addImageGz(t *testing.T, root *harness.Initramfs, b harness.Kernel) {
	t.Helper()
	img, err := os.ReadFile(b.Image)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(img); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	root.File("/boot/Image.gz", 0o644, buf.Bytes())
}

// refusalSteps tries each file of arm64Refusals and reports kexec_loaded
// after it; then it drops whatever was loaded, so that a file accepted
// wrongly is never jumped into.
func refusalSteps() string {
	var sh strings.Builder
	for _, c := range arm64Refusals {
		fmt.Fprintf(&sh, "step %s kxboot load --kernel %s\n", c.name, c.file)
		fmt.Fprintf(&sh, "say kexecloaded \"%s=$(cat /sys/kernel/kexec_loaded)\"\n", c.name)
	}
	sh.WriteString("if [ \"$(cat /sys/kernel/kexec_loaded)\" != 0 ]; then step unload kxboot unload; fi\n")
	return sh.String()
}

// TestArm64Hop: kernel A refuses four files that are not arm64 kernels,
// then loads kernel B with kexec_load, two initrds and an argument that
// must arrive byte for byte, and jumps; stage 2 on B checks what it got.
func TestArm64Hop(t *testing.T) {
	t.Parallel()
	arm64Each(t, func(t *testing.T, bp arm64Boot) {
		a, b := kernelsOf(t, harness.ARM64)
		steps := firmwareReport + "step iomem cat /proc/iomem\n" + refusalSteps()
		if bp.path == harness.BootQEMU {
			// Once, on one path (unpacking does not depend on it): an
			// Image.gz is unpacked into memory and loaded from there.
			steps += gzLoadSteps
		}
		root := hopRootOf(t, harness.ARM64, "load", steps, firmwareReport)
		addRefusals(t, root, b)
		if bp.path == harness.BootQEMU {
			addImageGz(t, root, b)
		}
		gu := startArm64(t, bp, root, providerAppend(a))
		gu.wait()

		if got := gu.value("1", "release"); got != a.Release {
			gu.errorf("stage 1 ran on %q; want kernel A %q", got, a.Release)
		}
		gu.bootedBy("1", bp, true)
		gu.step("1", "iomem") // logged once per boot path, to see the RAM
		for _, c := range arm64Refusals {
			gu.refused("1", c.name, c.file, c.want)
		}
		var want []string
		for _, c := range arm64Refusals {
			want = append(want, c.name+"=0")
		}
		if got := gu.r.Stage("1").All("kexecloaded"); !slices.Equal(got, want) {
			gu.errorf("/sys/kernel/kexec_loaded after each refused file: %q; want %q (nothing loaded)", got, want)
		}

		if bp.path == harness.BootQEMU {
			gz := gu.ok("1", "gzload")
			if len(gz.Out) == 0 || gz.Out[0] != "Loaded with kexec_load:" {
				gu.errorf("kxboot load --kernel /boot/Image.gz says %q; want it to start with %q", gz.Stdout(), "Loaded with kexec_load:")
			}
			if got := gu.value("1", "gzloaded"); got != "1" {
				gu.errorf("/sys/kernel/kexec_loaded after loading the Image.gz: %q; want 1", got)
			}
			gu.ok("1", "gzunload")
		}
		ld := gu.ok("1", "load")
		if len(ld.Out) == 0 || ld.Out[0] != "Loaded with kexec_load:" {
			gu.errorf("kxboot load --syscall load says %q; want it to start with %q", ld.Stdout(), "Loaded with kexec_load:")
		}
		gu.field("kxboot status after load", gu.step("1", "status").Out, "loaded", "yes")
		if _, ok := gu.r.Stage("2").Get("stage"); !ok {
			ex := gu.r.Stage("1").Step("exec")
			gu.fatalf("kernel B's /init never ran; kxboot exec --force: exit status %d, stderr %q", ex.RC, ex.Stderr())
		}
		if got := gu.value("2", "release"); got != b.Release {
			gu.errorf("after the hop uname -r is %q; want kernel B %q", got, b.Release)
		}
		gu.hoppedOnce(bp, a, b)

		// The command line, byte for byte: A's without what its boot
		// loader added (BOOT_IMAGE=, initrd=, and through UEFI edk2's
		// initrd=initrd), then the appended words, then the marker.
		var reused []string
		for _, f := range cmdlineFields(providerAppend(a)) {
			if !strings.HasPrefix(f, "BOOT_IMAGE=") && !strings.HasPrefix(f, "initrd=") {
				reused = append(reused, f)
			}
		}
		gu.value("1", "cmdline")
		wantCmd := strings.Join(reused, " ") + " " + hopAppend + " kxboot.chained=1"
		if got := gu.value("2", "cmdline"); got != wantCmd {
			gu.errorf("kernel B's /proc/cmdline:\n got %q\nwant %q", got, wantCmd)
		}
		gu.landedOn(b)
		gu.bootedBy("2", bp, false)
		t.Logf("%s: hop %s -> %s through kexec_load", bp.name, a.Release, b.Release)
	})
}

// ownerCmdline is the owner's CMDLINE= in TestArm64WrapperHopsOnce: a
// root= of its own instead of the provider's, and a quoted value.
const ownerCmdline = `console=ttyAMA0 panic=-1 root=/dev/vda2 ro kxtest.owner=1 kxtest.words="a b  c" cryptomgr.notests`

// TestArm64WrapperHopsOnce: kxboot as PID 1 hops into B once, with the
// owner's CMDLINE in place of the provider's command line (its root= too),
// and B's wrapper boots on because of the marker.
func TestArm64WrapperHopsOnce(t *testing.T) {
	t.Parallel()
	arm64Each(t, func(t *testing.T, bp arm64Boot) {
		a, b := kernelsOf(t, harness.ARM64)
		conf := "KERNEL=/boot/vmlinuz-{B}\nINITRD=/boot/stage2.cpio\nCMDLINE='" + ownerCmdline + "'\nABORT_SECONDS=1\n"
		const providerRoot = "root=/dev/vda1"
		gu := startArm64(t, bp, wrapperRootOf(t, harness.ARM64, conf, firmwareReport), providerAppend(a)+" "+providerRoot)
		gu.wait()
		if _, ok := gu.r.Stage("1").Get("stage"); ok {
			gu.fatalf("the original init ran on kernel A: kxboot did not hop; its status:\n%s", indent(gu.r.Stage("1").Step("status").Stdout()))
		}
		if got := gu.value("2", "release"); got != b.Release {
			gu.errorf("userspace came up on %q; want kernel B %q", got, b.Release)
		}
		if got := gu.value("2", "pid"); got != "1" {
			gu.errorf("the original init runs as pid %s; want 1 (kxboot must exec it)", got)
		}
		gu.hoppedOnce(bp, a, b)
		cmd := gu.value("2", "cmdline")
		if strings.Contains(cmd, providerRoot) || strings.Contains(cmd, "kxtest.provider=1") {
			gu.errorf("kernel B's command line %q kept the provider's; CMDLINE= replaces it", cmd)
		}
		if want := ownerCmdline + " kxboot.chained=1"; cmd != want {
			gu.errorf("kernel B's /proc/cmdline:\n got %q\nwant %q", cmd, want)
		}
		st := gu.ok("2", "status")
		gu.field("kxboot status on B", st.Out, "via kxboot", "yes")
		gu.field("kxboot status on B", st.Out, "this boot", "boot")
		if !strings.Contains(st.Stdout(), "this boot already came through kexec") {
			gu.errorf("kxboot status on B does not give the loop guard's reason:\n%s", st.Stdout())
		}
		if !strings.Contains(gu.g.Console(), "kxboot: chain: loaded /boot/vmlinuz-"+b.Release+" with kexec_load;") {
			gu.errorf("the console does not say that the wrapper loaded B with kexec_load (the only syscall these kernels have)")
		}
		if !strings.Contains(gu.g.Console(), "kxboot: booting /boot/vmlinuz-"+b.Release+" in 1 s; press any key") {
			gu.errorf("the abort window did not show on the serial console (%s)", harness.ARM64.Console)
		}
		gu.bootedBy("2", bp, false)
		t.Logf("%s: PID 1 wrapper %s -> %s, one hop, the owner's command line", bp.name, a.Release, b.Release)
	})
}

// TestArm64WrapperBootsOn: kxboot as PID 1 finds kernel B's file cut
// short (its first 300000 bytes) and boots on with kernel A: the reason
// is logged and kept, no try is recorded, nothing is loaded, no jump.
func TestArm64WrapperBootsOn(t *testing.T) {
	t.Parallel()
	arm64Each(t, func(t *testing.T, bp arm64Boot) {
		a, b := kernelsOf(t, harness.ARM64)
		img, err := os.ReadFile(b.Image)
		if err != nil {
			t.Fatal(err)
		}
		kB := "/boot/vmlinuz-" + b.Release
		root := wrapperRootOf(t, harness.ARM64, "KERNEL="+kB+"\nABORT_SECONDS=0\n", firmwareReport+`step history kxboot history --json
step json kxboot status --json
say kexecloaded "$(cat /sys/kernel/kexec_loaded)"
`)
		root.File(kB, 0o644, img[:300000])
		gu := startArm64(t, bp, root, providerAppend(a))
		// A jump into the cut kernel hangs the machine (virt has no
		// watchdog): end it once the console has had its last words,
		// instead of at the guest's timeout.
		jumped := make(chan string, 1)
		go func() {
			if l, err := gu.g.WaitFor("kxboot: chain: jumping into", harness.DefaultTimeout); err == nil {
				jumped <- l
				time.Sleep(5 * time.Second)
				gu.g.Kill()
			}
		}()
		err = gu.g.Wait()
		t.Logf("guest ran %v", gu.g.Elapsed().Round(100*time.Millisecond))
		select {
		case l := <-jumped:
			gu.fatalf("kxboot did not boot on: it recorded a try and jumped (%q) into %s, the first 300000 bytes of kernel B; the machine hangs", l, kB)
		default:
		}
		if err != nil {
			gu.fatalf("%v", err)
		}
		gu.r = harness.Parse(gu.g.Lines())
		if got := gu.value("1", "release"); got != a.Release {
			gu.errorf("userspace is on %q; want kernel A %q", got, a.Release)
		}
		if got := gu.value("1", "pid"); got != "1" {
			gu.errorf("the original init runs as pid %s; want 1", got)
		}
		if got := gu.g.Kernels(); !slices.Equal(got, []string{a.Release}) {
			gu.errorf("kernels started: %q; want only A", got)
		}
		st := gu.ok("1", "status")
		reason := ""
		for _, l := range st.Out {
			if r, ok := strings.CutPrefix(l, "this boot:  boot on: "); ok {
				reason = r
			}
		}
		if !strings.Contains(reason, kB) || !strings.Contains(reason, "truncated") {
			gu.errorf("kxboot status: this boot's reason %q; want it to name %s and say it is truncated:\n%s", reason, kB, st.Stdout())
		}
		logged := false
		for _, l := range gu.g.Lines() {
			if strings.Contains(l, "kxboot: chain: boot on: ") && strings.Contains(l, "truncated") {
				logged = true
			}
		}
		if !logged {
			gu.errorf("the console has no line %q giving the reason", "kxboot: chain: boot on: ... truncated ...")
		}
		if got := historyEvents(gu.ok("1", "history").Out); got != "boot-on/0" {
			gu.errorf("kxboot history: events %q; want only boot-on/0 (no try)", got)
		}
		var status struct {
			Tries *struct {
				Tries   int  `json:"tries"`
				Pending bool `json:"pending"`
			} `json:"tries"`
		}
		js := gu.ok("1", "json").Stdout()
		if err := json.Unmarshal([]byte(js), &status); err != nil {
			gu.errorf("kxboot status --json: %v in %s", err, js)
		} else if status.Tries != nil && (status.Tries.Tries != 0 || status.Tries.Pending) {
			gu.errorf("kxboot status --json: a try is recorded: %s", js)
		}
		if got := gu.value("1", "kexecloaded"); got != "0" {
			gu.errorf("/sys/kernel/kexec_loaded is %s after booting on; want 0", got)
		}
		gu.bootedBy("1", bp, true)
	})
}

// fdtNode is one node of a flattened device tree.
type fdtNode struct {
	path  string
	props map[string][]byte
}

// memory says whether the node describes RAM: a memory node by its name
// or by its device_type.
func (n fdtNode) memory() bool {
	base := n.path[strings.LastIndex(n.path, "/")+1:]
	return base == "memory" || strings.HasPrefix(base, "memory@") || string(n.props["device_type"]) == "memory\x00"
}

// fdtNodes lists the nodes of a flattened device tree blob (devicetree
// specification, chapter 5) in order. The blob may end after its strings
// block: the header's total size counts qemu's padding.
func fdtNodes(b []byte) ([]fdtNode, error) {
	be := binary.BigEndian
	if len(b) < 40 || be.Uint32(b) != 0xd00dfeed {
		return nil, errors.New("no device tree header")
	}
	offStruct, offStrings := uint64(be.Uint32(b[8:])), uint64(be.Uint32(b[12:]))
	sizeStrings, sizeStruct := uint64(be.Uint32(b[32:])), uint64(be.Uint32(b[36:]))
	if offStruct+sizeStruct > uint64(len(b)) || offStrings+sizeStrings > uint64(len(b)) {
		return nil, fmt.Errorf("its blocks end beyond the %d bytes read", len(b))
	}
	st, strs := b[offStruct:offStruct+sizeStruct], b[offStrings:offStrings+sizeStrings]
	var nodes []fdtNode
	var open []int // the nodes begun and not ended, by index
	for p := 0; p+4 <= len(st); {
		tok := be.Uint32(st[p:])
		p += 4
		switch tok {
		case 1: // FDT_BEGIN_NODE: the name, NUL-terminated, padded to 4 bytes
			end := bytes.IndexByte(st[p:], 0)
			if end < 0 {
				return nil, errors.New("a node name does not end")
			}
			path := "/"
			if len(open) > 0 {
				path = strings.TrimSuffix(nodes[open[len(open)-1]].path, "/") + "/" + string(st[p:p+end])
			}
			p += (end + 4) &^ 3
			nodes = append(nodes, fdtNode{path: path, props: map[string][]byte{}})
			open = append(open, len(nodes)-1)
		case 2: // FDT_END_NODE
			if len(open) == 0 {
				return nil, errors.New("a node ends that did not begin")
			}
			open = open[:len(open)-1]
		case 3: // FDT_PROP: length, name offset, value padded to 4 bytes
			if p+8 > len(st) || len(open) == 0 {
				return nil, errors.New("a property outside a node or cut short")
			}
			n, nameOff := int(be.Uint32(st[p:])), int(be.Uint32(st[p+4:]))
			p += 8
			if p+n > len(st) || nameOff >= len(strs) {
				return nil, errors.New("a property runs beyond its block")
			}
			name := strs[nameOff:]
			if end := bytes.IndexByte(name, 0); end >= 0 {
				name = name[:end]
			}
			nodes[open[len(open)-1]].props[string(name)] = st[p : p+n]
			p += (n + 3) &^ 3
		case 4: // FDT_NOP
		case 9: // FDT_END
			return nodes, nil
		default:
			return nil, fmt.Errorf("unknown token %#x at %d", tok, p-4)
		}
	}
	return nil, errors.New("no FDT_END token")
}
