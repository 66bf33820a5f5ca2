package fastreboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kxboot/kxboot/internal/atomicfile"
	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/tries"
)

// PreloadPath records the kernel Preload loaded ahead of the shutdown, so
// that the shutdown can keep it instead of loading it again. It is in
// /run: a record of this boot's kexec state, gone with the boot.
const PreloadPath = "/run/kxboot/preloaded"

// preloadShare is the part of the RAM that REBOOT_PRELOAD=auto lets a
// preloaded kernel and its initrds hold: the kernel keeps them in memory
// it cannot swap, for as long as the machine runs.
const preloadShare = 32

// Preloaded is what Preload loaded: the entry, with the identity of its
// files and command line when it was loaded.
type Preloaded struct {
	Boot    string   `json:"boot"` // the boot id of the boot that loaded it
	Kernel  string   `json:"kernel"`
	Initrds []string `json:"initrds,omitempty"`
	Cmdline string   `json:"cmdline"`
	// Stamps are the files' rootfs.FS.Stamp when they were loaded.
	Stamps  []string  `json:"stamps"`
	Syscall string    `json:"syscall"`
	Time    time.Time `json:"time"`
}

// ReadPreloaded reads the record of the kernel loaded ahead; ok is false
// when there is none (or it is damaged: the shutdown then loads).
func ReadPreloaded(fsys rootfs.FS) (Preloaded, bool) {
	var p Preloaded
	b, err := os.ReadFile(fsys.Path(PreloadPath))
	if err != nil || json.Unmarshal(b, &p) != nil || p.Kernel == "" {
		return Preloaded{}, false
	}
	return p, true
}

// ForgetPreloaded drops the record: whoever loads or unloads a kernel
// outside the fast reboot (kxboot load, unload, reboot --firmware) calls
// it, so that the shutdown never keeps a kernel it did not choose.
func ForgetPreloaded(fsys rootfs.FS) { os.Remove(fsys.Path(PreloadPath)) }

// matches says whether p is the loaded kernel the shutdown would load for
// b on this boot: the same files, unchanged since (their stamps), and the
// same command line, word for word.
func (p Preloaded) matches(fsys rootfs.FS, b tries.Boot, boot string) bool {
	return p.Boot == boot && p.Kernel == b.Kernel && strings.Join(p.Initrds, "\x00") == strings.Join(b.Initrds, "\x00") &&
		p.Cmdline == b.Cmdline && strings.Join(p.Stamps, " ") == strings.Join(stamps(fsys, b), " ")
}

// stamps are the stamps of b's files, the kernel first.
func stamps(fsys rootfs.FS, b tries.Boot) []string {
	var out []string
	for _, f := range append([]string{b.Kernel}, b.Initrds...) {
		out = append(out, fsys.Stamp(f))
	}
	return out
}

// lockLoads serialises Preload and Prepare: a preload still running when
// the shutdown starts finishes (or is killed, which lets go of the lock)
// before the shutdown decides what to keep.
func lockLoads(fsys rootfs.FS) (unlock func()) {
	dir := fsys.Path("/run/kxboot")
	os.MkdirAll(dir, 0o755)
	return atomicfile.LockDir(dir)
}

