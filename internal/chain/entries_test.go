package chain

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/plan"
	"github.com/kxboot/kxboot/internal/tries"
)

// TestEntries: the order of the entries a hop boots. A one-shot kernel
// first; the configured kernel until it used up MAX_TRIES; then the last
// known-good entry, itself counted; then the provider's kernel. A change
// of the configured kernel's identity starts its count afresh.
func TestEntries(t *testing.T) {
	cfg := &config.Config{Enabled: true, MaxTries: 2, Path: "/etc/default/kxboot"}
	c := plan.Plan{Kernel: "/boot/vmlinuz-C", Release: "6.13", KernelFrom: "KERNEL= in /etc/default/kxboot:1"}
	good := &Candidate{Boot: tries.Boot{Kernel: "/boot/vmlinuz-B", ID: "b", Cmdline: "root=/dev/vda panic=10 kxboot.chained=1"}, From: "confirmed 2026-11-30 10:00:00"}
	once := &Candidate{Boot: tries.Boot{Kernel: "/boot/vmlinuz-A", ID: "a"}, From: "asked for by kxboot reboot --once"}
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	hopC := tries.Boot{Kernel: c.Kernel, ID: "c"}
	failed := func(r tries.Record, b tries.Boot) tries.Record {
		r, _ = tries.Fail(tries.Hop(r, b, tries.Configured, "", t0, "x"), t0, "the kernel never confirmed")
		return r
	}
	cTwice := failed(failed(tries.Record{}, hopC), hopC)
	// The boot after the switch: C given up, B hopped into and confirmed.
	onGood := tries.Confirm(tries.Hop(tries.GiveUp(cTwice, c.Kernel, "c", 2, "the kernel never confirmed", t0), good.Boot, tries.KnownGood, "", t0, "y"), t0)
	goodTwice := failed(failed(tries.GiveUp(cTwice, c.Kernel, "c", 2, "x", t0), good.Boot), good.Boot)
	in := func(r tries.Record, id string, g, o *Candidate) Input {
		return Input{Running: cmdline.Parse("root=/dev/vda ro"), Config: cfg, Plan: c, ID: id, Record: r, Good: g, Once: o}
	}
	for _, tt := range []struct {
		name     string
		in       Input
		entry    string // "" for boot on
		kernel   string
		try      int
		fallback bool
		giveUp   bool
		because  string
	}{
		{"first try of C", in(tries.Record{}, "c", good, nil), tries.Configured, c.Kernel, 1, false, false, "booting /boot/vmlinuz-C (6.13), named by KERNEL= in /etc/default/kxboot:1, try 1 of 2"},
		{"C used up: known-good", in(cTwice, "c", good, nil), tries.KnownGood, good.Boot.Kernel, 1, false, true,
			"2 unconfirmed hops in a row into /boot/vmlinuz-C (last: the kernel never confirmed); booting the last known-good kernel /boot/vmlinuz-B (confirmed 2026-11-30 10:00:00), try 1 of 2"},
		{"later boots stay on known-good", in(onGood, "c", good, nil), tries.KnownGood, good.Boot.Kernel, 1, false, false,
			"/boot/vmlinuz-C used up its 2 tries (last: the kernel never confirmed); booting the last known-good kernel"},
		{"C changed: a fresh count", in(onGood, "c2", good, nil), tries.Configured, c.Kernel, 1, false, false, "try 1 of 2"},
		{"known-good used up too: provider", in(goodTwice, "c", good, nil), "", "", 0, true, false,
			"used up its 2 tries (last: x); staying on this kernel until kxboot reset, or a change of the kernel or its command line (the last known-good kernel /boot/vmlinuz-B failed 2 times too)"},
		{"known-good changed: provider", in(cTwice, "c", &Candidate{Boot: good.Boot, Err: errors.New("/boot/vmlinuz-B or its initrds changed since it was confirmed")}, nil), "", "", 0, true, false,
			"(the last known-good kernel cannot be used: /boot/vmlinuz-B or its initrds changed since it was confirmed)"},
		{"known-good is C itself", in(cTwice, "c", &Candidate{Boot: hopC}, nil), "", "", 0, true, false, "2 unconfirmed hops in a row"},
		{"KNOWN_GOOD=no: provider", in(cTwice, "c", nil, nil), "", "", 0, true, false, "2 unconfirmed hops in a row into /boot/vmlinuz-C"},
		{"C missing: known-good", Input{Running: cmdline.Parse("ro"), Config: cfg, Plan: c, KernelErr: errors.New("kernel /boot/vmlinuz-C does not exist"), Good: good}, tries.KnownGood, good.Boot.Kernel, 1, false, false,
			"kernel /boot/vmlinuz-C does not exist; booting the last known-good kernel"},
		{"once first", in(cTwice, "c", good, once), tries.Once, "/boot/vmlinuz-A", 1, false, false,
			"booting /boot/vmlinuz-A once, asked for by kxboot reboot --once; the boot after goes back to the usual kernel"},
		{"once unusable: the usual", in(tries.Record{}, "c", good, &Candidate{Boot: once.Boot, Err: errors.New("kernel /boot/vmlinuz-A does not exist")}), tries.Configured, c.Kernel, 1, false, false,
			"the one-shot kernel cannot be used (kernel /boot/vmlinuz-A does not exist); booting /boot/vmlinuz-C"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.in)
			if d.Hop != (tt.entry != "") || d.Entry != tt.entry || d.Fallback != tt.fallback || (d.GiveUp != nil) != tt.giveUp || !strings.Contains(d.Reason, tt.because) {
				t.Fatalf("Decide = %+v\nwant entry %q, fallback %v, give up %v, because %q", d, tt.entry, tt.fallback, tt.giveUp, tt.because)
			}
			if d.Hop && (d.Boot.Kernel != tt.kernel || d.Try != tt.try) {
				t.Errorf("hop into %s try %d; want %s try %d", d.Boot.Kernel, d.Try, tt.kernel, tt.try)
			}
			// The record the hop writes: a one-shot is used up, a give-up
			// kept, and the known-good entry loaded as it was confirmed.
			if d.Hop {
				r := HopRecord(tt.in.Record, d, t0, "z")
				if r.Next != nil && d.Entry == tries.Once {
					t.Errorf("the one-shot kernel is still asked for after its hop")
				}
				if tt.giveUp && (r.GaveUp == nil || r.GaveUp.ID != "c") {
					t.Errorf("the give-up is not kept: %+v", r.GaveUp)
				}
				if r.Boot == nil || r.Boot.Cmdline != d.Boot.Cmdline || r.Entry != d.Entry {
					t.Errorf("record's boot %+v, entry %q", r.Boot, r.Entry)
				}
			}
		})
	}
}

