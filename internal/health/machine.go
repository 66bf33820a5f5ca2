package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/fastreboot"
	"github.com/kxboot/kxboot/internal/initsys"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/mounts"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/tries"
)

// ForMachine wires the checks to the running machine: the config and the
// try record on fsys (m, when set, makes a read-only root writable for a
// write), HEALTH_CMD run by /bin/sh, the reboot through the firmware done
// with engine, and the uptime from CLOCK_BOOTTIME. A config that cannot be
// read is its error.
func ForMachine(fsys rootfs.FS, engine *kexec.Engine, m mounts.Sys, logf func(string, ...any)) (Env, error) {
	cfg, err := config.Load(fsys)
	if err != nil {
		return Env{}, err
	}
	fw := Firmware{
		FS: fsys, Engine: engine, Mounts: m, Logf: logf,
		RunReboot: func() error { return runReboot(chain.SearchPath, initsys.Running(fsys).RebootCommand(fsys)) },
		Sleep:     time.Sleep,
	}
	return Env{
		FS: fsys, Store: &tries.Store{FS: fsys, Mounts: m}, Config: cfg, Logf: logf,
		Now: time.Now, Sleep: time.Sleep,
		Check:           runCheck,
		Reboot:          func(reason string) error { return FirmwareReboot(fw, reason) },
		ReleaseWatchdog: func() string { return chain.ReleaseWatchdog(fsys) },
		SettleCause:     func(r tries.Record) string { return chain.SettleCause(fsys, r) },
		Uptime:          bootTime,
		BootID:          chain.BootID(fsys),
		Release:         chain.Release(fsys),
	}, nil
}

// bootTime is the time since this kernel started, from CLOCK_BOOTTIME,
// which needs no /proc.
func bootTime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

// runCheck runs HEALTH_CMD with /bin/sh and a time limit. PID 1's
// environment has no PATH: the command gets kxboot's.
func runCheck(cmd string, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Env = append(os.Environ(), "PATH="+chain.SearchPath)
	// A child the command left running (a daemon started by the check)
	// keeps the output pipe open; without a bound on that wait the time
	// limit would not hold.
	c.WaitDelay = time.Second
	out, err := c.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within %v", limit)
	}
	return string(out), err
}

// Firmware is what a reboot through the firmware acts on.
type Firmware struct {
	FS     rootfs.FS
	Engine *kexec.Engine
	// Mounts, when set, remounts the disks read-only before a forced
	// reset.
	Mounts mounts.Sys
	Logf   func(format string, args ...any)
	// RunReboot asks the init system for a clean reboot (the reboot
	// command) and returns once it has asked; ErrNoRebootCommand when
	// there is no such command.
	RunReboot func() error
	// Sleep waits for the init system to reboot.
	Sleep func(time.Duration)
}

// ErrNoRebootCommand is what Firmware.RunReboot returns when the machine
// has no reboot command.
var ErrNoRebootCommand = errors.New("no reboot command found")

// rebootWait is how long the init system has for its clean reboot before
// kxboot resets the machine itself.
const rebootWait = 2 * time.Minute

// FirmwareReboot reboots so that the provider's kernel comes back: nothing
// stays loaded for kexec, the flag in /run tells kxboot's own reboot hook
// to stand aside, and the init system does a clean reboot. If the machine
// is still up two minutes later (or there is no reboot command), it syncs,
// remounts read-only and resets. It returns only if the reset failed.
func FirmwareReboot(f Firmware, reason string) error {
	// Neither failure stops the reboot: the reset below brings the
	// provider's kernel back all the same.
	f.Engine.Unload()
	fastreboot.RequestFirmware(f.FS, reason)
	f.Logf("kxboot: rebooting through the firmware, so the provider's kernel comes back: %s", reason)
	err := f.RunReboot()
	if err == nil {
		f.Sleep(rebootWait)
		err = errors.New("the init system did not reboot within two minutes")
	}
	f.Logf("kxboot: %v; forcing a reset", err)
	if f.Mounts != nil {
		mounts.RemountReadOnly(f.FS, f.Mounts)
	}
	return f.Engine.Reboot()
}

// runReboot runs the init system's reboot command (reboot, systemctl
// reboot, openrc-shutdown -r now), found on the PATH or else in the
// directories of dirs (PID 1's environment has no PATH), with dirs as its
// PATH.
func runReboot(dirs string, cmd []string) error {
	path, err := exec.LookPath(cmd[0])
	if err != nil {
		path = ""
		for _, d := range strings.Split(dirs, ":") {
			if _, err := os.Stat(d + "/" + cmd[0]); err == nil {
				path = d + "/" + cmd[0]
				break
			}
		}
	}
	if path == "" {
		return ErrNoRebootCommand
	}
	// The command is named by its path: exec.Command("reboot") would
	// keep its failed look-up on the PATH and refuse to start.
	c := exec.Command(path, cmd[1:]...)
	c.Env = append(os.Environ(), "PATH="+dirs)
	return c.Run()
}
