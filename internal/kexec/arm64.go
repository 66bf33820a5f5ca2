package kexec

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/fdt"
	"github.com/kxboot/kxboot/internal/kimage"
)

// The arm64 kexec_load path. The kernel enters what the entry address
// holds with the MMU off and every register zero (arch/arm64/kernel/
// relocate_kernel.S); Linux wants x0 = the device tree and x1-x3 = 0
// (Documentation/arch/arm64/booting.rst). kexec_load sets none of that, so
// the entry is a small trampoline page that loads x0 and jumps to the
// Image. No purgatory, no checksum: the segments are copied by the kernel
// that checked them.
//
// The placement follows kexec-tools (kexec/arch/arm64): the kernel at the
// lowest 2 MiB-aligned free address plus text_offset, then the initrd, the
// device tree and the trampoline, each at the lowest page-aligned free
// address above the one before. RAM comes from /proc/iomem, which works on
// a UEFI boot too, where the device tree the EFI stub made has no memory
// node (the RAM is in the EFI memory map, which the tree's /chosen points
// to and which kxboot keeps for the next kernel).

const (
	arm64KernelAlign = 2 << 20
	// arm64MaxDTB is the largest device tree Linux accepts.
	arm64MaxDTB = 2 << 20
	// arm64CmdlineMax is COMMAND_LINE_SIZE on arm64, with the NUL.
	arm64CmdlineMax = 2048
	// arm64InitrdWindow: the initrd and the kernel must lie in one 1
	// GiB-aligned window of at most 32 GiB.
	arm64InitrdWindow = 32 << 30
)

// arm64Load is everything the arm64 segments are made from.
type arm64Load struct {
	Name     string // the kernel's name in messages
	Kernel   []byte // the uncompressed Image
	Initrd   []byte // nil for none: an empty one is passed
	Cmdline  string
	FDT      []byte // the running kernel's device tree (/sys/firmware/fdt)
	FDTName  string
	RAM      []Range // from /proc/iomem
	PageSize uint64
	Rand     io.Reader // for kaslr-seed and rng-seed
}

// arm64Plan is what buildArm64 made: the segments in address order and
// the entry (the trampoline).
type arm64Plan struct {
	Entry    uint64
	Segments []Segment
	Kernel   Range // where the Image runs: base + text_offset, image_size
}