// TestConfirmMakesKnownGood: a confirmed hop becomes the known-good entry;
// a reset forgets a give-up but not the known-good entry.
func TestConfirmMakesKnownGood(t *testing.T) {
	t0 := time.Now()
	b := tries.Boot{Kernel: "/boot/vmlinuz-B", ID: "b", Cmdline: "x"}
	r := tries.Confirm(tries.Hop(tries.GiveUp(tries.Record{}, "/boot/vmlinuz-C", "c", 3, "x", t0), b, tries.KnownGood, "", t0, "y"), t0)
	if r.Good == nil || r.Good.ID != "b" || r.Good.Cmdline != "x" || r.GaveUp == nil {
		t.Fatalf("after the confirmation: good %+v, gave up %+v", r.Good, r.GaveUp)
	}
	r = tries.Reset(r)
	if r.Good == nil || r.GaveUp != nil {
		t.Errorf("after reset: good %+v, gave up %+v", r.Good, r.GaveUp)
	}
	// The given-up kernel, tried again after a reset and confirmed, is
	// not given up any more.
	c := tries.Boot{Kernel: "/boot/vmlinuz-C", ID: "c"}
	r = tries.Confirm(tries.Hop(tries.GiveUp(r, c.Kernel, "c", 3, "x", t0), c, tries.Configured, "", t0, "z"), t0)
	if r.GaveUp != nil || r.Good.ID != "c" {
		t.Errorf("C confirmed: gave up %+v, good %+v", r.GaveUp, r.Good)
	}
}