// Preload loads, ahead of the shutdown, the kernel the next reboot would
// load now, so that the shutdown only checks that it is still the one to
// boot (Prepare) and the reboot skips the load. It runs once the boot's
// try is settled (kxboot mark-good, kxboot install reboot): before that,
// the next reboot's choice can still change. It records no try and no
// history; it says in one line what it did, or "" when the fast reboot is
// not installed.
func Preload(e Env) string {
	unlock := lockLoads(e.FS)
	defer unlock()
	in := chain.Gather(e.FS)
	next := Plan(e.FS, in)
	if !next.Installed {
		return ""
	}
	const nothing = "kxboot: reboot: nothing preloaded: "
	c := next.Choice
	why := ""
	switch {
	case in.Config == nil:
		why = "the config cannot be read; the shutdown decides"
	case in.Config.Preload == config.PreloadNo:
		why = "REBOOT_PRELOAD=no in " + config.Path + "; the shutdown loads"
	case next.Firmware != "":
		why = "the next reboot goes through the firmware, once (" + next.Firmware + ")"
	case !c.Load:
		why = "the next reboot goes through the firmware: " + c.Reason
	case c.Rec.Pending:
		why = "this boot's try is not confirmed yet; the shutdown loads"
	case c.Hop.Boot.Root != "":
		why = "slot " + c.Hop.Boot.Slot + " boots from another root file system, mounted only to load; the shutdown loads"
	}
	b := c.Hop.Boot
	if _, ok := ReadPreloaded(e.FS); ok {
		if a := next.Ahead; why == "" && a != nil && e.stillLoaded() {
			return fmt.Sprintf("kxboot: reboot: %s is preloaded already (at %s)", b.Kernel, a.Time.Format("15:04:05"))
		}
		// Loaded ahead for an earlier choice: it goes, whatever comes.
		e.Engine.Unload()
		ForgetPreloaded(e.FS)
	}
	if why == "" && in.Config.Preload == config.PreloadAuto {
		if big := tooBig(e.FS, b); big != "" {
			why = big + "; the shutdown loads (REBOOT_PRELOAD=yes in " + config.Path + " preloads anyway)"
		}
	}
	if why != "" {
		return nothing + why
	}
	start := time.Now()
	res, err := chain.Load(e.FS, e.Engine, b)
	if err != nil {
		e.Engine.Unload()
		return nothing + err.Error() + "; the shutdown tries again"
	}
	p := Preloaded{Boot: chain.BootID(e.FS), Kernel: b.Kernel, Initrds: b.Initrds, Cmdline: b.Cmdline, Stamps: stamps(e.FS, b), Syscall: res.Syscall, Time: e.Now()}
	data, _ := json.Marshal(p)
	if err := atomicfile.Write(e.FS.Path(PreloadPath), append(data, '\n'), 0o644); err != nil {
		e.Engine.Unload()
		return nothing + fmt.Sprintf("cannot write %s (%v); the shutdown loads", PreloadPath, err)
	}
	return fmt.Sprintf("kxboot: reboot: preloaded %s with %s in %d ms for the next reboot (REBOOT_PRELOAD); command line: %s", b.Kernel, res.Syscall, time.Since(start).Milliseconds(), b.Cmdline)
}

// tooBig says why REBOOT_PRELOAD=auto does not load b ahead: its files
// take more than 1/preloadShare of the RAM, or their size or the RAM's
// cannot be read.
func tooBig(fsys rootfs.FS, b tries.Boot) string {
	var size int64
	for _, f := range append([]string{b.Kernel}, b.Initrds...) {
		st, err := os.Stat(fsys.Path(f))
		if err != nil {
			return "the size of " + f + " cannot be read"
		}
		size += st.Size()
	}
	ram, err := memTotal(fsys)
	if err != nil {
		return "the size of the RAM cannot be read (" + err.Error() + ")"
	}
	if size*preloadShare > ram {
		return fmt.Sprintf("the kernel and initrds take %d MiB, more than 1/%d of the RAM (%d MiB)", size>>20, preloadShare, ram>>20)
	}
	return ""
}

// memTotal reads the RAM's size, in bytes, from /proc/meminfo.
func memTotal(fsys rootfs.FS) (int64, error) {
	s, err := fsys.ReadString("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				break
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("/proc/meminfo has no MemTotal line")
}

// stillLoaded says whether a kernel is still loaded: kxboot cannot see
// which, and no one but the fast reboot loads one without dropping the
// record (kxboot load, unload, reboot --firmware).
func (e Env) stillLoaded() bool {
	loaded, err := e.Engine.Loaded()
	return err == nil && loaded
}