// buildArm64 places the Image, the initrd, the edited device tree and the
// trampoline in RAM. It only computes; nothing is loaded.
func buildArm64(l arm64Load) (arm64Plan, error) {
	var p arm64Plan
	hdr, err := kimage.ParseArm64Header(l.Kernel, l.Name)
	if err != nil {
		return p, fmt.Errorf("cannot load: %w", err)
	}
	if len(l.Cmdline) >= arm64CmdlineMax {
		return p, fmt.Errorf("cannot load %s: the command line has %d bytes and arm64 kernels take at most %d; shorten CMDLINE/APPEND", l.Name, len(l.Cmdline), arm64CmdlineMax-1)
	}
	page := l.PageSize
	if hdr.TextOffset%page != 0 {
		return p, fmt.Errorf("cannot load %s: its text_offset %#x is not a multiple of the page size %d; name a kernel built for this machine", l.Name, hdr.TextOffset, page)
	}
	var used []Range
	place := func(what string, size, align, min uint64) (uint64, error) {
		at, ok := lowestHole(l.RAM, used, size, align, min)
		if !ok {
			return 0, fmt.Errorf("cannot load %s: no free range of %d KiB for the %s in the RAM /proc/iomem shows; free memory or load a smaller kernel or initrd", l.Name, (size+1023)>>10, what)
		}
		used = append(used, Range{at, at + size})
		return at, nil
	}

	// The kernel: text_offset + image_size from a 2 MiB-aligned base; the
	// file is copied to base + text_offset and the rest (BSS, the initial
	// page tables) zeroed up to image_size.
	imgSize := roundUp(hdr.ImageSize, page)
	base, err := place("kernel", hdr.TextOffset+imgSize, arm64KernelAlign, 0)
	if err != nil {
		return p, err
	}
	p.Kernel = Range{base + hdr.TextOffset, base + hdr.TextOffset + imgSize}
	if uint64(len(l.Kernel)) > imgSize {
		// kimage refuses such a file before; the kernel would too (EINVAL).
		return p, fmt.Errorf("cannot load %s: the file has %d bytes, more than the %d its header says the kernel takes in memory; reinstall the kernel package", l.Name, len(l.Kernel), hdr.ImageSize)
	}
	segs := []Segment{{Buf: l.Kernel, Mem: p.Kernel.Start, MemSize: imgSize}}
	next := p.Kernel.End

	tree, err := fdt.Parse(l.FDT)
	if err != nil {
		return p, fmt.Errorf("cannot load %s: the running kernel's %s cannot be read (%v); kexec_load on arm64 passes it on to the next kernel", l.Name, l.FDTName, err)
	}
	chosen := tree.Ensure("/chosen")
	chosen.SetString("bootargs", l.Cmdline)
	// The first kernel's crash-dump properties describe memory the next
	// kernel must not trust; the initrd ones are set anew below.
	for _, prop := range []string{"linux,elfcorehdr", "linux,usable-memory-range", "linux,initrd-start", "linux,initrd-end"} {
		chosen.Delete(prop)
	}
	initrd := l.Initrd
	if initrd == nil {
		// No initrd asked for: pass an empty one (a zero page, which the
		// kernel's initramfs reader skips). Without one in the tree, a
		// kernel entered after a UEFI boot takes the initrd from the EFI
		// stub's LINUX_EFI_INITRD_MEDIA_GUID table, which still points at
		// the first kernel's initrd, long freed: seen in QEMU with Debian's
		// 6.1 kernels ("Initramfs unpacking failed: invalid magic").
		initrd = make([]byte, page)
	}
	size := roundUp(uint64(len(initrd)), page)
	at, err := place("initrd", size, page, next)
	if err != nil {
		return p, err
	}
	if window := base &^ (1<<30 - 1); at+size-window > arm64InitrdWindow {
		return p, fmt.Errorf("cannot load %s: the initrd would end %d GiB above the kernel's 1 GiB-aligned base, and arm64 wants both within 32 GiB; use a smaller initrd", l.Name, (at+size-window)>>30)
	}
	segs = append(segs, Segment{Buf: initrd, Mem: at, MemSize: size})
	chosen.SetU64("linux,initrd-start", at)
	chosen.SetU64("linux,initrd-end", at+uint64(len(initrd)))
	next = at + size
	// Fresh randomness: the first kernel zeroed or removed what it used.
	// kaslr-seed only where the firmware provides one (as kexec-tools);
	// rng-seed always, as the kernel's own kexec_file_load does.
	var seed [8 + 64]byte
	if _, err := io.ReadFull(l.Rand, seed[:]); err != nil {
		return p, fmt.Errorf("cannot load %s: no random bytes for the next kernel's seeds: %v", l.Name, err)
	}
	if _, ok := chosen.Get("kaslr-seed"); ok {
		chosen.SetU64("kaslr-seed", binary.BigEndian.Uint64(seed[:8]))
	}
	chosen.Set("rng-seed", seed[8:])
	dtb := tree.Marshal()
	if len(dtb) > arm64MaxDTB {
		return p, fmt.Errorf("cannot load %s: the device tree for it has %d bytes and arm64 kernels accept at most 2 MiB", l.Name, len(dtb))
	}
	dtbSize := roundUp(uint64(len(dtb)), page)
	dtbAt, err := place("device tree", dtbSize, page, next)
	if err != nil {
		return p, err
	}
	segs = append(segs, Segment{Buf: dtb, Mem: dtbAt, MemSize: dtbSize})

	tramp := arm64Trampoline(dtbAt, p.Kernel.Start)
	trampAt, err := place("trampoline", page, page, dtbAt+dtbSize)
	if err != nil {
		return p, err
	}
	segs = append(segs, Segment{Buf: tramp, Mem: trampAt, MemSize: page})
	p.Entry = trampAt
	p.Segments = segs
	return p, nil
}

