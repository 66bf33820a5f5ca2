package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kxboot/kxboot/internal/atomicfile"
	"github.com/kxboot/kxboot/internal/bootstate"
	"github.com/kxboot/kxboot/internal/status"
	"github.com/kxboot/kxboot/internal/tries"
)

const (
	thisBoot = "2b1f6c8e-0000-4000-8000-000000000002"
	lastBoot = "2b1f6c8e-0000-4000-8000-000000000001"
)

// hopped makes the machine the result of a fast reboot that loaded the
// newest kernel at the last boot's shutdown: the marker on the command
// line, the newest release running, the try pending.
func (m *machine) hopped() tries.Record {
	m.t.Helper()
	hop := time.Now().Add(-time.Minute).UTC()
	m.write("/proc/cmdline", []byte(procCmdline+" kxboot.chained=1\n"))
	m.write("/proc/sys/kernel/osrelease", []byte(newest+"\n"))
	// What the last boot's shutdown loaded is what a reboot now would load.
	b := bootstate.Read(m.fs, nil).NextReboot.Choice.Hop.Boot
	if b.Kernel != "/boot/vmlinuz-"+newest || b.Release != newest || b.ID == "" {
		m.t.Fatalf("the next reboot's kernel: %+v", b)
	}
	rec := tries.Hop(tries.Record{}, b, tries.Configured, "the newest installed kernel", hop, lastBoot)
	m.setRecord(rec)
	st := tries.Store{FS: m.fs}
	if err := st.Append(tries.Entry{Time: hop, Boot: lastBoot, Running: running, Kernel: b.Kernel, Event: "fast-reboot", Try: 1, Max: 1}); err != nil {
		m.t.Fatal(err)
	}
	return rec
}

func (m *machine) setRecord(r tries.Record) {
	m.t.Helper()
	if err := (tries.Store{FS: m.fs}).Write(r); err != nil {
		m.t.Fatal(err)
	}
}

func newFleetMachine(t *testing.T) *machine {
	m := newMachine(t)
	m.write("/proc/sys/kernel/random/boot_id", []byte(thisBoot+"\n"))
	return m
}

