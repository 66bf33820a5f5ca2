package kexec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// JoinDir keeps the join of several initrds between loads: the kernel takes
// one initrd, so a load of several writes them one after the other, and a
// machine that loads the same ones at every boot or reboot (early
// microcode and the main initrd) would copy them each time. The join is
// kept under a name made of the parts' paths and rootfs.FS.Stamp (device,
// inode, size, modification and inode change times): a part replaced or rewritten
// gives another name, and the stale join is removed when the new one is
// written. The directory is created 0700 only where /var/cache exists, and
// a join is used only when it and every directory above it pass the same
// trust check as the initrds themselves.
const JoinDir = "/var/cache/kxboot"

// joinPrefix begins the name of a kept join.
const joinPrefix = "initrd-joined-"

// joinName is the name of the kept join of paths and the size the join
// has, with each part after the first starting on a 4-byte boundary.
func (e *Engine) joinName(paths []string) (string, int64, error) {
	h := sha256.New()
	var size int64
	for i, p := range paths {
		st, err := os.Stat(e.FS.Path(p))
		if err != nil {
			return "", 0, err
		}
		fmt.Fprintf(h, "%s\x00%s\x00", p, e.FS.Stamp(p))
		if i > 0 {
			size += (4 - size%4) % 4
		}
		size += st.Size()
	}
	return path.Join(JoinDir, joinPrefix+hex.EncodeToString(h.Sum(nil))[:32]), size, nil
}

// keptJoin opens the kept join name when it is there, has the size the
// join must have, and could not have been written by anyone but root.
func (e *Engine) keptJoin(name string, size int64) *os.File {
	if e.FS.Trusted(name) != nil {
		return nil
	}
	f, err := os.OpenFile(e.FS.Path(name), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() != size {
		f.Close()
		return nil
	}
	return f
}

// keepJoin writes the join of paths as name (a temp file, synced, renamed
// into place), removes the joins kept before it (and temp files a crash
// left), and returns it open, read-only. It
// fails where /var/cache is missing or read-only (the chain boot's early
// root, say); the caller then joins in memory.
func (e *Engine) keepJoin(paths []string, name string, size int64) (*os.File, error) {
	dir := e.FS.Path(JoinDir)
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return nil, err
	}
	if err := e.FS.Trusted(JoinDir); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, "."+joinPrefix+"*")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := concat(e.FS, paths, tmp)
	if err != nil {
		return nil, err
	}
	if n != size {
		return nil, fmt.Errorf("the initrds changed while they were joined (%d bytes, not %d)", n, size)
	}
	if err := tmp.Sync(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), e.FS.Path(name)); err != nil {
		return nil, err
	}
	ok = true
	if entries, err := os.ReadDir(dir); err == nil {
		for _, en := range entries {
			stale := strings.HasPrefix(en.Name(), joinPrefix) || strings.HasPrefix(en.Name(), "."+joinPrefix)
			if stale && en.Name() != path.Base(name) {
				os.Remove(path.Join(dir, en.Name()))
			}
		}
	}
	// Opened again, read-only: kexec_file_load refuses a file that any
	// descriptor has open for writing (ETXTBSY), this one's too.
	tmp.Close()
	if f := e.keptJoin(name, size); f != nil {
		return f, nil
	}
	return nil, fmt.Errorf("the join kept as %s cannot be opened again", name)
}