// arm64Trampoline returns the code the kexec entry runs: x0 = dtb,
// x1 = x2 = x3 = 0, branch to the Image. Two PC-relative 64-bit literal
// loads read the addresses stored after the code.
func arm64Trampoline(dtb, kernel uint64) []byte {
	const (
		ldrX0 = 0x58000000 | 6<<5 | 0 // ldr x0, .+24 (dtb)
		ldrX4 = 0x58000000 | 7<<5 | 4 // ldr x4, .+28 (kernel)
		movX1 = 0xAA1F03E1            // mov x1, xzr
		movX2 = 0xAA1F03E2            // mov x2, xzr
		movX3 = 0xAA1F03E3            // mov x3, xzr
		brX4  = 0xD61F0080            // br x4
	)
	b := make([]byte, 40)
	le := binary.LittleEndian
	for i, insn := range []uint32{ldrX0, ldrX4, movX1, movX2, movX3, brX4} {
		le.PutUint32(b[4*i:], insn)
	}
	le.PutUint64(b[24:], dtb)
	le.PutUint64(b[32:], kernel)
	return b
}

func roundUp(n, align uint64) uint64 { return (n + align - 1) &^ (align - 1) }

// Where an arm64 kexec_load takes the machine's RAM and device tree from.
const iomemPath, fdtPath = "/proc/iomem", "/sys/firmware/fdt"

// arm64Sources reads the free RAM (from /proc/iomem) and the running
// device tree that an arm64 kexec_load is built from; load and doctor
// (SegmentSources) both read them here.
func (e *Engine) arm64Sources() ([]Range, []byte, error) {
	b, err := e.FS.ReadFile(iomemPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is not readable (%v); kxboot needs it to know where RAM is: mount /proc", iomemPath, err)
	}
	ram, err := ramFromIOMem(b, iomemPath)
	if err != nil {
		return nil, nil, err
	}
	tree, err := e.FS.ReadFile(fdtPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is not readable (%v): the running kernel shows no device tree to pass on (is sysfs mounted?); a kernel with kexec_file_load (CONFIG_KEXEC_FILE) does not need it", fdtPath, err)
	}
	return ram, tree, nil
}

// loadArm64 builds the arm64 segments from the machine's /proc/iomem and
// device tree and loads them with kexec_load. The kernel and initrd are
// mapped, not read: the segments point at the page cache (or the memfd of
// an unpacked Image), so the load costs no copy of them in kxboot's heap.
func (e *Engine) loadArm64(kernel, initrd *os.File, r Request) error {
	ram, tree, err := e.arm64Sources()
	if err != nil {
		return fmt.Errorf("cannot load %s with kexec_load: %w", r.Kernel, err)
	}
	return e.kexecLoad(kernel, initrd, r, func(kmap, imap []byte) (uint64, []Segment, error) {
		p, err := buildArm64(arm64Load{
			Name: r.Kernel, Kernel: kmap, Initrd: imap, Cmdline: r.Cmdline,
			FDT: tree, FDTName: fdtPath, RAM: ram,
			PageSize: uint64(os.Getpagesize()), Rand: e.random(),
		})
		return p.Entry, p.Segments, err
	})
}

// random is where the next kernel's seeds come from.
func (e *Engine) random() io.Reader {
	if e.Rand != nil {
		return e.Rand
	}
	return rand.Reader
}

// mapFile maps the whole file read-only; nil for an empty file.
func mapFile(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, nil
	}
	return unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
}

// SegmentSources reads what a kexec_load would be built from, and checks
// it, without loading anything: on arm64 the RAM in /proc/iomem and the
// device tree in /sys/firmware/fdt, on amd64 the RAM and the firmware's
// memory map in /sys/firmware/memmap. It says what it found, or why a
// kexec_load could not be built on this boot.
func (e *Engine) SegmentSources() (string, error) {
	if e.MachineArch() != "arm64" {
		return e.amd64SourcesReport()
	}
	ram, blob, err := e.arm64Sources()
	if err != nil {
		return "", err
	}
	tree, err := fdt.Parse(blob)
	if err != nil {
		return "", fmt.Errorf("%s cannot be read: %v", fdtPath, err)
	}
	how := "a device-tree boot"
	if c := tree.Lookup("/chosen"); c != nil {
		if _, ok := c.Get("linux,uefi-mmap-start"); ok {
			how = "a UEFI boot: the tree's EFI memory map properties are passed on, so the next kernel finds its memory"
		}
	}
	return fmt.Sprintf("RAM from %s (%d free ranges, %d MiB), device tree from %s (%d bytes, %s)", iomemPath, len(ram), totalSize(ram)>>20, fdtPath, len(blob), how), nil
}
