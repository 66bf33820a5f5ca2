package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSpliceResults(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "b.md")
	if err := spliceResults(name, ""); err != nil {
		t.Fatalf("check of an absent file: %v", err)
	}
	if _, err := os.Stat(name); err == nil {
		t.Fatal("the check created the file")
	}
	if err := spliceResults(name, "one\n"); err != nil {
		t.Fatal(err)
	}
	doc := "# Title\n\nprose\n\n" + mustRead(t, name) + "\nmore prose\n"
	if err := os.WriteFile(name, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := spliceResults(name, "| a |\n"); err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\nprose\n\n" + beginResults + "\n| a |\n\n" + endResults + "\n\nmore prose\n"
	if got := mustRead(t, name); got != want {
		t.Errorf("after the splice:\n%s\nwant:\n%s", got, want)
	}

	bare := filepath.Join(dir, "bare.md")
	os.WriteFile(bare, []byte("no markers\n"), 0o644)
	if err := spliceResults(bare, ""); err == nil || !strings.Contains(err.Error(), "no results markers") {
		t.Errorf("a file without markers: %v", err)
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMedian(t *testing.T) {
	if got := median([]float64{1, 2, 9}); got != 2 {
		t.Errorf("median of 1 2 9 = %g", got)
	}
	if got := median([]float64{1, 2, 4, 9}); got != 3 {
		t.Errorf("median of 1 2 4 9 = %g", got)
	}
}

// TestWatch feeds a console in the order a kxboot reboot prints it: only
// lines after the marker count, the first banner after it ends the
// shutdown, and the "Run /init" before the marker (the cold boot's) is not
// the end.
func TestWatch(t *testing.T) {
	w := &watch{unit: "kxboot-reboot."}
	lines := []string{
		"[    0.000000] Linux version 6.1.0-55-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12)",
		"[    3.000000] Run /init as init process",
		"KXBENCH reboot-now kxboot",
		"         Stopping kxboot-reboot.ser…oad the next kernel at shutdown...",
		"[   24.5] kxboot: reboot: loaded /boot/vmlinuz-6.1.0-56-cloud-amd64 with kexec_file_load in 1797 ms; command line: root=/dev/vda ro",
		"[  OK  ] Stopped kxboot-reboot.serv… load the next kernel at shutdown.",
		"[   26.0] kexec_core: Starting new kernel",
		"[    0.000000] Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12)",
		"[    2.900000] Run /init as init process",
		"[    0.000000] Linux version 6.1.0-99-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12)",
	}
	for _, l := range lines {
		w.line(l)
		time.Sleep(time.Millisecond)
	}
	switch {
	case w.markers != 1 || w.method != "kxboot":
		t.Errorf("markers %d, method %q", w.markers, w.method)
	case w.release != "6.1.0-56-cloud-amd64":
		t.Errorf("release after the marker %q", w.release)
	case w.load == nil || w.load[2] != "kexec_file_load" || w.load[3] != "1797":
		t.Errorf("load line %q", w.load)
	case !(w.marker.Before(w.stop[0]) && w.stop[0].Before(w.stop[1]) && w.stop[1].Before(w.jump) &&
		w.jump.Before(w.banner) && w.banner.Before(w.init)):
		t.Errorf("times out of order: marker %v, stop %v, jump %v, banner %v, init %v", w.marker, w.stop, w.jump, w.banner, w.init)
	}
}

// TestWatchKept: a shutdown that kept the preloaded kernel counts as a
// load of 0 ms, named as kept.
func TestWatchKept(t *testing.T) {
	w := &watch{}
	for _, l := range []string{
		"KXBENCH reboot-now kxboot",
		"[   24.5] kxboot: reboot: kept /boot/vmlinuz-6.1.0-56-cloud-amd64, preloaded at 10:41:07 with kexec_file_load (files and command line unchanged); command line: root=/dev/vda ro",
	} {
		w.line(l)
	}
	if w.load == nil || w.load[1] != "/boot/vmlinuz-6.1.0-56-cloud-amd64" || w.load[2] != "kexec_file_load preloaded at boot, kept" || w.load[3] != "0" {
		t.Errorf("load %q", w.load)
	}
}

func TestChainTimes(t *testing.T) {
	lines := []string{
		"[    2.100000] Run /init as init process",
		"kxboot: chain: booting /boot/vmlinuz-B", // the direct console copy, no timestamp
		"[    2.250000] kxboot: chain: booting /boot/vmlinuz-B",
		"[    3.250000] kxboot: chain: loaded /boot/vmlinuz-B with kexec_file_load; command line: x",
		"[    3.300000] kxboot: chain: jumping into /boot/vmlinuz-B",
		"[    3.320000] kexec_core: Starting new kernel",
		"[    0.000000] Linux version 6.1.0-57-cloud-amd64",
	}
	s, err := chainTimes(lines)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }
	if !near(s.before, 150) || !near(s.load, 1000) || !near(s.after, 70) {
		t.Errorf("chainTimes = %+v; want 150 ms before, 1000 ms load, 70 ms after", s)
	}
	if _, err := chainTimes(lines[:4]); err == nil || !strings.Contains(err.Error(), "kexec_core") {
		t.Errorf("a console without the jump: %v", err)
	}
}

func TestParseMeasurement(t *testing.T) {
	m, err := parseMeasurement("370.81 35940 16.0 332.1 0")
	if err != nil || m.wallMS != 370.81 || m.rssKB != 35940 || m.userMS != 16 || m.sysMS != 332.1 {
		t.Errorf("parseMeasurement = %+v, %v", m, err)
	}
	for _, bad := range []string{"", "1 2 3 4", "1 2 3 4 1", "a 2 3 4 0"} {
		if _, err := parseMeasurement(bad); err == nil {
			t.Errorf("parseMeasurement(%q) accepted it", bad)
		}
	}
}
