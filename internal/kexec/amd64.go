package kexec

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/kimage"
)

// The amd64 kexec_load path. The bzImage is loaded as it is, compressed,
// the way kexec-tools and the kernel's own kexec_file_load do it: the
// protected-mode part of the file at an address aligned as the kernel
// asks, with init_size bytes of memory to decompress itself in; a zero
// page (struct boot_params) built from the image's setup header, with the
// firmware's memory map, the command line, the initrd and a fresh random
// seed; and a trampoline page that the kexec jump enters.
//
// The kernel enters the jump's target in 64-bit mode, identity-mapped,
// interrupts off (arch/x86/kernel/relocate_kernel_64.S), but with the old
// kernel's GDT, which the segments may just have overwritten. The 64-bit
// boot protocol (Documentation/arch/x86/boot.rst) wants a flat GDT with
// CS = 0x10 and DS = ES = SS = 0x18, and rsi = boot_params; the trampoline
// loads its own GDT, a stack at the top of its page, and jumps to the
// kernel's 64-bit entry, the load address + 0x200. kexec-tools' purgatory
// does the same and also checks a sha256 of the segments; kxboot's are
// copied by the kernel that checked them, as on arm64.
//
// Memory: the kernel and initrd are mapped from their files (the page
// cache, or the memfd of joined initrds), never copied into the heap; kxboot
// adds two pages. u-root's loader, which kxboot used before, unpacked the
// bzImage in Go into a vmlinux and copied its segments, about 300 MB for a
// 14 MB Debian kernel.

const (
	amd64Page = 4096
	// amd64MinAddr keeps segments above the first MiB, which holds the
	// BIOS data and the real-mode trampoline the next kernel reserves.
	amd64MinAddr = 1 << 20
	// amd64Low is the 4 GiB line: without XLF_CAN_BE_LOADED_ABOVE_4G
	// everything must lie below it.
	amd64Low = 1 << 32
	// zero page (struct boot_params) offsets, arch/x86/include/uapi/asm/bootparam.h
	bpScreenInfo     = 0x000
	bpScreenInfoLen  = 0x40
	bpACPIRSDP       = 0x070
	bpExtRamdisk     = 0x0C0
	bpExtRamdiskSize = 0x0C4
	bpExtCmdline     = 0x0C8
	bpE820Entries    = 0x1E8
	bpTypeOfLoader   = 0x210
	bpRamdisk        = 0x218
	bpRamdiskSize    = 0x21C
	bpCmdline        = 0x228
	bpSubarch        = 0x23C // hardware_subarch (u32) and hardware_subarch_data (u64)
	bpSetupData      = 0x250
	bpE820Table      = 0x2D0
	bpE820Max        = 128
	// loaderKxboot is type_of_loader: 0xD, a kexec loader (as kexec-tools
	// and the kernel's kexec_file_load write, 0xD0), version 1 in the low
	// nibble so that the next boot can tell kxboot's loader from the others.
	loaderKxboot = 0xD1
	// setup_data types
	setupE820Ext = 1
	setupRNGSeed = 9
	rngSeedLen   = 32
)

// E820 types (arch/x86/include/asm/e820/types.h).
const (
	e820RAM      = 1
	e820Reserved = 2
	e820ACPI     = 3
	e820NVS      = 4
	e820Unusable = 5
	e820PMEM     = 7
	e820PRAM     = 12
	e820SoftRes  = 0xEFFFFFFF
)

// e820Names are the type names /sys/firmware/memmap and /proc/iomem use
// (arch/x86/kernel/e820.c e820_type_to_string).
var e820Names = map[string]uint32{
	"System RAM":                 e820RAM,
	"Reserved":                   e820Reserved,
	"reserved":                   e820Reserved,
	"ACPI Tables":                e820ACPI,
	"ACPI Non-volatile Storage":  e820NVS,
	"Unusable memory":            e820Unusable,
	"Persistent Memory":          e820PMEM,
	"Persistent Memory (legacy)": e820PRAM,
	"Soft Reserved":              e820SoftRes,
}

// E820Entry is one line of the memory map the next kernel gets.
type E820Entry struct {
	Addr, Size uint64
	Type       uint32
}

// amd64Load is everything the amd64 segments are made from.
type amd64Load struct {
	Name    string // the kernel's name in messages
	Kernel  []byte // the bzImage file
	Initrd  []byte // nil for none
	Cmdline string
	E820    []E820Entry // the firmware's memory map, passed on
	RAM     []Range     // free RAM the segments may go in
	// Running is the running kernel's boot_params (/sys/kernel/boot_params/
	// data), nil when unreadable: the screen, the platform and the ACPI
	// root pointer are taken from it.
	Running []byte
	RSDP    uint64 // the ACPI root pointer from the EFI system table, 0 if none
	Rand    io.Reader
}

