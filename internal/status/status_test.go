package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/internal/bootstate"
	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/fastreboot"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/plan"
	"github.com/kxboot/kxboot/internal/tries"
)

// states are a machine where everything is known, one where nothing could
// be read, and one with no kernel to load.
func states() map[string]bootstate.State {
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	good := bootstate.State{
		Release: "6.1.0-56-cloud-amd64", Cmdline: "root=/dev/vda1 kxboot.chained=1", BootID: "b2",
		Marker: "kxboot.chained=1", Via: bootstate.Chain, Init: "systemd",
		Chain:  &journal.Record{Job: "chain", Mode: "wrapper"},
		Reboot: &journal.Record{Job: "reboot", Mode: "systemd"},
		In: chain.Input{
			Config: &config.Config{Path: config.Path, Format: "kxboot", MaxTries: 3},
			Base:   plan.Plan{Kernel: "/boot/vmlinuz", Cmdline: "root=/dev/vda1 kxboot.chained=1"},
			Record: tries.Record{Kernel: "/boot/vmlinuz", Tries: 1, Pending: true},
		},
		NextReboot: fastreboot.Next{Installed: true, Choice: fastreboot.Choice{Load: true, Reason: "/boot/vmlinuz"}},
		Loaded:     true, LastChain: "hop: booting /boot/vmlinuz",
		History: []tries.Entry{{Time: now, Boot: "b1", Event: "hop", Kernel: "/boot/vmlinuz", Try: 1, Max: 3}},
	}
	broken := bootstate.State{
		Release: "6.1.0-54-cloud-amd64", Via: bootstate.Firmware, Init: "sysvinit",
		InstallErr: errors.New("/var/lib/kxboot/install.json is damaged"),
		In: chain.Input{ConfigErr: errors.New("/etc/default/kxboot:1: unterminated quote"),
			RecordErr: errors.New("the try record's checksum is wrong")},
		LoadedErr: errors.New("cannot read /sys/kernel/kexec_loaded"),
	}
	noKernel := bootstate.State{Via: bootstate.Firmware, In: chain.Input{Config: &config.Config{MaxTries: 3}, PlanErr: errors.New("no installed kernel found")}}
	return map[string]bootstate.State{"good": good, "broken": broken, "no kernel": noKernel}
}

// exclusive are the fields whose value and error never stand together.
var exclusive = [][2]string{
	{"loaded", "loaded_error"}, {"config", "config_error"}, {"next", "next_error"},
	{"tries", "tries_error"}, {"max_tries", "config_error"}, {"installed", "install_problem"},
}

// TestJSONContract: the schema version, no contradictory fields, and
// every field documented in docs/status.md.
func TestJSONContract(t *testing.T) {
	doc, err := os.ReadFile("../../docs/status.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for name, s := range states() {
		b, err := json.Marshal(From(s))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		if m["schema"] != float64(Schema) || Schema != 1 {
			t.Errorf("%s: schema %v", name, m["schema"])
		}
		for _, pair := range exclusive {
			_, a := m[pair[0]]
			_, b := m[pair[1]]
			if a && b {
				t.Errorf("%s: both %s and %s", name, pair[0], pair[1])
			}
		}
		for k := range m {
			seen[k] = true
			if !strings.Contains(string(doc), "`"+k+"`") {
				t.Errorf("docs/status.md does not describe the field %q", k)
			}
		}
	}
	for _, k := range []string{"schema", "boot_id", "via", "via_kxboot", "loaded", "loaded_error", "config", "config_error", "next", "next_error", "tries", "tries_error", "next_reboot", "fast_reboot", "install_problem", "history"} {
		if !seen[k] {
			t.Errorf("no state made the field %q", k)
		}
	}
	r := From(states()["good"])
	if r.Via != "chain" || !r.ViaKxboot || r.Installed != "chain wrapper" || r.FastReboot != "systemd" || r.Tries == nil || r.MaxTries != 3 {
		t.Errorf("good: %+v", r)
	}
}

func TestWrite(t *testing.T) {
	var out bytes.Buffer
	Write(&out, From(states()["good"]))
	for _, want := range []string{
		"via kxboot: yes (kxboot.chained=1 is on the command line)\n",
		"came by:    chain (kxboot's chain boot hopped into this kernel)\n",
		"loaded:     yes",
		"installed:  chain wrapper (undo: kxboot uninstall)\n",
		"tries:      this boot is try 1 of 3 of /boot/vmlinuz, waiting for kxboot mark-good\n",
		"reboot:     the next reboot goes through kexec, /boot/vmlinuz\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	// A kernel the fast reboot loaded ahead says so.
	ahead := states()["good"]
	ahead.NextReboot.Ahead = &fastreboot.Preloaded{Kernel: "/boot/vmlinuz", Time: time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC)}
	out.Reset()
	Write(&out, From(ahead))
	for _, want := range []string{
		"loaded:     yes: /boot/vmlinuz, preloaded for the next reboot (REBOOT_PRELOAD)\n",
		"reboot:     the next reboot goes through kexec, /boot/vmlinuz (preloaded at 11:00:00)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	Write(&out, From(states()["broken"]))
	for _, want := range []string{
		"via kxboot: no\n", "came by:    firmware", "loaded:     unknown (cannot read /sys/kernel/kexec_loaded)\n",
		"installed:  nothing recorded; WARNING: /var/lib/kxboot/install.json is damaged\n",
		"tries:      DAMAGED: the try record's checksum is wrong", "config:     broken: /etc/default/kxboot:1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("broken status lacks %q:\n%s", want, out.String())
		}
	}
}
