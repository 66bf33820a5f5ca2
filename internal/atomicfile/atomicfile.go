// Package atomicfile writes files so that a crash or a power cut at any
// instant leaves either the old file or the new one, never a torn one.
package atomicfile

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Write replaces path with data: a temp file in the same directory is
// written and fsynced, renamed over path, and the directory is fsynced so
// that the rename itself is durable.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteWith(path, data, perm, nil)
}

// WriteWith is Write with a hook called after the temp file is durable and
// before the rename: the instant a power cut tests aim at.
func WriteWith(path string, data []byte, perm os.FileMode, beforeRename func()) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if beforeRename != nil {
		beforeRename()
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return SyncDir(dir)
}

// Leftovers lists the temp files that writes of path cut short by a crash
// left behind, for removal.
func Leftovers(path string) []string {
	m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp*"))
	return m
}

// SyncDir fsyncs a directory, making renames and removals in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LockDir takes an exclusive flock on the directory dir, which works on a
// read-only file system too, and returns what lets it go (closing the
// descriptor; the kernel lets go of it when the process dies, too).
// Without the directory there is nothing to race for: the lock is none.
func LockDir(dir string) (unlock func()) {
	d, err := os.Open(dir)
	if err != nil {
		return func() {}
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		d.Close()
		return func() {}
	}
	return func() { d.Close() }
}