// amd64Plan is what buildAMD64 made: the segments in address order, the
// entry (the trampoline) and where the kernel and the zero page went.
type amd64Plan struct {
	Entry      uint64
	Segments   []Segment
	Kernel     Range
	BootParams uint64
}

// buildAMD64 places the kernel, the initrd, the zero page with the command
// line and the trampoline in RAM, each at the highest address it fits below
// 4 GiB (kexec-tools' choice), or above when the kernel allows it and
// nothing fits below. It only computes; nothing is loaded.
func buildAMD64(l amd64Load) (amd64Plan, error) {
	var p amd64Plan
	h, err := kimage.ParseBzHeader(l.Kernel, l.Name)
	if err != nil {
		return p, fmt.Errorf("cannot load: %w", err)
	}
	if uint64(len(l.Cmdline)) > uint64(h.CmdlineSize) {
		return p, fmt.Errorf("cannot load %s: the command line has %d bytes and this kernel takes at most %d; shorten CMDLINE/APPEND", l.Name, len(l.Cmdline), h.CmdlineSize)
	}
	above4G := h.XLoadFlags&kimage.XLFAbove4G != 0
	var used []Range
	place := func(what string, size, align, limit uint64) (uint64, error) {
		at, ok := highestHole(l.RAM, used, size, align, amd64MinAddr, min(limit, amd64Low))
		if !ok && above4G && limit > amd64Low {
			at, ok = highestHole(l.RAM, used, size, align, amd64MinAddr, limit)
		}
		if !ok {
			return 0, fmt.Errorf("cannot load %s: no free range of %d KiB for the %s in the machine's RAM; free memory or load a smaller kernel or initrd", l.Name, (size+1023)>>10, what)
		}
		used = append(used, Range{at, at + size})
		return at, nil
	}

	// The kernel: the file after the real-mode setup, in init_size bytes.
	kbuf := l.Kernel[h.SetupBytes():]
	ksize := roundUp(max(uint64(h.InitSize), uint64(len(kbuf))), amd64Page)
	var kat uint64
	if h.Relocatable {
		if kat, err = place("kernel", ksize, max(uint64(h.KernelAlignment), amd64Page), ^uint64(0)); err != nil {
			return p, err
		}
	} else {
		kat = h.PrefAddress
		if kat%amd64Page != 0 || !fits(l.RAM, Range{kat, kat + ksize}) {
			return p, fmt.Errorf("cannot load %s: it is not relocatable and must go at %#x, where %d KiB of free RAM are not to be had; use --syscall file", l.Name, kat, ksize>>10)
		}
		used = append(used, Range{kat, kat + ksize})
	}
	p.Kernel = Range{kat, kat + ksize}
	segs := []Segment{{Buf: kbuf, Mem: kat, MemSize: ksize}}

	var initrdAt uint64
	if len(l.Initrd) > 0 {
		size := roundUp(uint64(len(l.Initrd)), amd64Page)
		limit := uint64(h.InitrdAddrMax) + 1
		if above4G || h.InitrdAddrMax == 0 {
			limit = ^uint64(0)
		}
		if initrdAt, err = place("initrd", size, amd64Page, limit); err != nil {
			return p, err
		}
		segs = append(segs, Segment{Buf: l.Initrd, Mem: initrdAt, MemSize: size})
	}

	// The zero page, then the command line, then the setup_data list.
	zp := make([]byte, amd64Page, amd64Page+len(l.Cmdline)+1+64)
	le := binary.LittleEndian
	copy(zp[kimage.BzSetupHeaderStart:h.HeaderEnd], l.Kernel[kimage.BzSetupHeaderStart:h.HeaderEnd])
	if len(l.Running) >= bpSubarch+12 {
		copy(zp[bpScreenInfo:bpScreenInfo+bpScreenInfoLen], l.Running[bpScreenInfo:])
		copy(zp[bpSubarch:bpSubarch+12], l.Running[bpSubarch:])
	} else {
		// VGA text, 80x25, as kexec-tools sets when it knows nothing.
		zp[0x07] = 80               // orig_video_cols
		zp[0x0E] = 25               // orig_video_lines
		zp[0x0F] = 1                // orig_video_isVGA
		le.PutUint16(zp[0x10:], 16) // orig_video_points
	}
	rsdp := l.RSDP
	if rsdp == 0 && len(l.Running) >= bpACPIRSDP+8 {
		rsdp = le.Uint64(l.Running[bpACPIRSDP:])
	}
	le.PutUint64(zp[bpACPIRSDP:], rsdp)
	zp[bpTypeOfLoader] = loaderKxboot
	e820 := slices.Clone(l.E820)
	slices.SortFunc(e820, func(a, b E820Entry) int { return cmp.Compare(a.Addr, b.Addr) })
	n := min(len(e820), bpE820Max)
	zp[bpE820Entries] = byte(n)
	for i, e := range e820[:n] {
		o := bpE820Table + 20*i
		le.PutUint64(zp[o:], e.Addr)
		le.PutUint64(zp[o+8:], e.Size)
		le.PutUint32(zp[o+16:], e.Type)
	}
	zp = append(zp, l.Cmdline...)
	zp = append(zp, 0)
	// setup_data nodes: next (u64), type (u32), len (u32), data; 8-aligned.
	// Their addresses depend on where the page goes, so they are linked
	// after placement.
	var nodes []int
	addNode := func(typ uint32, data []byte) {
		for len(zp)%8 != 0 {
			zp = append(zp, 0)
		}
		nodes = append(nodes, len(zp))
		zp = le.AppendUint64(zp, 0)
		zp = le.AppendUint32(zp, typ)
		zp = le.AppendUint32(zp, uint32(len(data)))
		zp = append(zp, data...)
	}
	if len(e820) > bpE820Max {
		var ext []byte
		for _, e := range e820[bpE820Max:] {
			ext = le.AppendUint64(ext, e.Addr)
			ext = le.AppendUint64(ext, e.Size)
			ext = le.AppendUint32(ext, e.Type)
		}
		addNode(setupE820Ext, ext)
	}
	// A fresh seed for the next kernel's random pool (SETUP_RNG_SEED,
	// read since Linux 6.0, ignored before), as kexec-tools and
	// kexec_file_load give.
	seed := make([]byte, rngSeedLen)
	if _, err := io.ReadFull(l.Rand, seed); err != nil {
		return p, fmt.Errorf("cannot load %s: no random bytes for the next kernel's seed: %v", l.Name, err)
	}
	addNode(setupRNGSeed, seed)
	zsize := roundUp(uint64(len(zp)), amd64Page)
	zat, err := place("boot parameters", zsize, amd64Page, amd64Low)
	if err != nil {
		return p, err
	}
	cmdAt := zat + amd64Page
	le.PutUint32(zp[bpCmdline:], uint32(cmdAt))
	le.PutUint32(zp[bpExtCmdline:], uint32(cmdAt>>32))
	le.PutUint32(zp[bpRamdisk:], uint32(initrdAt))
	le.PutUint32(zp[bpExtRamdisk:], uint32(initrdAt>>32))
	le.PutUint32(zp[bpRamdiskSize:], uint32(len(l.Initrd)))
	le.PutUint32(zp[bpExtRamdiskSize:], uint32(uint64(len(l.Initrd))>>32))
	link := zp[bpSetupData:]
	for _, off := range nodes {
		le.PutUint64(link, zat+uint64(off))
		link = zp[off:]
	}
	segs = append(segs, Segment{Buf: zp, Mem: zat, MemSize: zsize})
	p.BootParams = zat

	tat, err := place("trampoline", amd64Page, amd64Page, amd64Low)
	if err != nil {
		return p, err
	}
	segs = append(segs, Segment{Buf: amd64Trampoline(tat, zat, kat+0x200), Mem: tat, MemSize: amd64Page})
	slices.SortFunc(segs, func(a, b Segment) int { return cmp.Compare(a.Mem, b.Mem) })
	p.Entry, p.Segments = tat, segs
	return p, nil
}

