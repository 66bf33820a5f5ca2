package bootstate

import (
	"errors"
	"testing"
	"time"

	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
	"github.com/kxboot/kxboot/internal/testimg"
	"github.com/kxboot/kxboot/internal/tries"
)

func TestVia(t *testing.T) {
	at := func(boot, event, reason string) tries.Entry {
		return tries.Entry{Time: time.Unix(1, 0), Boot: boot, Event: event, Reason: reason}
	}
	for _, tt := range []struct {
		name    string
		marker  string
		history []tries.Entry
		want    Via
	}{
		{"no marker", "", []tries.Entry{at("b1", "hop", "booting k")}, Firmware},
		{"chain hop", "kxboot.chained=1", []tries.Entry{at("b1", "hop", "booting k")}, Chain},
		{"fast reboot", "kxboot.chained=1", []tries.Entry{at("b1", "confirmed", ""), at("b1", "fast-reboot", "k, newest installed kernel")}, FastReboot},
		{"fast reboot counted as a try", "kxboot.chained=1", []tries.Entry{at("b1", "hop", "fast reboot: booting k")}, FastReboot},
		{"this boot's lines pass over", "kxboot.chained=1", []tries.Entry{at("b1", "hop", "booting k"), at("now", "confirmed", ""), at("now", "fast-reboot", "k")}, Chain},
		{"the boot before loaded nothing", "kxboot.chained=1", []tries.Entry{at("b1", "hop", "booting k"), at("b2", "confirmed", "")}, Kexec},
		{"no history", "kxboot.chained=1", nil, Kexec},
	} {
		if got := via(tt.marker, "now", tt.history); got != tt.want {
			t.Errorf("%s: via = %q; want %q", tt.name, got, tt.want)
		}
	}
}

// machine is a Debian machine booted by kxboot's chain boot.
func machine(t *testing.T) rootfs.FS {
	fsys := rootfstest.Tree(t, map[string]string{
		"/boot/vmlinuz-6.1.0-56-cloud-amd64":   string(testimg.BzImage(32768, "6.1.0-56-cloud-amd64")),
		"/proc/cmdline":                        "root=/dev/vda1 ro kxboot.chained=1\n",
		"/proc/sys/kernel/osrelease":           "6.1.0-56-cloud-amd64\n",
		"/proc/sys/kernel/random/boot_id":      "now\n",
		"/run/systemd/system/.keep":            "",
		journal.Path(journal.JobChain):         `{"job":"chain","mode":"systemd","steps":[]}`,
		"/etc/default/kxboot":                  "MAX_TRIES=2\n",
		"/usr/lib/systemd/system/.placeholder": "",
	}, nil)
	st := tries.Store{FS: fsys}
	st.Append(tries.Entry{Time: time.Now(), Boot: "before", Event: "hop", Kernel: "/boot/vmlinuz-6.1.0-56-cloud-amd64"})
	st.Write(tries.Hop(tries.Record{}, tries.Boot{Kernel: "/boot/vmlinuz-6.1.0-56-cloud-amd64", ID: "id"}, tries.Configured, "", time.Now(), "before"))
	return fsys
}

type loaded struct {
	yes bool
	err error
}

func (l loaded) Loaded() (bool, error) { return l.yes, l.err }

func TestRead(t *testing.T) {
	s := Read(machine(t), loaded{err: errors.New("no sysfs")})
	if s.Release != "6.1.0-56-cloud-amd64" || s.BootID != "now" || s.Marker != "kxboot.chained=1" || s.Via != Chain || s.Init != "systemd" {
		t.Errorf("state = %+v", s)
	}
	if s.Chain == nil || s.Chain.Mode != "systemd" || s.Reboot != nil || s.InstallErr != nil {
		t.Errorf("installs: chain %+v, reboot %+v, %v", s.Chain, s.Reboot, s.InstallErr)
	}
	if s.In.ConfigErr != nil || s.In.Config.MaxTries != 2 || s.In.PlanErr != nil || !s.In.Record.Pending {
		t.Errorf("input: %+v", s.In)
	}
	// On a boot that came through kxboot the decision is the loop guard,
	// and no fallback is claimed.
	if s.NextBoot.Hop || !s.NextBoot.Chained || s.Fallback() != "" {
		t.Errorf("next boot %+v, fallback %q", s.NextBoot, s.Fallback())
	}
	// The next reboot, without the fast reboot installed, is a firmware one.
	if s.NextReboot.Installed || !s.NextReboot.Choice.Load || s.NextReboot.Choice.Hop.Entry != tries.Configured {
		t.Errorf("next reboot %+v", s.NextReboot)
	}
	if s.LoadedErr == nil || s.Loaded {
		t.Errorf("loaded %v, %v", s.Loaded, s.LoadedErr)
	}

	// A broken config: the try record is read all the same.
	fsys := machine(t)
	rootfstest.Write(t, fsys, "/etc/default/kxboot", []byte("KERNEL=\"/boot/x\n"))
	s = Read(fsys, nil)
	if s.In.ConfigErr == nil || !s.In.Record.Pending || s.NextBoot.Hop {
		t.Errorf("broken config: %+v", s.In)
	}
}
