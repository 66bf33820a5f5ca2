package chain

import (
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/kxboot/kxboot/internal/mounts"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/tries"
	"github.com/kxboot/kxboot/internal/watchdog"
)

// SearchPath is the PATH of the commands kxboot starts: PID 1's
// environment has none.
const SearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Wire connects env to the real machine's state: the try record and the
// history (remounting a read-only root for the write), the deadline
// watcher, the watchdog and the test pause. The init wrapper and the chain
// command share it.
func Wire(env *Env, m mounts.Sys) {
	env.Store = &tries.Store{FS: env.FS, Mounts: m}
	env.Now = time.Now
	env.BootID = BootID(env.FS)
	env.Release = Release(env.FS)
	logf := env.Logf
	env.StartWatch = func() { startWatch(env.FS, logf) }
	env.ArmWatchdog = NativeWatchdog(env.FS)
	env.ReleaseWatchdog = func() string { return ReleaseWatchdog(env.FS) }
	env.Pause = func(at string) {
		logf("kxboot: chain: test pause at %s; waiting for the power cut", at)
		time.Sleep(10 * time.Minute)
	}
}

// NativeWatchdog arms the machine's watchdog for d and says how;
// watchdog.ErrNoWatchdog when there is none.
func NativeWatchdog(fsys rootfs.FS) func(d time.Duration) (string, error) {
	return func(d time.Duration) (string, error) {
		a, err := watchdog.Arm(fsys, watchdog.Native{}, d)
		if err != nil {
			return "", err
		}
		return a.String(), nil
	}
}

// ReleaseWatchdog stops the watchdog kxboot armed, unless an init holds
// it, and says what happened.
func ReleaseWatchdog(fsys rootfs.FS) string {
	what, err := watchdog.Release(fsys, watchdog.Native{})
	if err != nil {
		return err.Error()
	}
	return what
}

// BootID is the kernel's id of this boot.
func BootID(fsys rootfs.FS) string {
	s, _ := fsys.ReadString("/proc/sys/kernel/random/boot_id")
	return s
}

// Release is the running kernel's release.
func Release(fsys rootfs.FS) string {
	s, _ := fsys.ReadString("/proc/sys/kernel/osrelease")
	return s
}

// startWatch starts kxboot watch in the background, in its own session,
// so that it outlives the chain boot (and PID 1's exec of the real init).
func startWatch(fsys rootfs.FS, logf func(string, ...any)) {
	self, err := os.Executable()
	if err != nil {
		logf("kxboot: chain: cannot start the deadline watcher: %v", err)
		return
	}
	c := exec.Command(self, "watch")
	c.Args[0] = "kxboot" // not "init": that would pass through to the original init
	c.Env = append(os.Environ(), "PATH="+SearchPath)
	if con, err := os.OpenFile(fsys.Path("/dev/console"), os.O_WRONLY, 0); err == nil {
		c.Stdout, c.Stderr = con, con
		defer con.Close()
	}
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		logf("kxboot: chain: cannot start the deadline watcher: %v", err)
		return
	}
	logf("kxboot: chain: started the deadline watcher (pid %d)", c.Process.Pid)
	c.Process.Release()
}