// amd64Trampoline returns the page the kexec jump enters, at address at:
// load a flat GDT (null, null, 64-bit code at 0x10, data at 0x18), the
// data segments, a stack at the top of the page, CS through a far return,
// then rsi = boot_params and a jump to entry. Assembled with GNU as from:
//
//	lgdt gdtdesc(%rip); mov $0x18,%eax; mov %eax,%ds/%es/%ss/%fs/%gs
//	lea page_end(%rip),%rsp; push $0x10; lea 1f(%rip),%rax; push %rax; lretq
//	1: mov bp(%rip),%rsi; mov entry(%rip),%rax; jmp *%rax
func amd64Trampoline(at, bootParams, entry uint64) []byte {
	code := []byte{
		0x0F, 0x01, 0x15, 0x59, 0x00, 0x00, 0x00, // 00 lgdt 0x60
		0xB8, 0x18, 0x00, 0x00, 0x00, // 07 mov $0x18,%eax
		0x8E, 0xD8, // 0c mov %eax,%ds
		0x8E, 0xC0, // 0e mov %eax,%es
		0x8E, 0xD0, // 10 mov %eax,%ss
		0x8E, 0xE0, // 12 mov %eax,%fs
		0x8E, 0xE8, // 14 mov %eax,%gs
		0x48, 0x8D, 0x25, 0xE3, 0x0F, 0x00, 0x00, // 16 lea 0x1000,%rsp (the page's end)
		0x6A, 0x10, // 1d push $0x10
		0x48, 0x8D, 0x05, 0x03, 0x00, 0x00, 0x00, // 1f lea 0x29,%rax
		0x50,       // 26 push %rax
		0x48, 0xCB, // 27 lretq
		0x48, 0x8B, 0x35, 0x40, 0x00, 0x00, 0x00, // 29 mov 0x70,%rsi
		0x48, 0x8B, 0x05, 0x41, 0x00, 0x00, 0x00, // 30 mov 0x78,%rax
		0xFF, 0xE0, // 37 jmp *%rax
	}
	const gdt, gdtdesc, bp, ent = 0x40, 0x60, 0x70, 0x78
	b := make([]byte, 0x80)
	copy(b, code)
	le := binary.LittleEndian
	le.PutUint64(b[gdt+0x10:], 0x00AF9A000000FFFF) // 0x10: code, 64-bit, flat
	le.PutUint64(b[gdt+0x18:], 0x00CF92000000FFFF) // 0x18: data, flat
	le.PutUint16(b[gdtdesc:], 4*8-1)
	le.PutUint64(b[gdtdesc+2:], at+gdt)
	le.PutUint64(b[bp:], bootParams)
	le.PutUint64(b[ent:], entry)
	return b
}

