package tries

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/atomicfile"
	"github.com/kxboot/kxboot/internal/mounts"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// Store reads and writes the record and the history on a machine.
type Store struct {
	FS rootfs.FS
	// Mounts, when set, lets a write to a read-only file system remount
	// it writable for the write and read-only again after it: the init
	// wrapper runs before the root is made writable.
	Mounts mounts.Sys
	// BeforeRename, when set, runs inside a record write after the new
	// record is durable in its temp file and before the rename (tests cut
	// the power there).
	BeforeRename func()
	// Fail, when set, is the error every write returns (tests of what a
	// machine does when it cannot keep its record).
	Fail error
	// shared is the device Locate attached, held its open directory.
	shared string
	held   *os.File
}

// Read returns the record; a machine that never hopped has the zero
// Record. A record that exists but cannot be believed is an error that
// wraps ErrDamaged.
func (s Store) Read() (Record, error) {
	b, err := s.FS.ReadFile(RecordPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("cannot read %s: %w", RecordPath, err)
	}
	r, err := Decode(b)
	if err != nil {
		return r, fmt.Errorf("%s: %w", RecordPath, err)
	}
	return r, nil
}

// Write replaces the record, durably, and clears what writes cut short by
// a crash left behind.
func (s Store) Write(r Record) error {
	return s.writable(func() error {
		if err := os.MkdirAll(s.FS.Path(Dir), 0o755); err != nil {
			return err
		}
		p := s.FS.Path(RecordPath)
		for _, old := range atomicfile.Leftovers(p) {
			os.Remove(old)
		}
		return atomicfile.WriteWith(p, Encode(r), 0o644, s.BeforeRename)
	})
}

// Lock serialises the commands that change the record (the chain, the
// deadline watcher, mark-good, mark-bad, reset): an flock on the state
// directory, which works on a read-only file system too. Without the
// directory there is nothing to race for, and the unlock does nothing.
func (s Store) Lock() (unlock func()) { return atomicfile.LockDir(s.FS.Path(Dir)) }

// WriteLocked writes r under the lock: for callers that computed r from
// a record they read before (the chain boot, the reboot's load).
func (s Store) WriteLocked(r Record) error {
	unlock := s.Lock()
	defer unlock()
	return s.Write(r)
}

// Update reads the record, changes it with fn and writes it, under the
// lock. A damaged record reaches fn with its error; fn decides.
func (s Store) Update(fn func(r Record, readErr error) (Record, error)) (Record, error) {
	unlock := s.Lock()
	defer unlock()
	r, err := s.Read()
	r, err = fn(r, err)
	if err != nil {
		return r, err
	}
	return r, s.Write(r)
}

// writable runs a write; when it fails because the file system is
// read-only and Mounts is set, it remounts that file system writable,
// writes, and puts it back read-only.
func (s Store) writable(write func() error) error {
	if s.Fail != nil {
		return s.Fail
	}
	err := write()
	if !errors.Is(err, unix.EROFS) || s.Mounts == nil {
		return err
	}
	m, ok := holding(s.FS, Dir)
	if !ok {
		return err
	}
	flags := mounts.RemountFlags(m)
	point := s.FS.Path(m.Point)
	if rerr := s.Mounts.Mount("", point, "", unix.MS_REMOUNT|flags, ""); rerr != nil {
		return fmt.Errorf("%s is read-only and could not be made writable for a moment: %w", m.Point, rerr)
	}
	err = write()
	s.Mounts.Sync()
	if rerr := s.Mounts.Mount("", point, "", unix.MS_REMOUNT|unix.MS_RDONLY|flags, ""); rerr != nil && err == nil {
		err = fmt.Errorf("wrote %s but could not make %s read-only again: %w", Dir, m.Point, rerr)
	}
	return err
}

// holding is the mount that holds p: the last-mounted, longest match.
func holding(fsys rootfs.FS, p string) (mounts.Mount, bool) {
	ms, err := mounts.List(fsys)
	if err != nil {
		return mounts.Mount{}, false
	}
	var best mounts.Mount
	found := false
	for _, m := range ms {
		under := m.Point == "/" || p == m.Point || strings.HasPrefix(p, m.Point+"/")
		if under && (!found || len(m.Point) >= len(best.Point)) {
			best, found = m, true
		}
	}
	return best, found
}

// Identity names a hop's kernel, initrds and command line: a replaced or
// rewritten file (new inode, size or time) or another command line gives
// another identity, and a fresh count of tries. Files that cannot be
// read count by name only (the hop will fail on them anyway). The
// command line counts as a set of words, in any order, and without panic=:
// a fast reboot reuses the running line, where an earlier hop's panic=
// stands before APPEND's words instead of after them, or where kxboot's
// own panic= adds to one that APPEND gives later; that is the same boot.
func Identity(fsys rootfs.FS, kernel string, initrds []string, cmdline string) string {
	return IdentityIn(fsys, "", kernel, initrds, cmdline)
}

// IdentityIn is the Identity of files named inside a slot's root, mounted
// at the in-machine directory in: the names count as the slot names
// them, wherever it is mounted.
func IdentityIn(fsys rootfs.FS, in, kernel string, initrds []string, cmdline string) string {
	h := sha256.New()
	for _, p := range append([]string{kernel}, initrds...) {
		fmt.Fprintf(h, "%s\x00", p)
		var st unix.Stat_t
		if unix.Stat(fsys.Path(in+p), &st) == nil {
			fmt.Fprintf(h, "%d:%d:%d:%d.%d\x00", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
		}
	}
	words := slices.DeleteFunc(strings.Fields(cmdline), func(w string) bool { return strings.HasPrefix(w, "panic=") })
	slices.Sort(words)
	fmt.Fprintf(h, "%s", strings.Join(words, " "))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Forget is kxboot reset: it forgets the count of tries (a damaged record
// is replaced by an empty one), so that the next boot hops again, and
// appends a "reset" line to the history. boot and running are this boot's
// id and the running kernel's release, for the history. It returns what
// it did in one sentence.
func (s Store) Forget(now time.Time, boot, running string) (string, error) {
	var before Record
	var damaged error
	if _, err := s.Update(func(r Record, rerr error) (Record, error) {
		before, damaged = r, rerr
		if rerr != nil {
			return Record{}, nil
		}
		return Reset(r), nil
	}); err != nil {
		return "", fmt.Errorf("cannot write %s: %w", RecordPath, err)
	}
	what := fmt.Sprintf("%d unconfirmed tries forgotten", before.Tries)
	if damaged != nil {
		what = "replaced a damaged record: " + damaged.Error()
	}
	// The record is what the next boot goes by: a history that cannot be
	// written leaves the reset done.
	s.Append(Entry{Time: now, Boot: boot, Running: running, Kernel: before.Kernel, Event: "reset", Reason: what})
	return what, nil
}
