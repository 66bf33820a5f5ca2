// Package cpio writes uncompressed "newc" cpio archives, the format the
// Linux kernel unpacks as an initramfs. It writes only what a test guest
// needs: directories, regular files, symlinks and character devices.
package cpio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// File type bits of the mode field, as in <sys/stat.h>.
const (
	typeDir     = 0o040000
	typeRegular = 0o100000
	typeSymlink = 0o120000
	typeChar    = 0o020000
)

const trailer = "TRAILER!!!"

// Writer writes one archive. Names are stored without a leading slash, as
// the kernel and cpio(1) expect. Close writes the trailer.
type Writer struct {
	w   io.Writer
	n   int64  // bytes written, for padding
	ino uint32 // next inode number; each entry gets its own
	err error
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, ino: 1} }

// header describes one entry.
type header struct {
	name         string
	mode         uint32
	nlink        uint32
	size         int
	rmajor, rmin uint32
}

// Dir adds a directory.
func (w *Writer) Dir(name string, perm fs.FileMode) error {
	return w.entry(header{name: name, mode: typeDir | uint32(perm.Perm()), nlink: 2}, nil)
}

// File adds a regular file holding data.
func (w *Writer) File(name string, perm fs.FileMode, data []byte) error {
	return w.entry(header{name: name, mode: typeRegular | uint32(perm.Perm()), nlink: 1, size: len(data)}, data)
}

// Symlink adds a symbolic link name -> target.
func (w *Writer) Symlink(name, target string) error {
	return w.entry(header{name: name, mode: typeSymlink | 0o777, nlink: 1, size: len(target)}, []byte(target))
}

// CharDev adds a character device node, such as /dev/console (5, 1).
func (w *Writer) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return w.entry(header{name: name, mode: typeChar | uint32(perm.Perm()), nlink: 1, rmajor: major, rmin: minor}, nil)
}

// Close writes the trailer entry. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	w.ino = 0 // the trailer has inode 0, like GNU cpio writes it
	return w.entry(header{name: trailer, nlink: 1}, nil)
}

func (w *Writer) entry(h header, data []byte) error {
	if w.err != nil {
		return w.err
	}
	name := strings.TrimLeft(h.name, "/")
	if name == "" {
		return errors.New("cpio: empty entry name")
	}
	ino := w.ino
	if h.name != trailer {
		w.ino++
	}
	// 13 fields of 8 hex digits after the magic; namesize counts the NUL.
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, h.mode, 0, 0, h.nlink, 0, h.size, 0, 0, h.rmajor, h.rmin, len(name)+1, 0)
	w.write([]byte(hdr))
	w.write([]byte(name + "\x00"))
	w.pad()
	w.write(data)
	w.pad()
	return w.err
}

func (w *Writer) write(p []byte) {
	if w.err != nil || len(p) == 0 {
		return
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	w.err = err
}

// pad aligns the stream to 4 bytes, as newc requires after the name and
// after the data.
func (w *Writer) pad() {
	if r := w.n % 4; r != 0 {
		w.write(make([]byte, 4-r))
	}
}