// fits says whether r lies inside one range of free.
func fits(free []Range, r Range) bool {
	for _, f := range free {
		if r.Start >= f.Start && r.End <= f.End {
			return true
		}
	}
	return false
}

// highestHole returns the highest address aligned to align (a power of
// two), at or above lo, where size bytes fit in free without touching used
// and end at or below hi. This is kexec-tools' locate_hole for x86, which
// places from the top.
func highestHole(free, used []Range, size, align, lo, hi uint64) (uint64, bool) {
	avail := subtract(free, merge(used))
	for i := len(avail) - 1; i >= 0; i-- {
		r := avail[i]
		end := min(r.End, hi)
		if end < size || end-size < max(r.Start, lo) {
			continue
		}
		start := (end - size) &^ (align - 1)
		if start >= max(r.Start, lo) {
			return start, true
		}
	}
	return 0, false
}

// Where an amd64 kexec_load takes the machine's description from.
const (
	memmapDir      = "/sys/firmware/memmap"
	bootParamsPath = "/sys/kernel/boot_params/data"
	efiSystab      = "/sys/firmware/efi/systab"
)

// e820FromMemmap reads the firmware's memory map as the running kernel got
// it, from /sys/firmware/memmap (one directory per entry with start, end
// and type), which kexec-tools passes on too.
func (e *Engine) e820FromMemmap() ([]E820Entry, error) {
	dirs, err := e.FS.Glob(memmapDir + "/*")
	if err != nil || len(dirs) == 0 {
		return nil, fmt.Errorf("%s is missing or empty (%v); kxboot reads the firmware's memory map there (CONFIG_FIRMWARE_MEMMAP, on in every distribution kernel)", memmapDir, err)
	}
	var out []E820Entry
	for _, d := range dirs {
		var v [2]uint64
		for i, f := range []string{"start", "end"} {
			s, err := e.FS.ReadString(d + "/" + f)
			if err == nil {
				v[i], err = strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("%s/%s is not readable as an address (%v)", d, f, err)
			}
		}
		typ, err := e.FS.ReadString(d + "/type")
		if err != nil {
			return nil, fmt.Errorf("%s/type is not readable (%v)", d, err)
		}
		t, ok := e820Names[typ]
		if !ok {
			t = e820Reserved // an unknown kind of memory is not for the next kernel to use
		}
		if v[1] < v[0] {
			return nil, fmt.Errorf("%s ends (%#x) before it starts (%#x)", d, v[1], v[0])
		}
		out = append(out, E820Entry{Addr: v[0], Size: v[1] - v[0] + 1, Type: t})
	}
	slices.SortFunc(out, func(a, b E820Entry) int { return cmp.Compare(a.Addr, b.Addr) })
	return out, nil
}