// TestVerifyExitCodes drives kxboot verify through each of its answers.
func TestVerifyExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(m *machine)
		args  []string
		code  int
		says  string
	}{
		{"the provider's kernel, as expected", nil, []string{"--expect-release", running}, 0, "ok: " + running + " runs (came by firmware)"},
		{"another kernel, no hop of kxboot's", nil, []string{"--expect-release", newest}, 1, "wrong kernel: " + running + " runs (came by firmware), not " + newest},
		{"no hop, but confirmation required", nil, []string{"--expect-release", running, "--require-confirmed"}, 2, "nothing confirms it"},
		{"the hop runs, waiting for mark-good", func(m *machine) { m.hopped() }, []string{"--expect-release", newest, "--require-confirmed"}, 2, "not confirmed yet: " + newest + " runs, try 1 of /boot/vmlinuz-" + newest},
		{"the hop runs and confirmed", func(m *machine) {
			m.setRecord(tries.Confirm(m.hopped(), time.Now()))
		}, []string{"--expect-release", newest, "--require-confirmed"}, 0, "and was confirmed healthy at"},
		{"the hop runs, by kernel file", func(m *machine) {
			m.setRecord(tries.Confirm(m.hopped(), time.Now()))
		}, []string{"--expect-kernel", "/boot/vmlinuz-" + newest, "--require-confirmed"}, 0, "ok: "},
		{"the hop runs another file than asked", func(m *machine) { m.hopped() }, []string{"--expect-kernel", "/boot/vmlinuz-" + running}, 1, "wrong kernel"},
		{"the hop runs the file a link names", func(m *machine) {
			m.setRecord(tries.Confirm(m.hopped(), time.Now()))
		}, []string{"--expect-kernel", "/vmlinuz", "--require-confirmed"}, 0, "ok: "},
		{"the hop did not come back", func(m *machine) {
			m.hopped()
			m.write("/proc/cmdline", []byte(procCmdline+"\n"))
			m.write("/proc/sys/kernel/osrelease", []byte(running+"\n"))
		}, []string{"--expect-release", newest, "--require-confirmed"}, 3, "fell back: " + running + " runs, not " + newest + ": the hop into /boot/vmlinuz-" + newest + " (try 1) did not come back"},
		{"the hop failed and the firmware brought the provider back", func(m *machine) {
			r, _ := tries.Fail(m.hopped(), time.Now(), "HEALTH_CMD failed")
			m.setRecord(r)
			m.write("/proc/cmdline", []byte(procCmdline+"\n"))
			m.write("/proc/sys/kernel/osrelease", []byte(running+"\n"))
		}, []string{"--expect-release", newest}, 3, "failed: HEALTH_CMD failed"},
		{"the known-good kernel runs", func(m *machine) {
			r := m.hopped()
			r.Entry, r.Why = tries.KnownGood, "the configured kernel used up its tries"
			r.Boot.Release, r.Kernel = running, "/boot/vmlinuz-"+running
			m.setRecord(r)
			m.write("/proc/sys/kernel/osrelease", []byte(running+"\n"))
		}, []string{"--expect-release", newest}, 3, "the last known-good kernel runs: the configured kernel used up its tries"},
		{"the running release is unknown", func(m *machine) { os.Remove(m.fs.Path("/proc/sys/kernel/osrelease")) }, []string{"--expect-release", newest}, 4, "cannot tell which kernel runs"},
		{"a kernel file whose release cannot be read", nil, []string{"--expect-kernel", "/boot/nonexistent"}, 4, "cannot tell whether /boot/nonexistent runs"},
		{"the try record is damaged", func(m *machine) {
			m.hopped()
			m.write(tries.RecordPath, []byte("{not json"))
		}, []string{"--expect-release", newest, "--require-confirmed"}, 4, "cannot tell whether " + newest + " is confirmed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newFleetMachine(t)
			if tc.setup != nil {
				tc.setup(m)
			}
			code := m.run(append([]string{"verify"}, tc.args...)...)
			out := m.out.String()
			if code != tc.code || !strings.Contains(out, tc.says) || strings.Count(out, "\n") != 1 {
				t.Errorf("verify %v: exit %d, want %d; stdout %q, want one line with %q; stderr %q", tc.args, code, tc.code, out, tc.says, m.err)
			}
			// --json says the same.
			code = m.run(append([]string{"verify", "--json"}, tc.args...)...)
			var v status.Verdict
			if err := json.Unmarshal(m.out.Bytes(), &v); err != nil || code != tc.code || v.Code != tc.code || v.Name != status.VerifyNames[tc.code] || !strings.Contains(v.Line, tc.says) {
				t.Errorf("verify --json %v: exit %d, %+v (%v)", tc.args, code, v, err)
			}
		})
	}
}

func TestVerifyUsage(t *testing.T) {
	m := newFleetMachine(t)
	for _, args := range [][]string{{}, {"--expect-release", "a", "--expect-kernel", "/b"}, {"--expect-release", "a", "--wait", "-1"}} {
		if code := m.run(append([]string{"verify"}, args...)...); code != 2 || !strings.HasPrefix(m.err.String(), "kxboot: ") {
			t.Errorf("verify %v: exit %d, stderr %q; want 2 and kxboot's sentence", args, code, m.err)
		}
	}
}

// TestVerifyWaits: --wait polls until the confirmation comes.
func TestVerifyWaits(t *testing.T) {
	m := newFleetMachine(t)
	rec := m.hopped()
	defer func(p time.Duration) { pollEvery = p }(pollEvery)
	pollEvery = 20 * time.Millisecond
	go func() {
		time.Sleep(100 * time.Millisecond)
		data := tries.Encode(tries.Confirm(rec, time.Now()))
		atomicfile.Write(m.fs.Path(tries.RecordPath), data, 0o600)
	}()
	if code := m.run("verify", "--expect-release", newest, "--require-confirmed", "--wait", "30"); code != 0 {
		t.Fatalf("verify --wait: exit %d: %s%s", code, m.out, m.err)
	}
	if code := m.run("verify", "--expect-release", running, "--require-confirmed", "--wait", "0"); code != 1 {
		t.Errorf("verify of the wrong release with --wait: exit %d, want 1 at once", code)
	}
}

