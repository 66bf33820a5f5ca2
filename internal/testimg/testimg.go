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