// rsdpFromSystab reads the ACPI root pointer from the EFI system table
// the running kernel shows (ACPI20= preferred to ACPI=); 0 on a BIOS boot,
// where the next kernel finds it by scanning the BIOS area itself.
func (e *Engine) rsdpFromSystab() uint64 {
	s, err := e.FS.ReadString(efiSystab)
	if err != nil {
		return 0
	}
	var acpi, acpi20 uint64
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64)
		if err != nil {
			continue
		}
		switch k {
		case "ACPI20":
			acpi20 = n
		case "ACPI":
			acpi = n
		}
	}
	if acpi20 != 0 {
		return acpi20
	}
	return acpi
}

// amd64Sources reads the free RAM (/proc/iomem) and the firmware's memory
// map (/sys/firmware/memmap) an amd64 kexec_load is built from.
func (e *Engine) amd64Sources() ([]Range, []E820Entry, error) {
	b, err := e.FS.ReadFile(iomemPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is not readable (%v); kxboot needs it to know where RAM is: mount /proc", iomemPath, err)
	}
	ram, err := ramFromIOMem(b, iomemPath)
	if err != nil {
		return nil, nil, err
	}
	e820, err := e.e820FromMemmap()
	if err != nil {
		return nil, nil, err
	}
	return ram, e820, nil
}

// amd64SourcesReport is SegmentSources on amd64.
func (e *Engine) amd64SourcesReport() (string, error) {
	ram, e820, err := e.amd64Sources()
	if err != nil {
		return "", err
	}
	how := "a BIOS boot"
	if e.rsdpFromSystab() != 0 {
		// kxboot passes no EFI data (kexec-tools' SETUP_EFI): the next
		// kernel finds ACPI through the root pointer and boots without
		// EFI runtime services.
		how = "a UEFI boot: the next kernel gets the ACPI root pointer but not EFI runtime services (no efivars)"
	}
	return fmt.Sprintf("RAM from %s (%d free ranges, %d MiB), firmware memory map from %s (%d entries, %s)", iomemPath, len(ram), totalSize(ram)>>20, memmapDir, len(e820), how), nil
}

// loadAMD64 builds the amd64 segments and loads them with kexec_load. The
// kernel and initrd are mapped, not read (see loadArm64).
func (e *Engine) loadAMD64(kernel, initrd *os.File, r Request) error {
	ram, e820, err := e.amd64Sources()
	if err != nil {
		return fmt.Errorf("cannot load %s with kexec_load: %w", r.Kernel, err)
	}
	running, _ := e.FS.ReadFile(bootParamsPath)
	return e.kexecLoad(kernel, initrd, r, func(kmap, imap []byte) (uint64, []Segment, error) {
		p, err := buildAMD64(amd64Load{
			Name: r.Kernel, Kernel: kmap, Initrd: imap, Cmdline: r.Cmdline,
			E820: e820, RAM: ram, Running: running, RSDP: e.rsdpFromSystab(), Rand: e.random(),
		})
		return p.Entry, p.Segments, err
	})
}

// kexecLoad maps the kernel and the initrd, has build make the segments
// from the mappings, and loads them with kexec_load, except in a dry run;
// the mappings last until the kernel has copied the segments.
func (e *Engine) kexecLoad(kernel, initrd *os.File, r Request, build func(kmap, imap []byte) (entry uint64, segs []Segment, err error)) error {
	kmap, imap, unmap, err := mapBoth(kernel, initrd, r.Kernel)
	if err != nil {
		return err
	}
	defer unmap()
	entry, segs, err := build(kmap, imap)
	if err != nil || r.DryRun {
		return err
	}
	return e.explain(e.Sys.KexecLoad(entry, segs), "kexec_load", r)
}

// mapBoth maps the kernel and the initrd (nil for none or an empty one);
// unmap releases both.
func mapBoth(kernel, initrd *os.File, name string) (kmap, imap []byte, unmap func(), err error) {
	if kmap, err = mapFile(kernel); err != nil {
		return nil, nil, nil, fmt.Errorf("cannot load %s: mapping the kernel: %w", name, err)
	}
	if initrd != nil {
		if imap, err = mapFile(initrd); err != nil {
			unix.Munmap(kmap)
			return nil, nil, nil, fmt.Errorf("cannot load %s: mapping the initrd: %w", name, err)
		}
	}
	return kmap, imap, func() {
		unix.Munmap(kmap)
		if imap != nil {
			unix.Munmap(imap)
		}
	}, nil
}