func TestRebootRequired(t *testing.T) {
	m := newFleetMachine(t)
	// The newest installed kernel does not run.
	if code := m.run("reboot-required"); code != 0 || !strings.Contains(m.out.String(), "the next reboot boots "+newest) {
		t.Errorf("a newer kernel installed: exit %d, %q", code, m.out)
	}
	// After the fast reboot into it, nothing is due.
	m.setRecord(tries.Confirm(m.hopped(), time.Now()))
	if code := m.run("reboot-required"); code != 1 || !strings.Contains(m.out.String(), "which runs now") {
		t.Errorf("the newest runs: exit %d, %q", code, m.out)
	}
	// KERNEL= names another kernel.
	m.write("/etc/default/kxboot", []byte("KERNEL=/boot/vmlinuz-"+running+"\n"))
	code := m.run("reboot-required", "--json")
	var out struct {
		Required bool           `json:"reboot_required"`
		Next     *status.Kernel `json:"next_kernel"`
	}
	if err := json.Unmarshal(m.out.Bytes(), &out); err != nil || code != 0 || !out.Required || out.Next == nil || out.Next.Release != running {
		t.Errorf("KERNEL= changed: exit %d, %s (%v)", code, m.out, err)
	}
	// A broken config: cannot tell.
	m.write("/etc/default/kxboot", []byte("MAX_TRIES=lots\n"))
	if code := m.run("reboot-required"); code != 4 || !strings.HasPrefix(m.out.String(), "cannot tell") {
		t.Errorf("a broken config: exit %d, %q", code, m.out)
	}
}

// TestMetrics parses the metrics with Prometheus' own parser and checks
// the replacement is atomic (no temporary file left, the old one replaced
// whole).
func TestMetrics(t *testing.T) {
	m := newFleetMachine(t)
	rec := m.hopped()
	dir := "/var/lib/prometheus/node-exporter"
	os.MkdirAll(m.fs.Path(dir), 0o755)
	m.write(dir+"/kxboot.prom", []byte("stale\n"))
	m.mustRun("metrics", "--textfile-dir", dir)
	want := map[string]float64{"kxboot_confirmed": 0, "kxboot_fallback_active": 0, "kxboot_tries_unconfirmed": 1, "kxboot_reboot_required": 0, "kxboot_boot_info": 1}
	fams := parseMetrics(t, m.fs.Path(dir+"/kxboot.prom"))
	for name, v := range want {
		f, ok := fams[name]
		if !ok || len(f.Metric) != 1 || f.Metric[0].GetGauge().GetValue() != v {
			t.Errorf("%s: %v, want one sample of %v", name, f, v)
		}
	}
	labels := map[string]string{}
	for _, l := range fams["kxboot_boot_info"].Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["via"] != "fast-reboot" || labels["release"] != newest || labels["entry"] != tries.Configured {
		t.Errorf("kxboot_boot_info labels: %v", labels)
	}
	if ts := fams["kxboot_last_hop_timestamp_seconds"].Metric[0].GetGauge().GetValue(); ts != float64(rec.HopTime.UnixMilli())/1000 {
		t.Errorf("last hop timestamp %v, want %v", ts, rec.HopTime)
	}
	if left := atomicfile.Leftovers(m.fs.Path(dir + "/kxboot.prom")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// METRICS_DIR: mark-good refreshes them with its confirmation.
	m.write("/etc/default/kxboot", []byte("METRICS_DIR="+dir+"\n"))
	m.mustRun("mark-good")
	fams = parseMetrics(t, m.fs.Path(dir+"/kxboot.prom"))
	if v := fams["kxboot_confirmed"].Metric[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("after mark-good kxboot_confirmed is %v, want 1", v)
	}

	// A fallback shows.
	r, _ := tries.Fail(rec, time.Now(), "HEALTH_CMD failed")
	m.setRecord(r)
	m.write("/proc/cmdline", []byte(procCmdline+"\n"))
	m.write("/proc/sys/kernel/osrelease", []byte(running+"\n"))
	m.mustRun("metrics", "--textfile-dir", dir)
	fams = parseMetrics(t, m.fs.Path(dir+"/kxboot.prom"))
	if v := fams["kxboot_fallback_active"].Metric[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("after a failed hop kxboot_fallback_active is %v, want 1", v)
	}

	// A missing directory is one sentence with the fix.
	if code := m.run("metrics", "--textfile-dir", "/nonexistent"); code != 1 || !strings.Contains(m.err.String(), "the directory /nonexistent does not exist") {
		t.Errorf("missing directory: exit %d, %q", code, m.err)
	}
}

func parseMetrics(t *testing.T, p string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s does not parse as the Prometheus text format: %v", filepath.Base(p), err)
	}
	for name := range fams {
		if !strings.HasPrefix(name, "kxboot_") {
			t.Errorf("metric %s lacks the kxboot_ prefix", name)
		}
	}
	return fams
}

