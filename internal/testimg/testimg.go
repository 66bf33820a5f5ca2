// Package testimg builds small fake kernel images with real headers, for
// tests of code that recognises and loads kernels. Nothing here boots.
package testimg

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
)

// BzImage returns an x86 bzImage of n bytes (n >= 0x1000) whose header
// claims exactly n bytes, with release as its kernel_version string.
func BzImage(n int, release string) []byte {
	b := make([]byte, n)
	le := binary.LittleEndian
	const setupSects = 3
	b[0x1F1] = setupSects
	payload := n - (setupSects+1)*512
	le.PutUint32(b[0x1F4:], uint32(payload/16))
	le.PutUint16(b[0x1FE:], 0xAA55)
	copy(b[0x202:], "HdrS")
	le.PutUint16(b[0x206:], 0x020F) // boot protocol 2.15
	// The rest of the setup header as in Debian 12's 6.1 kernels: the
	// header ends at 0x202 + 0x6a, a relocatable 64-bit kernel with 2 MiB
	// alignment that may lie above 4 GiB, decompressing in init_size bytes
	// (here 4 times the file, page-aligned).
	b[0x200], b[0x201] = 0xEB, 0x6A
	b[0x211] = 0x01                                   // loadflags: LOADED_HIGH
	le.PutUint32(b[0x22C:], 0x7FFFFFFF)               // initrd_addr_max
	le.PutUint32(b[0x230:], 0x200000)                 // kernel_alignment
	b[0x234], b[0x235] = 1, 21                        // relocatable_kernel, min_alignment
	le.PutUint16(b[0x236:], 0x7F)                     // xloadflags
	le.PutUint32(b[0x238:], 2047)                     // cmdline_size
	le.PutUint64(b[0x258:], 0x1000000)                // pref_address
	le.PutUint32(b[0x260:], uint32(4*n+0xFFF)&^0xFFF) // init_size
	// kernel_version points (minus 0x200) at a NUL-terminated string.
	le.PutUint16(b[0x20E:], 0x300-0x200)
	copy(b[0x300:], release+" (test@kxboot) #1 SMP\x00")
	return b
}

// Arm64 returns an arm64 Image of n bytes (n >= 0x40).
func Arm64(n int) []byte {
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b[16:], uint64(n)) // image_size
	copy(b[0x38:], "ARM\x64")
	for i := 0x40; i < n; i++ {
		b[i] = byte(i * 7)
	}
	return b
}

// Banner is the start of the linux_banner string of a kernel built as
// release, as "cat /proc/version" shows it.
func Banner(release string) string {
	return "Linux version " + release + " (test@kxboot) (gcc (GCC) 12.2.0, GNU ld 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.0-1 (2025-01-01)\n\x00"
}

// Arm64Release returns Arm64(n) with Banner(release) in its middle, where
// the kernel's read-only data would hold it.
func Arm64Release(n int, release string) []byte {
	b := Arm64(n)
	copy(b[n/2:], Banner(release))
	return b
}

// Arm64PE describes an arm64 Image with the EFI stub's PE header, laid out
// as Linux lays it out (arch/arm64/kernel/efi-header.S) and as in Debian's
// signed kernels: the PE header at 0x40, right after the Image header; the
// sections after 0x200 bytes of headers, at the same offsets in the file as
// in memory, the last one ending where the unsigned file ends; then the
// certificate table of a signed image.
type Arm64PE struct {
	// Sections are the sizes of the sections' data in the file (Linux has
	// .text and .data), at most 6. Empty means one 0x1000-byte section.
	Sections []int
	// Cert is the size of the certificate table signing appends, 0 for an
	// unsigned image.
	Cert int
	// BSS is what image_size and SizeOfImage count beyond the sections'
	// data. 0 means 0x10000 (more than any test's Cert).
	BSS int
	// Release, if not "", puts Banner(Release) in the middle of the last
	// section, which must be large enough to hold it.
	Release string
}

