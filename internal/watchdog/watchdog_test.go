package watchdog

import (
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

// machine returns a root with /dev/watchdog and watchdog0's sysfs, and a
// fake device bound to it.
func machine(t *testing.T, extra map[string]string) (rootfs.FS, *Fake) {
	t.Helper()
	files := map[string]string{
		Device:                  "",
		SysDir + "/identity":    "iTCO_wdt\n",
		SysDir + "/state":       "inactive\n",
		SysDir + "/timeout":     "30\n",
		SysDir + "/nowayout":    "0\n",
		SysDir + "/min_timeout": "2\n",
		SysDir + "/max_timeout": "613\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	fsys := rootfstest.Tree(t, files, nil)
	return fsys, &Fake{FS: &fsys, Identity: "iTCO_wdt", Timeout: 30, Min: 2, Max: 613}
}

func TestArmSetsTimeoutAndLeavesItRunning(t *testing.T) {
	fsys, dev := machine(t, nil)
	a, err := Arm(fsys, dev, 300*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.Timeout != 300 || a.Requested != 300 || a.Identity != "iTCO_wdt" {
		t.Errorf("armed %+v", a)
	}
	want := []string{"open", "info", "settimeout 300", "keepalive", "close"}
	if !slices.Equal(dev.Calls, want) {
		t.Errorf("calls %v, want %v", dev.Calls, want)
	}
	if !dev.Running || dev.IsOpen {
		t.Errorf("running %v open %v: want running and closed", dev.Running, dev.IsOpen)
	}
	if s, _ := fsys.ReadString(SysDir + "/state"); s != "active" {
		t.Errorf("state %q", s)
	}
	if got := a.String(); got != "armed /dev/watchdog (iTCO_wdt) with a 300 s timeout" {
		t.Errorf("String() = %q", got)
	}
}

func TestArmReportsWhatTheDriverTook(t *testing.T) {
	t.Run("rounded", func(t *testing.T) {
		fsys, dev := machine(t, nil)
		dev.Round = 4
		a, err := Arm(fsys, dev, 299500*time.Millisecond) // 300 s, then 300 is a multiple of 4
		if err != nil || a.Timeout != 300 {
			t.Fatalf("%+v %v", a, err)
		}
		dev.Running = false
		a, err = Arm(fsys, dev, 301*time.Second)
		if err != nil || a.Timeout != 304 || a.Requested != 301 || !strings.Contains(a.String(), "with a 304 s timeout (asked for 301 s)") {
			t.Fatalf("%+v %v: %s", a, err, a)
		}
	})
	t.Run("clamped to max_timeout", func(t *testing.T) {
		fsys, dev := machine(t, nil)
		a, err := Arm(fsys, dev, time.Hour)
		if err != nil || a.Timeout != 613 {
			t.Fatalf("%+v %v", a, err)
		}
		if !strings.Contains(a.String(), "asked for 3600 s; the driver takes 2 to 613 s") {
			t.Errorf("String() = %q", a)
		}
		if !slices.Contains(dev.Calls, "settimeout 3600") || !slices.Contains(dev.Calls, "settimeout 613") {
			t.Errorf("calls %v", dev.Calls)
		}
	})
	t.Run("fixed timeout", func(t *testing.T) {
		fsys, dev := machine(t, nil)
		dev.Options = OptMagicClose
		a, err := Arm(fsys, dev, 300*time.Second)
		if err != nil || a.Timeout != 30 || !strings.Contains(a.String(), "the driver's timeout is fixed") {
			t.Fatalf("%+v %v: %s", a, err, a)
		}
		if !dev.Running {
			t.Error("not left running")
		}
	})
	t.Run("timeout unknown", func(t *testing.T) {
		fsys, dev := machine(t, nil)
		dev.Options = OptMagicClose
		dev.Timeout = 0
		if _, err := Arm(fsys, dev, 300*time.Second); err == nil || !strings.Contains(err.Error(), "cannot set the timeout") {
			t.Fatalf("err %v", err)
		}
		if dev.Running || dev.Calls[len(dev.Calls)-1] != "magicclose" {
			t.Errorf("running %v calls %v: want it stopped again", dev.Running, dev.Calls)
		}
	})
	t.Run("timeleft", func(t *testing.T) {
		fsys, dev := machine(t, map[string]string{SysDir + "/timeleft": "8\n"})
		a, err := Arm(fsys, dev, 300*time.Second)
		if err != nil || a.Timeleft != 8 || !strings.Contains(a.String(), "the driver reports 8 s left") {
			t.Fatalf("%+v %v: %s", a, err, a)
		}
	})
}

func TestArmWithoutWatchdog(t *testing.T) {
	fsys := rootfstest.New(t)
	dev := &Fake{}
	if _, err := Arm(fsys, dev, time.Minute); !errors.Is(err, ErrNoWatchdog) {
		t.Fatalf("err %v, want ErrNoWatchdog", err)
	}
	if len(dev.Calls) != 0 {
		t.Errorf("calls %v", dev.Calls)
	}
	// A node with no driver behind it.
	fsys, dev = machine(t, nil)
	dev.OpenErr = &os.PathError{Op: "open", Path: Device, Err: syscall.ENODEV}
	if _, err := Arm(fsys, dev, time.Minute); !errors.Is(err, ErrNoWatchdog) {
		t.Fatalf("err %v, want ErrNoWatchdog", err)
	}
}

func TestArmRefusesNowayout(t *testing.T) {
	fsys, dev := machine(t, map[string]string{SysDir + "/nowayout": "1\n"})
	_, err := Arm(fsys, dev, time.Minute)
	if !errors.Is(err, ErrNowayout) || !strings.Contains(err.Error(), "could never be stopped") {
		t.Fatalf("err %v", err)
	}
	if len(dev.Calls) != 0 {
		t.Errorf("opened it anyway: %v", dev.Calls)
	}
}

func TestArmBusy(t *testing.T) {
	fsys, dev := machine(t, nil)
	dev.Held = true
	if _, err := Arm(fsys, dev, time.Minute); !errors.Is(err, ErrBusy) {
		t.Fatalf("err %v, want ErrBusy", err)
	}
}

func TestArmRefusesDriverWithoutMagicClose(t *testing.T) {
	fsys, dev := machine(t, nil)
	dev.Options = OptSetTimeout
	_, err := Arm(fsys, dev, time.Minute)
	if !errors.Is(err, ErrNoMagicClose) {
		t.Fatalf("err %v", err)
	}
	if dev.Running {
		t.Error("left running")
	}
}

func TestReleaseMagicCloses(t *testing.T) {
	fsys, dev := machine(t, nil)
	if _, err := Arm(fsys, dev, time.Minute); err != nil {
		t.Fatal(err)
	}
	dev.Calls = nil
	msg, err := Release(fsys, dev)
	if err != nil {
		t.Fatal(err)
	}
	if msg != "stopped /dev/watchdog (iTCO_wdt) with the magic close" {
		t.Errorf("msg %q", msg)
	}
	if want := []string{"open", "info", "magicclose"}; !slices.Equal(dev.Calls, want) {
		t.Errorf("calls %v, want %v", dev.Calls, want)
	}
	if dev.Running {
		t.Error("still running")
	}
}

func TestReleaseLeavesBusyWatchdog(t *testing.T) {
	fsys, dev := machine(t, nil)
	dev.Held, dev.Running = true, true
	msg, err := Release(fsys, dev)
	if err != nil || !strings.Contains(msg, "held by another program") || !strings.Contains(msg, "left running") {
		t.Fatalf("%q %v", msg, err)
	}
	if !dev.Running {
		t.Error("stopped it")
	}
}

func TestReleaseNowayout(t *testing.T) {
	fsys, dev := machine(t, map[string]string{SysDir + "/nowayout": "1\n", SysDir + "/state": "active\n"})
	dev.Running, dev.Nowayout = true, true
	msg, err := Release(fsys, dev)
	if !errors.Is(err, ErrNowayout) || !strings.Contains(msg, "cannot be stopped") {
		t.Fatalf("%q %v", msg, err)
	}
	if len(dev.Calls) != 0 {
		t.Errorf("opened it: %v", dev.Calls)
	}
}

func TestReleaseNotStopped(t *testing.T) {
	// nowayout set in the driver but not visible in sysfs: the magic close
	// does not stop it, and state says so.
	fsys, dev := machine(t, nil)
	os.Remove(fsys.Path(SysDir + "/nowayout"))
	dev.Nowayout = true
	msg, err := Release(fsys, dev)
	if !errors.Is(err, ErrNotStopped) || !strings.Contains(msg, "did not stop") {
		t.Fatalf("%q %v", msg, err)
	}
}

func TestReleaseWithoutWatchdog(t *testing.T) {
	msg, err := Release(rootfstest.New(t), &Fake{})
	if err != nil || msg != "no /dev/watchdog: nothing to stop" {
		t.Fatalf("%q %v", msg, err)
	}
}

func TestSurvives(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  bool
		says  string
	}{
		{"sysfs 0", map[string]string{ParamPath: "0\n"}, true, "stop_on_reboot is 0 (/sys/module/watchdog/parameters/stop_on_reboot): the kernel leaves the watchdog running"},
		{"sysfs 1", map[string]string{ParamPath: "1\n"}, false, "stop_on_reboot is 1"},
		{"sysfs -1", map[string]string{ParamPath: "-1\n"}, false, "the driver decides"},
		{"sysfs wins over the command line", map[string]string{ParamPath: "-1\n", CmdlinePath: "ro watchdog.stop_on_reboot=0\n"}, false, "is -1"},
		{"cmdline 0", map[string]string{CmdlinePath: "root=/dev/vda1 watchdog.stop_on_reboot=0 quiet\n"}, true, "the command line has watchdog.stop_on_reboot=0"},
		{"cmdline 1", map[string]string{CmdlinePath: "watchdog.stop_on_reboot=1\n"}, false, "the kernel stops the watchdog"},
		{"cmdline last wins", map[string]string{CmdlinePath: "watchdog.stop_on_reboot=0 watchdog.stop_on_reboot=1\n"}, false, "=1"},
		{"cmdline dashes", map[string]string{CmdlinePath: "watchdog.stop-on-reboot=0\n"}, true, "=0"},
		{"cmdline quoted", map[string]string{CmdlinePath: `watchdog.stop_on_reboot="0"` + "\n"}, true, "=0"},
		{"cmdline after --", map[string]string{CmdlinePath: "ro -- watchdog.stop_on_reboot=0\n"}, false, "not set"},
		{"neither", map[string]string{CmdlinePath: "ro quiet\n"}, false, "stop_on_reboot is not set"},
		{"garbage", map[string]string{ParamPath: "x\n"}, false, "not a number"},
		{"legacy driver", map[string]string{Device: "", "/sys/class/watchdog/.keep": "", ParamPath: "0\n"}, false, "legacy driver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, says := Survives(rootfstest.Tree(t, tt.files, nil))
			if got != tt.want || !strings.Contains(says, tt.says) {
				t.Errorf("Survives = %v, %q; want %v and %q", got, says, tt.want, tt.says)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	fsys, _ := machine(t, nil)
	if got := ReadSysfs(fsys).Describe(); got != "watchdog0 (iTCO_wdt, timeout 30 s, inactive)" {
		t.Errorf("Describe = %q", got)
	}
	if got := ReadSysfs(rootfstest.New(t)).Describe(); !strings.Contains(got, "legacy driver") {
		t.Errorf("Describe = %q", got)
	}
}