// newSystemdMachine is a fleet machine that systemd runs, where kxboot
// install runs no real tool.
func newSystemdMachine(t *testing.T) *machine {
	m := newFleetMachine(t)
	m.env.Runner = &runs{}
	m.write("/usr/local/sbin/kxboot", []byte("#!/bin/sh\n"))
	m.write("/lib/systemd/systemd", []byte{})
	os.Chmod(m.fs.Path("/usr/local/sbin/kxboot"), 0o755)
	os.MkdirAll(m.fs.Path("/run/systemd/system"), 0o755)
	os.MkdirAll(m.fs.Path("/proc/1"), 0o755)
	os.Symlink("/lib/systemd/systemd", m.fs.Path("/proc/1/exe"))
	return m
}

// TestInstallJSON: install --json says whether it changed anything, so
// that configuration management reports a second run as unchanged.
func TestInstallJSON(t *testing.T) {
	m := newSystemdMachine(t)
	for i, want := range []bool{true, false} {
		out := m.mustRun("install", "reboot", "--json", "--binary", "/usr/local/sbin/kxboot")
		var got struct {
			Job, Mode string
			Changed   bool
			Messages  []string
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || strings.Count(out, "\n") != 1 {
			t.Fatalf("run %d: not one JSON object: %q (%v)", i+1, out, err)
		}
		if got.Job != "reboot" || got.Mode != "systemd" || got.Changed != want || len(got.Messages) == 0 {
			t.Errorf("run %d: %+v, want changed %v", i+1, got, want)
		}
	}
}

// TestPreloadCommands: install reboot and mark-good preload the next
// reboot's kernel, status shows it, kxboot unload drops the record, and
// uninstall reboot unloads it.
func TestPreloadCommands(t *testing.T) {
	m := newSystemdMachine(t)
	kN := "/boot/vmlinuz-" + newest
	loaded := func() bool { l, _ := m.env.Engine.Loaded(); return l }

	if out := m.mustRun("install", "reboot", "--binary", "/usr/local/sbin/kxboot"); !strings.Contains(out, "kxboot: reboot: preloaded "+kN+" with kexec_file_load in ") || !loaded() {
		t.Fatalf("install reboot did not preload:\n%s", out)
	}
	if out := m.mustRun("status"); !strings.Contains(out, "loaded:     yes: "+kN+", preloaded for the next reboot (REBOOT_PRELOAD)") || !strings.Contains(out, "(preloaded at ") {
		t.Errorf("status:\n%s", out)
	}
	m.mustRun("unload")
	if out := m.mustRun("status"); strings.Contains(out, "preloaded") || loaded() {
		t.Errorf("after unload, status:\n%s", out)
	}
	if out := m.mustRun("mark-good"); !strings.Contains(out, "kxboot: reboot: preloaded "+kN) || !loaded() {
		t.Errorf("mark-good did not preload:\n%s", out)
	}
	if out := m.mustRun("uninstall", "reboot"); !strings.Contains(out, "Unloaded the kernel the fast reboot had preloaded.") || loaded() {
		t.Errorf("uninstall reboot left the preloaded kernel:\n%s", out)
	}
	if out := m.mustRun("mark-good"); strings.Contains(out, "preload") || loaded() {
		t.Errorf("mark-good without the fast reboot:\n%s", out)
	}
}