// PE header offsets in an Arm64PE image: the PE header, its optional header
// and section table, and the certificate table's data directory entry.
const (
	PEOffset       = 0x40
	PEOptOffset    = PEOffset + 24
	PESectOffset   = PEOptOffset + 160
	PECertDirEntry = PEOptOffset + 112 + 4*8
	peHeaders      = 0x200
)

// Bytes builds the image.
func (p Arm64PE) Bytes() []byte {
	sects := p.Sections
	if len(sects) == 0 {
		sects = []int{0x1000}
	}
	bss := p.BSS
	if bss == 0 {
		bss = 0x10000
	}
	dataEnd := peHeaders
	for _, n := range sects {
		dataEnd += n
	}
	size := dataEnd
	certOff := 0
	if p.Cert > 0 {
		certOff = (dataEnd + 7) &^ 7 // sbsign aligns the table to 8 bytes
		size = certOff + p.Cert
	}
	imageSize := dataEnd + bss

	b := make([]byte, size)
	le := binary.LittleEndian
	for i := peHeaders; i < dataEnd; i++ {
		b[i] = byte(i * 7)
	}
	// The Image header; "MZ" doubles as an instruction in code0.
	copy(b, "MZ\x40\xfa")
	le.PutUint64(b[16:], uint64(imageSize))
	le.PutUint64(b[24:], 0xa) // 4 KiB pages, anywhere in memory
	copy(b[0x38:], "ARM\x64")
	le.PutUint32(b[0x3C:], PEOffset)

	pe := b[PEOffset:]
	copy(pe, "PE\x00\x00")
	le.PutUint16(pe[4:], 0xAA64)
	le.PutUint16(pe[6:], uint16(len(sects)))
	le.PutUint16(pe[20:], PESectOffset-PEOptOffset)
	le.PutUint16(pe[22:], 0x206) // executable, debug stripped, line numbers stripped

	opt := b[PEOptOffset:]
	le.PutUint16(opt, 0x20B)          // PE32+
	le.PutUint32(opt[16:], peHeaders) // AddressOfEntryPoint
	le.PutUint32(opt[32:], 0x1000)    // SectionAlignment
	le.PutUint32(opt[36:], 0x200)     // FileAlignment
	le.PutUint32(opt[56:], uint32(imageSize))
	le.PutUint32(opt[60:], peHeaders) // SizeOfHeaders
	le.PutUint16(opt[68:], 10)        // EFI application
	le.PutUint32(opt[108:], 6)        // data directories
	if p.Cert > 0 {
		le.PutUint32(b[PECertDirEntry:], uint32(certOff))
		le.PutUint32(b[PECertDirEntry+4:], uint32(p.Cert))
		// WIN_CERTIFICATE: length, revision 2.0, PKCS#7 signed data.
		le.PutUint32(b[certOff:], uint32(p.Cert))
		le.PutUint16(b[certOff+4:], 0x0200)
		le.PutUint16(b[certOff+6:], 0x0002)
	}

	off := peHeaders
	for i, n := range sects {
		s := b[PESectOffset+40*i:]
		copy(s, ".data")
		if i == 0 {
			copy(s, ".text")
		}
		vsize := n
		if i == len(sects)-1 {
			vsize += bss
		}
		le.PutUint32(s[8:], uint32(vsize))
		le.PutUint32(s[12:], uint32(off)) // VirtualAddress
		le.PutUint32(s[16:], uint32(n))   // SizeOfRawData
		le.PutUint32(s[20:], uint32(off)) // PointerToRawData
		off += n
	}
	if p.Release != "" {
		last := sects[len(sects)-1]
		copy(b[dataEnd-last+last/2:dataEnd], Banner(p.Release))
	}
	return b
}

// Gzip compresses b.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// Zboot wraps a payload compressed with comp ("gzip", "zstd") in an EFI
// zboot header.
func Zboot(payload []byte, comp string) []byte {
	const off = 0x100
	b := make([]byte, off+len(payload))
	copy(b, "MZ")
	copy(b[4:], "zimg")
	binary.LittleEndian.PutUint32(b[8:], off)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(payload)))
	copy(b[24:], comp)
	copy(b[off:], payload)
	return b
}
