package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kxboot/kxboot/e2e/internal/cpio"
	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// badRelease is the kernel package that never confirms: kernel B's image
// with an initramfs whose /init cannot run, so the kernel panics ("No
// working init found") and panic= resets the machine.
const badRelease = "6.1.0-99-kxbad"

// TestFleetAnsible: Ansible (the host's ansible-core) drives two systemd
// guests over SSH through the role in contrib/ansible, one host at a time
// (serial 1):
//
//  1. install kxboot and its fast reboot, and roll out kernel B (the
//     newest installed): both hosts reboot through kexec into B and
//     kxboot verify --require-confirmed passes;
//  2. the same playbook again changes nothing and reboots nothing;
//  3. a rollout of a kernel package that never confirms: the first host
//     boots it, panics, the firmware brings the provider's kernel back,
//     verify says "fell back" (exit 3), the host fails and the rollout
//     stops: the second host is untouched.
//
// METRICS_DIR=/run makes the confirmation write /run/kxboot.prom, which
// the test reads over SSH and parses with Prometheus' parser.
//
// It is also the systemd guest of the fast reboot (TestFastReboot has
// sysvinit and OpenRC): the kexec reboots leave the file systems clean;
// after the bad kernel, the history records its failed try and the next
// reboot goes to the last known-good kernel (B), not the newest; then
// host2 boots A once (kxboot reboot --once), and the reboot after that
// goes back to B; kxboot uninstall removes the fast reboot.
func TestFleetAnsible(t *testing.T) {
	for _, tool := range []string{"ansible-playbook", "ssh", "ssh-keygen", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run scripts/install-test-deps (make test does)", tool)
		}
	}
	if runtime.GOARCH != "amd64" {
		t.Fatalf("the fleet case runs amd64 guests on an amd64 host; this is %s", runtime.GOARCH)
	}
	a, b := kernels(t)
	img := image(t, harness.Systemd)
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	bad := badKernelDeb(t, dir, b)

	// Both guests idle at every boot, for Ansible; the runner still
	// reports each boot. The bad kernel never reaches the runner.
	files := harness.FleetFiles(pub)
	for n := 1; n <= 4; n++ {
		files = append(files, harness.BootScript(n, clean+"kx_idle"))
	}
	type host struct {
		name string
		port int
		dg   *diskGuest
	}
	// One slot for both: with serial 1 one guest works while the other
	// waits for Ansible.
	sl := claim(t)
	var hosts []*host
	for _, name := range []string{"host1", "host2"} {
		h := &host{name: name, port: freePort(t)}
		h.dg = startDiskIn(t, sl, img, func(o *harness.Options) {
			o.SSHPort = h.port
			o.MaxKernels = 5
			o.Timeout = 20 * time.Minute
		}, files...)
		hosts = append(hosts, h)
	}
	for _, h := range hosts {
		h.dg.at(1, a.Release)
	}
	inv := filepath.Join(dir, "inventory.ini")
	var ini strings.Builder
	ini.WriteString("[kxboot]\n")
	for _, h := range hosts {
		fmt.Fprintf(&ini, "%s ansible_host=127.0.0.1 ansible_port=%d\n", h.name, h.port)
	}
	fmt.Fprintf(&ini, "\n[kxboot:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\nansible_python_interpreter=/usr/bin/python3\nansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10'\n", key)
	if err := os.WriteFile(inv, []byte(ini.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ssh := func(h *host, cmd string) (string, error) {
		out, err := exec.Command("ssh", "-i", key, "-p", fmt.Sprint(h.port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "root@127.0.0.1", cmd).CombinedOutput()
		return string(out), err
	}
	sshUp := func(h *host) {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			out, err := ssh(h, "true")
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				h.dg.fatalf("%s: no SSH on 127.0.0.1:%d after 3 minutes: %v %s", h.name, h.port, err, out)
			}
			time.Sleep(2 * time.Second)
		}
	}
	// has runs cmd on h and checks its output holds each of want.
	has := func(h *host, cmd string, want ...string) string {
		t.Helper()
		out, err := ssh(h, cmd)
		if err != nil {
			h.dg.errorf("%s: %s: %v\n%s", h.name, cmd, err, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				h.dg.errorf("%s: %s said:\n%s\nwant %q in it", h.name, cmd, out, w)
			}
		}
		return out
	}
	for _, h := range hosts {
		sshUp(h)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	playbook := func(what string, vars string) (string, error) {
		t.Helper()
		varsFile := filepath.Join(dir, what+".json")
		if err := os.WriteFile(varsFile, []byte(vars), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ansible-playbook", "-i", inv, "-e", "@"+varsFile, filepath.Join(root, "contrib/ansible/rollout.yml"))
		cmd.Env = append(os.Environ(), "ANSIBLE_ROLES_PATH="+filepath.Join(root, "contrib/ansible/roles"), "ANSIBLE_NOCOLOR=1",
			"ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_RETRY_FILES_ENABLED=False", "ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "ansible-tmp"),
			"ANSIBLE_SSH_CONTROL_PATH_DIR="+filepath.Join(dir, "cp"),
			// Pipelining sends each module through the open SSH
			// connection instead of copying it to a temp file first:
			// fewer round trips to a guest under TCG.
			"ANSIBLE_PIPELINING=True")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		t.Logf("playbook %s: %v in %v", what, err, time.Since(start).Round(time.Second))
		if t.Failed() || err != nil {
			t.Logf("ansible-playbook %s:\n%s", what, indent(string(out)))
		}
		return string(out), err
	}
	// PANIC=1: the kernel that never confirms resets the guest 1 s after
	// its panic, not 10.
	common := fmt.Sprintf(`"kxboot_binary_src": %q, "kxboot_jobs": ["reboot"], "kxboot_config": {"METRICS_DIR": "/run", "PANIC": 1}, "kxboot_rollout": true, "kxboot_verify_wait": 300`, kxboot(t))

	// 1: install, and roll out kernel B, which the image has installed
	// already (as if unattended-upgrades had): the role reboots because
	// kxboot reboot-required says so. Installing a package is the bad
	// rollout's (a .deb from the controller); the guests have no mirror.
	good := fmt.Sprintf(`{%s, "kxboot_expect_release": %q}`, common, b.Release)
	out, err := playbook("rollout-b", good)
	if err != nil {
		t.Fatalf("the rollout of %s failed: %v", b.Release, err)
	}
	for _, h := range hosts {
		s := h.dg.at(2, b.Release)
		if got, _ := s.Get("loader"); got != "d0" {
			h.dg.errorf("%s: boot 2 came by loader %q; want d0, kexec", h.name, got)
		}
		h.dg.resetsWere(2, 0)
		h.dg.wasClean(2)
		// The role's install reboot preloaded B (REBOOT_PRELOAD=auto: its
		// 27 MB are less than 1/32 of the guest's RAM); the shutdown kept it.
		if con := h.dg.g.Console(); !strings.Contains(con, "kxboot: reboot: kept /boot/vmlinuz-"+b.Release+", preloaded at ") {
			h.dg.errorf("%s: the shutdown did not keep the preloaded kernel:\n%s", h.name, tail(con, 40))
		}
		if !recap(out, h.name, "failed=0") {
			t.Errorf("%s: the recap does not say failed=0", h.name)
		}
		// Ansible's verify task printed kxboot verify's line.
		if !strings.Contains(out, "kxboot verify: ok: "+b.Release+" runs (came by fast-reboot) and was confirmed healthy") {
			t.Errorf("the playbook's output lacks verify's confirmation")
		}
		prom, err := ssh(h, "cat /run/kxboot.prom")
		if err != nil {
			h.dg.errorf("%s: /run/kxboot.prom: %v %s", h.name, err, prom)
			continue
		}
		checkMetrics(t, h.name, prom, map[string]float64{"kxboot_confirmed": 1, "kxboot_fallback_active": 0, "kxboot_reboot_required": 0, "kxboot_tries_unconfirmed": 0},
			`kxboot_boot_info{via="fast-reboot",release="`+b.Release+`",entry="configured"}`)
	}

	// 2: the same again: nothing changes, nothing reboots. Both hosts at
	// once (kxboot_serial 2): the rollout's order does not matter here.
	kernelsBefore := []int{len(hosts[0].dg.g.Kernels()), len(hosts[1].dg.g.Kernels())}
	out, err = playbook("again", strings.Replace(good, "{", `{"kxboot_serial": 2, `, 1))
	if err != nil {
		t.Fatalf("the second run failed: %v", err)
	}
	for i, h := range hosts {
		if !recap(out, h.name, "changed=0") || !recap(out, h.name, "failed=0") {
			t.Errorf("%s: the second run's recap does not say changed=0 failed=0", h.name)
		}
		if n := len(h.dg.g.Kernels()); n != kernelsBefore[i] {
			t.Errorf("%s: the second run started %d kernels", h.name, n-kernelsBefore[i])
		}
	}

	// 3: a kernel that never confirms: the rollout stops at host1.
	badVars := fmt.Sprintf(`{%s, "kxboot_kernel_deb": %q, "kxboot_expect_release": %q}`, common, bad, badRelease)
	out, err = playbook("rollout-bad", badVars)
	if err == nil {
		t.Fatalf("the rollout of a kernel that never confirms succeeded")
	}
	h1, h2 := hosts[0], hosts[1]
	if _, err := h1.dg.g.WaitFor("No working init found", time.Minute); err != nil {
		h1.dg.errorf("host1 did not boot the bad kernel into its panic: %v", err)
	}
	h1.dg.at(3, a.Release)
	h1.dg.resetsWere(3, 1)
	// B was preloaded at boot 2's mark-good; the new package changed the
	// choice, so the shutdown loaded the bad kernel instead of keeping B.
	if con := h1.dg.g.Console(); !strings.Contains(con, "kxboot: reboot: loaded /boot/vmlinuz-"+badRelease+" with ") {
		h1.dg.errorf("host1: the shutdown did not load the new kernel over the preloaded one:\n%s", tail(con, 40))
	}
	if !regexp.MustCompile(`fell back: ` + regexp.QuoteMeta(a.Release) + ` runs, not ` + badRelease + `: the hop into /boot/vmlinuz-` + badRelease + ` \(try 1\)`).MatchString(out) {
		t.Errorf("the playbook's output lacks verify's fell-back line for host1")
	}
	if !strings.Contains(out, "exited 3: kxboot fell back") {
		t.Errorf("the failure does not name verify's exit 3")
	}
	if !recap(out, "host1", "failed=1") {
		t.Errorf("host1: the recap does not say failed=1")
	}
	if strings.Contains(out, "[host2]") {
		t.Errorf("the rollout went on to host2 after host1 failed")
	}
	if n := len(h2.dg.g.Kernels()); n != kernelsBefore[1] {
		t.Errorf("host2 started %d kernels in the bad rollout", n-kernelsBefore[1])
	}
	if got, err := ssh(h2, "ls /boot/vmlinuz-"+badRelease+" 2>&1; uname -r"); err != nil || !strings.Contains(got, "No such file") || !strings.Contains(got, b.Release) {
		t.Errorf("host2 is not untouched: %q %v", got, err)
	}
	prom, err := ssh(h1, "cat /run/kxboot.prom")
	if err != nil {
		t.Errorf("host1: /run/kxboot.prom: %v %s", err, prom)
	} else {
		checkMetrics(t, "host1", prom, map[string]float64{"kxboot_confirmed": 0, "kxboot_fallback_active": 1},
			`kxboot_boot_info{via="firmware",release="`+a.Release+`",entry="provider"}`)
	}

	// The fast reboot's safety net on host1: mark-good (at the end of
	// this firmware boot) recorded the bad kernel's try as failed, and
	// the next reboot goes to the last known-good kernel, B, not to the
	// newest installed.
	kB, kBad := "/boot/vmlinuz-"+b.Release, "/boot/vmlinuz-"+badRelease
	var events []string
	hist := has(h1, "kxboot history --json")
	lines := strings.Split(strings.TrimSpace(hist), "\n")
	for _, l := range lines {
		events = append(events, jsonField(l, "event")+":"+jsonField(l, "entry")+":"+jsonField(l, "kernel"))
	}
	wantEvents := "hop:configured:" + kB + " confirmed::" + kB + " hop:configured:" + kBad + " failed::" + kBad
	if got := strings.Join(events, " "); !strings.HasSuffix(got, wantEvents) {
		h1.dg.errorf("host1: history %q; want it to end with %q", got, wantEvents)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "the kernel never confirmed") || !strings.Contains(last, "the firmware brought back "+a.Release) {
		h1.dg.errorf("host1: the failure's reason: %s", last)
	}
	has(h1, "kxboot status", "entry:      the provider's kernel: ")
	has(h1, "kxboot reboot --dry-run", "the next reboot goes through kexec, 1 unconfirmed hop into "+kBad+" (last: the kernel never confirmed",
		"; booting the last known-good kernel "+kB+" ("+b.Release+")")

	// A one-shot kernel on host2 (kxboot reboot --once): A through kexec
	// once, and the reboot after it goes back to B.
	kA := "/boot/vmlinuz-" + a.Release
	has(h2, "kxboot reboot --once --kernel "+kA+" --dry-run", "would boot "+kA+" once through kexec; the reboot after goes back to the usual kernel")
	has(h2, "systemd-run --quiet --no-block sh -c 'sleep 1; kxboot reboot --once --kernel "+kA+"'")
	s3 := h2.dg.at(3, a.Release)
	if got, _ := s3.Get("loader"); got != "d0" {
		h2.dg.errorf("host2: boot 3 came by loader %q; want d0, kexec", got)
	}
	h2.dg.resetsWere(3, 0)
	h2.dg.wasClean(3)
	sshUp(h2)
	if con := h2.dg.g.Console(); !strings.Contains(con, "kxboot: reboot: loaded "+kA+" with ") {
		h2.dg.errorf("host2: the shutdown did not load the one-shot kernel over the preloaded one:\n%s", tail(con, 40))
	}
	// Confirmed, A preloads the kernel of the reboot after: B.
	has(h2, "kxboot mark-good; kxboot status", "entry:      the one-shot kernel: booting "+kA+" ("+a.Release+") once, asked for by kxboot reboot --once", "came by:    fast-reboot",
		"loaded:     yes: "+kB+", preloaded for the next reboot (REBOOT_PRELOAD)")
	has(h2, "kxboot reboot --dry-run", "the next reboot goes through kexec, booting "+kB, "(preloaded at ")

	// Uninstalled, the fast reboot is gone.
	for _, h := range hosts {
		has(h, "kxboot uninstall >/dev/null && kxboot reboot --dry-run 2>&1; true", "the fast reboot is not installed")
	}
	for _, h := range []struct {
		h    *host
		want []string
	}{{h1, []string{a.Release, b.Release, b.Release, a.Release}}, {h2, []string{a.Release, b.Release, a.Release}}} {
		if ks := h.h.dg.g.Kernels(); strings.Join(ks, " ") != strings.Join(h.want, " ") {
			h.h.dg.errorf("%s: kernels started %v; want %v (the bad package boots B's image)", h.h.name, ks, h.want)
		}
	}
}

// recap says whether Ansible's PLAY RECAP line for host holds field.
func recap(out, host, field string) bool {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 2 && f[0] == host && f[1] == ":" {
			return strings.Contains(lines[i], " "+field+" ")
		}
	}
	return false
}

// checkMetrics parses a kxboot.prom with Prometheus' parser and checks
// gauges and one sample line.
func checkMetrics(t *testing.T, who, prom string, want map[string]float64, line string) {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(prom))
	if err != nil {
		t.Errorf("%s: kxboot.prom does not parse: %v\n%s", who, err, prom)
		return
	}
	for name, v := range want {
		f := fams[name]
		if f == nil || len(f.Metric) != 1 || f.Metric[0].GetGauge().GetValue() != v {
			t.Errorf("%s: %s is %v; want %v\n%s", who, name, f, v, prom)
		}
	}
	if !strings.Contains(prom, line+" 1\n") {
		t.Errorf("%s: kxboot.prom lacks %s 1:\n%s", who, line, prom)
	}
}

// badKernelDeb builds a kernel package that never confirms: kernel B's
// image as /boot/vmlinuz-<badRelease>, with an initramfs whose /init is
// not a program, so the kernel finds no working init and panics.
func badKernelDeb(t *testing.T, dir string, b harness.Kernel) string {
	t.Helper()
	var initrd bytes.Buffer
	w := cpio.NewWriter(&initrd)
	w.File("init", 0o755, []byte("this is not a program\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(b.Image)
	if err != nil {
		t.Fatal(err)
	}
	return fakeDeb(t, dir, "kxtest-bad-kernel", "a kernel that never confirms (kxboot's fleet case)", map[string]debFile{
		"boot/vmlinuz-" + badRelease:    {img, 0o644},
		"boot/initrd.img-" + badRelease: {initrd.Bytes(), 0o644},
	})
}

// freePort is a TCP port of 127.0.0.1 free now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