// TestRunKnownGoodAndSlots: on a machine, through Run and the fake loader.
// The record keeps the known-good entry's exact command line, and the hop
// into it loads that line; slots on this machine's files hop into the
// active slot, and set-next's one-shot slot once.
func TestRunKnownGoodAndSlots(t *testing.T) {
	const k = "/boot/vmlinuz-6.1.0-56-cloud-amd64"
	m := newMachine(t, "KERNEL=/boot/vmlinuz-gone\nABORT_SECONDS=0\n")
	m.env.Store = &tries.Store{FS: m.fs}
	m.sys.ExecErr = unix.EINVAL
	t0 := time.Now()
	good := tries.Boot{Kernel: k, Initrds: []string{"/boot/initrd.img-6.1.0-56-cloud-amd64"}, Cmdline: "root=/dev/vda ro old=1 panic=10 kxboot.chained=1"}
	good.ID = tries.Identity(m.fs, good.Kernel, good.Initrds, good.Cmdline)
	m.env.Store.Write(tries.Confirm(tries.Hop(tries.Record{}, good, tries.Configured, "", t0, "b0"), t0))
	Run(m.env)
	if m.sys.Cmdline != good.Cmdline || !slices.ContainsFunc(m.log, func(l string) bool {
		return strings.HasPrefix(l, "kxboot: chain: kernel /boot/vmlinuz-gone does not exist; name an installed kernel") && strings.Contains(l, "; booting the last known-good kernel "+k)
	}) {
		t.Errorf("known-good hop loaded %q; log %q", m.sys.Cmdline, m.log)
	}
	r, _ := m.env.Store.Read()
	if r.Entry != tries.KnownGood || r.Tries != 1 || r.Boot == nil || r.Boot.Cmdline != good.Cmdline {
		t.Errorf("record after the known-good hop: %+v", r)
	}

	// Slots: A and B on this machine's files, A first; a one-shot B.
	m = newMachine(t, "ABORT_SECONDS=0\nSLOT_A_KERNEL="+k+"\nSLOT_B_KERNEL="+k+"\nSLOT_B_CMDLINE=\"root=/dev/vdb ro\"\n")
	m.env.Store = &tries.Store{FS: m.fs}
	m.sys.ExecErr = unix.EINVAL
	Run(m.env)
	if r, _ := m.env.Store.Read(); r.Boot == nil || r.Boot.Slot != "A" || m.sys.Cmdline != "root=/dev/vda ro console=ttyS0 panic=10 kxboot.chained=1" {
		t.Errorf("slot A: record %+v, cmdline %q", r.Boot, m.sys.Cmdline)
	}
	m.env.Store.Update(func(r tries.Record, _ error) (tries.Record, error) {
		r.Pending = false
		r.Next = &tries.OneShot{Slot: "B", By: "kxboot slot set-next"}
		return r, nil
	})
	d := Run(m.env)
	r, _ = m.env.Store.Read()
	if r.Boot == nil || r.Boot.Slot != "B" || r.Entry != tries.Once || r.Next != nil || m.sys.Cmdline != "root=/dev/vdb ro panic=10 kxboot.chained=1" {
		t.Errorf("slot B once: decision %+v, record %+v, cmdline %q", d, r, m.sys.Cmdline)
	}
	// Confirmed, B is the active slot.
	if err := m.env.Store.Write(tries.Confirm(r, t0)); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(m.fs)
	if err != nil {
		t.Fatal(err)
	}
	r, _ = m.env.Store.Read()
	if s, why := ActiveSlot(cfg, r); s.Name != "B" || !strings.HasPrefix(why, "slot B, the active one (confirmed ") {
		t.Errorf("active slot %s: %s", s.Name, why)
	}
}
