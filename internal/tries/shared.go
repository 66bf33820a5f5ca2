package tries

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/blockdev"
	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/mounts"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// StateParam names, on the command line of a hop into another root file
// system (a slot's), the file system that holds the try record: the one
// the chain boot reads at the next boot. The kernel it boots confirms,
// fails and watches its try there.
const StateParam = "kxboot.state"

// ErrUnreachable marks a try record that this boot names (StateParam)
// but cannot reach: the device is not found, or cannot be mounted.
var ErrUnreachable = errors.New("the try record cannot be reached")

// Located says where the try record of this boot lives: "" for this
// machine's own /var/lib/kxboot, else the device StateParam named.
func (s Store) Located() string { return s.shared }

// Locate points the store at the try record of the hop this boot came
// from (cmdline is this boot's command line): when StateParam names a
// file system other than the one that holds this machine's own state
// directory, it is mounted where nothing else sees it (mounts.Attach)
// for as long as this process runs.
func (s *Store) Locate(line string) error {
	spec, ok := cmdline.Parse(line).Get(StateParam)
	if !ok || s.shared != "" {
		return nil
	}
	dev, err := blockdev.Resolve(s.FS, spec)
	if err != nil {
		return fmt.Errorf("%w: it is on %s=%s, which cannot be found: %w", ErrUnreachable, StateParam, spec, err)
	}
	var dst, own unix.Stat_t
	if unix.Stat(s.FS.Path(dev), &dst) != nil {
		return fmt.Errorf("%w: it is on %s, which cannot be opened", ErrUnreachable, dev)
	}
	where := Dir
	for where != "/" && unix.Stat(s.FS.Path(where), &own) != nil {
		where = parentDir(where)
	}
	if where == "/" && unix.Stat(s.FS.Path("/"), &own) != nil {
		return fmt.Errorf("cannot tell which file system holds %s", Dir)
	}
	if dst.Rdev == own.Dev {
		return nil // this machine's own state
	}
	sys := s.Mounts
	if sys == nil {
		sys = mounts.Native{}
	}
	p, d, err := mounts.Attach(s.FS, sys, dev, "state")
	if err != nil {
		return fmt.Errorf("%w: it is on %s (%s=%s): %w", ErrUnreachable, dev, StateParam, spec, err)
	}
	s.held = d
	s.FS = rootfs.FS{Root: p, Owner: s.FS.Owner}
	s.shared = dev
	return nil
}

func parentDir(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}
