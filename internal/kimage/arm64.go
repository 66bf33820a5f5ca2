package kimage

import (
	"encoding/binary"
	"fmt"
	"io"
)

// arm64HeaderSize is the length of the header at the start of an arm64 Image
// (Linux Documentation/arch/arm64/booting.rst).
const arm64HeaderSize = 0x40

// Arm64Header is the header of an arm64 Image. Its fields are little-endian
// whatever the kernel's endianness.
type Arm64Header struct {
	// TextOffset is where the Image goes above a 2 MiB aligned base;
	// ImageSize is how much memory it takes from there, BSS and early page
	// tables included, so it is larger than the file.
	TextOffset, ImageSize, Flags uint64
}

// BigEndian says whether the kernel runs big-endian (flags bit 0).
func (h Arm64Header) BigEndian() bool { return h.Flags&1 != 0 }

// PageSize is the kernel's page size in bytes (flags bits 1-2), 0 when the
// header does not say.
func (h Arm64Header) PageSize() int {
	return [4]int{0, 4 << 10, 16 << 10, 64 << 10}[h.Flags>>1&3]
}

// PhysAnywhere says whether the 2 MiB aligned base may be anywhere in
// physical memory (flags bit 3); without it the base must be as close as
// possible to the start of DRAM.
func (h Arm64Header) PhysAnywhere() bool { return h.Flags&8 != 0 }

// ParseArm64Header reads the header of an arm64 Image from hdr, which holds
// at least the first 64 bytes of the file name (used in messages). It
// refuses headers kxboot cannot boot from, in one sentence each.
func ParseArm64Header(hdr []byte, name string) (Arm64Header, error) {
	if len(hdr) < arm64HeaderSize {
		return Arm64Header{}, fmt.Errorf("kernel %s is a %w: an arm64 Image starts with a %d-byte header and only %d bytes are there; reinstall the kernel package", name, ErrTruncated, arm64HeaderSize, len(hdr))
	}
	if string(hdr[0x38:0x3C]) != "ARM\x64" {
		return Arm64Header{}, fmt.Errorf(`kernel %s is %w: it lacks the arm64 Image magic "ARM\x64" at byte 0x38; name an arm64 Image, Image.gz or vmlinuz file`, name, ErrNotKernel)
	}
	le := binary.LittleEndian
	h := Arm64Header{TextOffset: le.Uint64(hdr[8:]), ImageSize: le.Uint64(hdr[16:]), Flags: le.Uint64(hdr[24:])}
	if h.ImageSize == 0 {
		return Arm64Header{}, fmt.Errorf("kernel %s is %w: its arm64 header gives image_size 0, as kernels older than 3.17 do, and kxboot cannot place a kernel without knowing how much memory it takes; name a newer kernel", name, ErrNotKernel)
	}
	if h.BigEndian() {
		return Arm64Header{}, fmt.Errorf("kernel %s is %w: it is a big-endian arm64 kernel and kxboot boots only little-endian ones; name a little-endian (aarch64) kernel", name, ErrNotKernel)
	}
	return h, nil
}

// maxPEHeaders bounds where the EFI stub's PE headers may end. Linux puts
// them right after the 64-byte Image header, a few hundred bytes in all;
// further out they are damage, not a layout kxboot should follow.
const maxPEHeaders = 64 << 10

// checkArm64 parses the arm64 Image header in hdr and checks the image (r,
// size bytes; whole names it in messages: "the file") against what its
// headers say, so a copy cut short is refused before it is recorded or
// loaded.
func checkArm64(r io.ReaderAt, hdr []byte, size int64, name, whole string) (Arm64Header, error) {
	h, err := ParseArm64Header(hdr, name)
	if err != nil {
		return Arm64Header{}, err
	}
	// A plain Image states nothing about its file size (image_size counts
	// BSS too), so a valid 64-byte header and the bound below are all that
	// can be checked. Only a kernel with the EFI stub ("MZ") describes its
	// file, in the PE header.
	if string(hdr[:2]) == "MZ" {
		if err := checkPE(r, hdr, size, name, whole); err != nil {
			return Arm64Header{}, err
		}
	}
	// kexec loads the file into image_size bytes of memory (kexec-tools and
	// the kernel's own arm64 Image loader alike), and the kernel refuses a
	// buffer larger than that. A sound file never is: BSS follows it.
	if uint64(size) > h.ImageSize {
		return Arm64Header{}, fmt.Errorf("kernel %s is %w: %s has %d bytes, more than the %d its arm64 header says the kernel takes in memory; the file is damaged: reinstall the kernel package", name, ErrNotKernel, whole, size, h.ImageSize)
	}
	return h, nil
}

