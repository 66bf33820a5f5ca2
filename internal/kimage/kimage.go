// Package kimage recognises kernel image formats by their magic bytes, before
// anything is handed to the kernel: a file that is not a kernel gets a clear
// refusal naming it instead of a bare ENOEXEC or EINVAL from kexec.
package kimage

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Kind is a kernel image format.
type Kind int

const (
	Unknown   Kind = iota
	BzImage        // x86 bzImage (also a PE file when built with the EFI stub)
	Arm64          // arm64 Image, uncompressed
	Gzip           // gzip stream; for kexec it must hold an arm64 Image (Image.gz)
	EFIZboot       // EFI zboot: a PE file wrapping a compressed Image
	ARMzImage      // 32-bit ARM zImage: recognised to be refused by name
)

var names = map[Kind]string{
	Unknown:   "unknown",
	BzImage:   "x86 bzImage",
	Arm64:     "arm64 Image",
	Gzip:      "gzip-compressed Image",
	EFIZboot:  "EFI zboot image",
	ARMzImage: "32-bit ARM zImage",
}

func (k Kind) String() string { return names[k] }

// Arch is the GOARCH of the kernel the image holds, "" when unknown. kexec
// accepts Image.gz and EFI zboot only on arm64, where kxboot unpacks them
// to an arm64 Image.
func (k Kind) Arch() string {
	switch k {
	case BzImage:
		return "amd64"
	case Arm64, Gzip, EFIZboot:
		return "arm64"
	case ARMzImage:
		return "arm"
	}
	return ""
}

// ErrNotKernel is wrapped by every refusal of an unrecognised file.
var ErrNotKernel = errors.New("not a bootable kernel image")

// ErrTruncated is wrapped when the header promises more bytes than the file has.
var ErrTruncated = errors.New("truncated kernel image")

// headerSize is how much of a file Identify needs to see.
const headerSize = 0x300

// Info is what the header says about an image.
type Info struct {
	Kind Kind
	// Compression names the payload compression of an EFI zboot image
	// ("gzip", "zstd", ...).
	Compression string
	// PayloadOffset and PayloadSize locate the compressed payload of an EFI
	// zboot image in the file.
	PayloadOffset, PayloadSize int64
	// Arm64 is the header of an arm64 Image (Kind Arm64).
	Arm64 Arm64Header
}

// Identify reads the header of the file at path (name is what messages call
// it) and says what kind of kernel it is. Every error is a sentence that
// names the file.
func Identify(path, name string) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Info{}, fmt.Errorf("kernel %s does not exist; name an installed kernel (ls /boot) with --kernel or KERNEL=", name)
		}
		return Info{}, fmt.Errorf("cannot open kernel %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("cannot read kernel %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%s is %w: it is not a regular file", name, ErrNotKernel)
	}
	hdr := make([]byte, headerSize)
	n, err := io.ReadFull(f, hdr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return Info{}, fmt.Errorf("cannot read kernel %s: %w", name, err)
	}
	return identify(f, hdr[:n], st.Size(), name)
}

