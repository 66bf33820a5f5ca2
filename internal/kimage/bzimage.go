package kimage

import (
	"encoding/binary"
	"fmt"
)

// The x86 boot protocol's setup header, which a bzImage carries at 0x1f1
// (Linux Documentation/arch/x86/boot.rst). Offsets are from the start of
// the file, which are also their offsets in struct boot_params.
const (
	BzSetupHeaderStart = 0x1F1
	// bzJumpOffset holds the jump's displacement, which says where the
	// header ends: at 0x202 plus that byte.
	bzJumpOffset = 0x201
	// bzMinVersion is boot protocol 2.12 (Linux 3.8), the first with
	// xloadflags and so with a declared 64-bit entry point.
	bzMinVersion = 0x020C
)

// xloadflags bits.
const (
	XLFKernel64       = 1 << 0 // a 64-bit entry point at the load address + 0x200
	XLFAbove4G        = 1 << 1 // kernel, boot_params, command line and initrd may lie above 4 GiB
	loadflagsLoadHigh = 1 << 0 // a bzImage: the protected-mode part goes at 1 MiB or above
)

// BzHeader is what kxboot's kexec_load needs from a bzImage's setup header.
type BzHeader struct {
	SetupSects      int    // 512-byte sectors of real-mode setup after the boot sector (0 read as 4)
	Version         uint16 // boot protocol, 0x020F for 2.15
	HeaderEnd       int    // where the setup header ends in the file (0x202 + byte 0x201)
	LoadFlags       uint8
	XLoadFlags      uint16
	KernelAlignment uint32 // the alignment the kernel wants (CONFIG_PHYSICAL_ALIGN)
	Relocatable     bool
	CmdlineSize     uint32 // the longest command line, without its NUL
	InitrdAddrMax   uint32 // the highest address the initrd may end at (below 4 GiB)
	PrefAddress     uint64 // where a non-relocatable kernel must go
	InitSize        uint32 // memory the kernel needs from its load address to decompress and start
}

// SetupBytes is the length of the boot sector and the real-mode setup: the
// protected-mode kernel starts there in the file.
func (h BzHeader) SetupBytes() int { return (h.SetupSects + 1) * 512 }

// ParseBzHeader reads the setup header of the bzImage b (name is what
// messages call it) and refuses, in one sentence each, a kernel that
// kxboot's kexec_load cannot start: one without a declared 64-bit entry.
func ParseBzHeader(b []byte, name string) (BzHeader, error) {
	le := binary.LittleEndian
	if len(b) < 0x268 || le.Uint16(b[0x1FE:]) != 0xAA55 || string(b[0x202:0x206]) != "HdrS" {
		return BzHeader{}, fmt.Errorf("kernel %s is %w: it lacks the x86 boot protocol's setup header; name the vmlinuz file of an installed kernel", name, ErrNotKernel)
	}
	h := BzHeader{
		SetupSects:      int(b[0x1F1]),
		Version:         le.Uint16(b[0x206:]),
		HeaderEnd:       0x202 + int(b[bzJumpOffset]),
		LoadFlags:       b[0x211],
		XLoadFlags:      le.Uint16(b[0x236:]),
		KernelAlignment: le.Uint32(b[0x230:]),
		Relocatable:     b[0x234] != 0,
		CmdlineSize:     le.Uint32(b[0x238:]),
		InitrdAddrMax:   le.Uint32(b[0x22C:]),
		PrefAddress:     le.Uint64(b[0x258:]),
		InitSize:        le.Uint32(b[0x260:]),
	}
	if h.SetupSects == 0 {
		h.SetupSects = 4
	}
	switch {
	case h.Version < bzMinVersion:
		return h, fmt.Errorf("kernel %s uses boot protocol %d.%02d, older than the 2.12 (Linux 3.8) that kxboot's kexec_load needs for a 64-bit entry point; use --syscall file, or kexec-tools for so old a kernel", name, h.Version>>8, h.Version&0xFF)
	case h.LoadFlags&loadflagsLoadHigh == 0:
		return h, fmt.Errorf("kernel %s is a zImage, not a bzImage (it loads below 1 MiB), which kxboot does not load; name a bzImage (any kernel since Linux 2.6)", name)
	case h.XLoadFlags&XLFKernel64 == 0:
		return h, fmt.Errorf("kernel %s has no 64-bit entry point (xloadflags bit 0 is off): it is a 32-bit kernel, which an amd64 kexec cannot start; name an amd64 kernel", name)
	case h.InitSize == 0 || h.HeaderEnd < 0x264:
		return h, fmt.Errorf("kernel %s is %w: its setup header gives no init_size, so kxboot cannot tell how much memory it needs; reinstall the kernel package", name, ErrNotKernel)
	case h.KernelAlignment == 0 || h.KernelAlignment&(h.KernelAlignment-1) != 0:
		return h, fmt.Errorf("kernel %s is %w: its kernel_alignment %#x is not a power of two; reinstall the kernel package", name, ErrNotKernel, h.KernelAlignment)
	case h.HeaderEnd > len(b) || h.SetupBytes() >= len(b):
		return h, fmt.Errorf("kernel %s is a %w: its setup takes %d bytes and the file has %d; reinstall the kernel package", name, ErrTruncated, h.SetupBytes(), len(b))
	}
	return h, nil
}