// checkPE checks an arm64 Image with the EFI stub against its PE header.
// Linux lays the sections out in the file as in memory, and the last one
// ends at _edata, the end of the unsigned file. Signing (sbsign, Debian's
// signed kernels) appends a certificate table, which data directory 4 then
// locates. Bytes after all that are tolerated: they do not hurt the boot.
func checkPE(r io.ReaderAt, hdr []byte, size int64, name, whole string) error {
	le := binary.LittleEndian
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("kernel %s is %w: %s; the file is damaged: reinstall the kernel package", name, ErrNotKernel, fmt.Sprintf(format, args...))
	}
	truncated := func(want int64, what string) error {
		return fmt.Errorf("kernel %s is a %w: its PE header says %d bytes%s, %s has %d; reinstall the kernel package", name, ErrTruncated, want, what, whole, size)
	}
	read := func(off, n int64) ([]byte, error) {
		b := make([]byte, n)
		if _, err := r.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("cannot read kernel %s: %w", name, err)
		}
		return b, nil
	}

	peOff := int64(le.Uint32(hdr[0x3C:]))
	const coffSize = 24 // "PE\0\0" and the COFF file header
	if peOff < arm64HeaderSize || peOff+coffSize > maxPEHeaders {
		return damaged("its header puts the PE header at byte %#x, outside %#x to %#x", peOff, arm64HeaderSize, maxPEHeaders-coffSize)
	}
	if peOff+coffSize > size {
		return truncated(peOff+coffSize, "")
	}
	coff, err := read(peOff, coffSize)
	if err != nil {
		return err
	}
	if string(coff[:4]) != "PE\x00\x00" {
		return damaged("there is no PE signature at byte %#x, where its header points", peOff)
	}
	if m := le.Uint16(coff[4:]); m != 0xAA64 {
		return damaged("its PE header gives machine %#04x where an arm64 kernel has 0xaa64", m)
	}
	nsec, optSize := int64(le.Uint16(coff[6:])), int64(le.Uint16(coff[20:]))
	// 112 bytes of PE32+ optional header come before the data directories.
	const optFixed = 112
	if nsec == 0 {
		return damaged("its PE header lists no sections")
	}
	if optSize < optFixed {
		return damaged("its PE optional header has %d bytes, fewer than the %d of a 64-bit image", optSize, optFixed)
	}
	end := peOff + coffSize + optSize + nsec*40
	if end > maxPEHeaders {
		return damaged("its PE headers run to byte %d, beyond the first %d", end, maxPEHeaders)
	}
	if end > size {
		return truncated(end, "")
	}
	rest, err := read(peOff+coffSize, end-peOff-coffSize)
	if err != nil {
		return err
	}
	opt, sections := rest[:optSize], rest[optSize:]
	if m := le.Uint16(opt); m != 0x20B {
		return damaged("its PE optional header has magic %#x where a 64-bit image has 0x20b", m)
	}

	var dataEnd int64
	for i := int64(0); i < nsec; i++ {
		s := sections[i*40 : i*40+40]
		rawSize, rawPtr := int64(le.Uint32(s[16:])), int64(le.Uint32(s[20:]))
		if rawSize != 0 {
			dataEnd = max(dataEnd, rawPtr+rawSize)
		}
	}
	if dataEnd == 0 {
		return damaged("no section in its PE header has data in the file")
	}
	// SizeOfImage (equal to image_size in the kernels seen) spans the
	// sections in memory, where they sit at their file offsets.
	if soi := int64(le.Uint32(opt[56:])); soi < dataEnd {
		return damaged("its PE header gives SizeOfImage %d, less than the %d bytes of its sections", soi, dataEnd)
	}
	if dataEnd > size {
		return truncated(dataEnd, "")
	}

	const certDir = 4 // data directory of the certificate table
	if nrva := int64(le.Uint32(opt[108:])); nrva <= certDir || optSize < optFixed+(certDir+1)*8 {
		return nil
	}
	certOff := int64(le.Uint32(opt[optFixed+certDir*8:]))
	certSize := int64(le.Uint32(opt[optFixed+certDir*8+4:]))
	if certSize == 0 {
		return nil
	}
	if certOff < dataEnd {
		return damaged("its signature (certificate table) starts at byte %d, inside the kernel, which ends at byte %d", certOff, dataEnd)
	}
	if certOff+certSize > size {
		return truncated(certOff+certSize, " with the signature")
	}
	return nil
}