// identify tells the kind of the image whose first bytes are hdr; r reads
// the whole image of size bytes, for headers that lie further in.
func identify(r io.ReaderAt, hdr []byte, size int64, name string) (Info, error) {
	le := binary.LittleEndian
	switch {
	case len(hdr) >= 0x206 && le.Uint16(hdr[0x1FE:]) == 0xAA55 && string(hdr[0x202:0x206]) == "HdrS":
		// setup_sects (0 means 4) sectors of real-mode setup follow the
		// boot sector; syssize counts the protected-mode part in 16-byte
		// paragraphs. A shorter file was cut off in a copy or download.
		setup := int64(hdr[0x1F1])
		if setup == 0 {
			setup = 4
		}
		want := (setup+1)*512 + int64(le.Uint32(hdr[0x1F4:]))*16
		if size < want {
			return Info{}, fmt.Errorf("kernel %s is a %w: its header says %d bytes, the file has %d; reinstall the kernel package", name, ErrTruncated, want, size)
		}
		return Info{Kind: BzImage}, nil
	case len(hdr) >= 0x40 && string(hdr[0x38:0x3C]) == "ARM\x64":
		h, err := checkArm64(r, hdr, size, name, "the file")
		if err != nil {
			return Info{}, err
		}
		return Info{Kind: Arm64, Arm64: h}, nil
	case len(hdr) >= 0x40 && string(hdr[0:2]) == "MZ" && string(hdr[4:8]) == "zimg":
		// EFI zboot header: payload offset and size at 8 and 12, the
		// compression name NUL-padded at 24.
		comp := string(bytes.TrimRight(hdr[24:56], "\x00"))
		off, sz := int64(le.Uint32(hdr[8:])), int64(le.Uint32(hdr[12:]))
		if off+sz > size {
			return Info{}, fmt.Errorf("kernel %s is a %w: its EFI zboot header says %d bytes, the file has %d; reinstall the kernel package", name, ErrTruncated, off+sz, size)
		}
		return Info{Kind: EFIZboot, Compression: comp, PayloadOffset: off, PayloadSize: sz}, nil
	case len(hdr) >= 0x28 && le.Uint32(hdr[0x24:]) == 0x016F2818:
		// The zImage magic (arch/arm/boot/compressed/head.S); kxboot
		// loads no 32-bit ARM kernel, and says so by its name.
		return Info{Kind: ARMzImage}, nil
	case len(hdr) >= 2 && hdr[0] == 0x1f && hdr[1] == 0x8b:
		return Info{Kind: Gzip}, nil
	}
	if size == 0 {
		return Info{}, fmt.Errorf("%s is %w: the file is empty", name, ErrNotKernel)
	}
	if size < arm64HeaderSize {
		// Even the smallest header, an arm64 Image's, is longer: whatever
		// this was, its kind cannot be told.
		return Info{}, fmt.Errorf("%s is %w: the file has only %d bytes, fewer than the %d of the shortest kernel header; if it was a kernel, it was cut off: reinstall the kernel package", name, ErrNotKernel, size, arm64HeaderSize)
	}
	return Info{}, fmt.Errorf("%s is %w (no x86 bzImage, arm64 Image, Image.gz or EFI zboot header); name the vmlinuz file of an installed kernel", name, ErrNotKernel)
}

// Unpack writes the uncompressed kernel inside a compressed image (Image.gz
// or EFI zboot with a gzip payload) to w, and checks that what comes out is
// an arm64 Image that passes the checks Identify makes on a plain one. Only
// the header is checked before writing begins: a refusal can come after
// part or all of the Image was written. Plain images need no unpacking and
// are refused here.
func Unpack(path, name string, info Info, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot open kernel %s: %w", name, err)
	}
	defer f.Close()
	var src io.Reader
	switch info.Kind {
	case Gzip:
		src = f
	case EFIZboot:
		if info.Compression != "gzip" {
			return fmt.Errorf("kernel %s is an EFI zboot image compressed with %q, and kxboot unpacks only gzip; use the plain Image or Image.gz of the same kernel", name, info.Compression)
		}
		src = io.NewSectionReader(f, info.PayloadOffset, info.PayloadSize)
	default:
		return fmt.Errorf("kernel %s (%s) needs no unpacking", name, info.Kind)
	}
	zr, err := gzip.NewReader(src)
	if err != nil {
		return fmt.Errorf("kernel %s is %w: its gzip stream is damaged (%v)", name, ErrNotKernel, err)
	}
	hdr := make([]byte, arm64HeaderSize)
	if _, err := io.ReadFull(zr, hdr); err != nil {
		return fmt.Errorf("kernel %s is a %w: the compressed stream ends early (%v); reinstall the kernel package", name, ErrTruncated, err)
	}
	if string(hdr[0x38:0x3C]) != "ARM\x64" {
		return fmt.Errorf("kernel %s is %w: the compressed stream does not hold an arm64 Image", name, ErrNotKernel)
	}
	unpacked := name + " (unpacked)"
	if _, err := ParseArm64Header(hdr, unpacked); err != nil {
		return err
	}
	// The size checks need the whole length, known only at the end; the PE
	// headers they read lie in the first maxPEHeaders bytes, kept on the way.
	tw := &teeHead{w: w, max: maxPEHeaders}
	if _, err := tw.Write(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, zr); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) {
			return fmt.Errorf("kernel %s is a %w: the compressed stream is cut off or damaged (%v); reinstall the kernel package", name, ErrTruncated, err)
		}
		return fmt.Errorf("unpacking kernel %s: %w", name, err)
	}
	_, err = checkArm64(bytes.NewReader(tw.head), hdr, tw.n, unpacked, "the unpacked Image")
	return err
}

// teeHead writes to w, counting the bytes and keeping the first max of them.
type teeHead struct {
	w    io.Writer
	max  int
	head []byte
	n    int64
}

func (t *teeHead) Write(b []byte) (int, error) {
	if k := min(len(b), t.max-len(t.head)); k > 0 {
		t.head = append(t.head, b[:k]...)
	}
	n, err := t.w.Write(b)
	t.n += int64(n)
	return n, err
}
