// Command bench measures fast reboot in Debian guests under QEMU: the time
// from the reboot command to the next boot's first userspace line, for a
// firmware reboot, for kxboot's reboot through kexec, and for the
// kexec-tools recipe that people run today (the seed's). It prints a
// Markdown table; docs/benchmarks.md explains the method and holds a run.
//
//	go run ./e2e/bench [-runs 5] [-out docs/benchmarks.md] [-methods firmware,kxboot,seed] [-console] [-keep] [-seed-as-written]
//
// -methods also takes firmware-uefi (the firmware reboot through OVMF) and
// systemctl-kexec (systemd's kexec reboot with kernel B loaded beforehand).
//
// Run it as root from the kxboot module (make bench): it uses the systemd
// disk image and the kernels of the e2e tests, building or downloading
// them into /var/cache/kxboot-e2e the first time, and the kexec-tools
// packages of the host's Debian 12 sources. One guest runs at a time; 5
// runs of each method take about 20 minutes on 2 cores.
//
//	go run ./e2e/bench -load [-rounds 11] [-before OLD-KXBOOT] [-out docs/benchmarks.md]
//
// measures the load instead (load.go): kxboot load against kexec-tools in
// one guest, and the chain step of the PID 1 wrapper (make bench-load).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

const (
	// marker is the line the guest prints right before its reboot
	// command; the method's name follows it.
	marker = "KXBENCH reboot-now "
	// initLine is the kernel's message as it starts the initramfs's /init:
	// the first userspace of the next boot, and the end of a measurement.
	initLine = "Run /init as init process"
	// sessionTimeout bounds one guest: a cold boot, the measured reboot,
	// the boot it lands in and a poweroff, under TCG on a busy machine.
	sessionTimeout = 20 * time.Minute
	// bootTimeout bounds the wait for one boot's runner to finish.
	bootTimeout = 10 * time.Minute
)

// jumpRE matches the old kernel's last words: its jump into the loaded
// kernel, or the reset that hands over to the firmware.
var jumpRE = regexp.MustCompile(`kexec_core: Starting new kernel|reboot: Restarting system`)

// loadRE matches the console line of kxboot's load at shutdown.
var loadRE = regexp.MustCompile(`kxboot: reboot: loaded (\S+) with (\S+) in ([0-9]+(?:\.[0-9]+)?) ms`)

// keptRE matches the console line of a shutdown that kept the kernel
// kxboot preloaded when the boot confirmed (REBOOT_PRELOAD): no load.
var keptRE = regexp.MustCompile(`kxboot: reboot: kept (\S+), preloaded at \S+ with (\S+)`)

func main() {
	runs := flag.Int("runs", 5, "measured reboots per method")
	out := flag.String("out", "", "also write the results into this Markdown file, between its bench markers (created if absent)")
	methods := flag.String("methods", "firmware,kxboot,seed", "the methods to measure, in round-robin order (also: firmware-uefi, systemctl-kexec)")
	console := flag.Bool("console", false, "print every console line of the guests on stderr")
	keep := flag.Bool("keep", false, "keep the work directory (the disks and every console log) after a run that succeeded")
	asWritten := flag.Bool("seed-as-written", false, "leave out the drop-in that stops the seed's kexec-load.service at shutdown (its reboot then goes through the firmware, and the bench fails saying so)")
	load := flag.Bool("load", false, "measure the load instead of the reboot: kxboot load against kexec-tools in one guest (see load.go)")
	rounds := flag.Int("rounds", 11, "with -load: measured rounds of every case")
	before := flag.String("before", "", "with -load: also measure this kxboot binary (amd64, static), e.g. one built from an earlier commit")
	chainOnly := flag.Bool("chain-only", false, "with -load: measure only the chain step (five boots of an initramfs guest, about a minute), and print each run's kxboot lines")
	flag.Parse()
	if *load {
		if *chainOnly {
			err := runChainOnly()
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: %v\n", err)
				os.Exit(1)
			}
			return
		}
		if err := runLoad(*rounds, *out, *before, *console, *keep); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*runs, *out, *methods, *console, *keep, *asWritten); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }

// method is one way of rebooting, measured on a disk of its own.
type method struct {
	name    string // in -methods, the marker and file names
	label   string // the table's first column
	command string // what the guest runs to reboot
	kexec   bool   // lands on kernel B through kexec; else on A through the firmware
	unit    string // the systemd unit whose stop at shutdown loads the kernel; "" for none
	files   []harness.GuestFile
	setup   string   // the script of a first boot that installs the method; "" for none
	steps   []string // the steps of setup that must succeed
	notes   []string // said under the table
	// boot is the guest's firmware path: SeaBIOS and qemu's loader by
	// default, OVMF (UEFI) for the UEFI firmware baseline.
	boot harness.BootPath
	// pre runs in every measured boot before the marker, untimed.
	pre     string
	disk    string
	samples []sample
}

// sample is one measured reboot.
type sample struct {
	total   time.Duration // the reboot command to the next boot's "Run /init"
	down    time.Duration // the reboot command to the next kernel's banner
	jump    time.Duration // the reboot command to the old kernel's last line; 0 if it printed none
	stop    time.Duration // systemd's "Stopping" to "Stopped" of the method's unit; 0 if not seen
	loadMS  float64       // kxboot's load at shutdown, from its console line
	loadSys string        // the syscall it used
}

func (m *method) setupBoots() int {
	if m.setup == "" {
		return 0
	}
	return 1
}

// rebootBoot is the runner's number of the boot that reboots in run i
// (from 1). Each run is one guest: a cold boot on kernel A that reboots,
// and the boot it lands in, which powers off. The runner numbers boots
// on the disk, so the boot scripts of every run are injected at once.
func (m *method) rebootBoot(i int) int { return m.setupBoots() + 2*i - 1 }

// bench is one run of the program.
type bench struct {
	kx      string // the guests' kxboot, built once
	a, b    harness.Kernel
	img     *harness.DiskImage
	work    string
	runs    int
	console bool
}

func run(runs int, out, names string, console, keep, seedAsWritten bool) error {
	if runs < 1 {
		return fmt.Errorf("-runs %d: want at least 1", runs)
	}
	if out != "" {
		// Before an hour of guests: a file without the markers would be
		// refused only at the end.
		if err := spliceResults(out, ""); err != nil {
			return err
		}
	}
	start := time.Now()
	a, b, img, work, err := systemdGuest("kxbench-")
	if err != nil {
		return err
	}
	bn := &bench{a: a, b: b, img: img, work: work, runs: runs, console: console}
	res := &results{date: start.UTC(), runs: runs, a: a.Release, b: b.Release, image: img.Name, qemu: qemuVersion()}
	if err := bn.all(res, names, seedAsWritten); err != nil {
		// The consoles and disks tell what went wrong.
		return fmt.Errorf("%v (work files kept in %s)", err, work)
	}
	res.took = time.Since(start)
	text := res.markdown()
	fmt.Print(text)
	if out != "" {
		if err := spliceResults(out, text); err != nil {
			return err
		}
		logf("results written into %s", out)
	}
	if keep {
		logf("the disks and console logs are in %s", work)
		return nil
	}
	return os.RemoveAll(work)
}

// systemdGuest gets (building or downloading them the first time) the
// amd64 kernels and the systemd disk image of the e2e tests, and makes a
// work directory named after prefix.
func systemdGuest(prefix string) (a, b harness.Kernel, img *harness.DiskImage, work string, err error) {
	if a, b, err = harness.Kernels(harness.AMD64, logf); err != nil {
		return
	}
	if img, err = harness.Image(harness.Systemd, a, b, logf); err != nil {
		return
	}
	work, err = os.MkdirTemp("", prefix)
	return
}

// all prepares the methods named and measures them round-robin: run 1 of
// each, then run 2 of each, and so on, so that a change in the load of a
// shared machine falls on every method alike.
func (bn *bench) all(res *results, names string, seedAsWritten bool) error {
	var err error

	var ms []*method
	for _, name := range strings.Split(names, ",") {
		var m *method
		switch strings.TrimSpace(name) {
		case "firmware":
			m = firmware()
		case "firmware-uefi":
			m = firmwareUEFI()
		case "systemctl-kexec":
			if m, err = bn.systemctlKexec(); err != nil {
				return err
			}
		case "kxboot":
			if m, err = bn.kxboot(res); err != nil {
				return err
			}
		case "seed":
			if m, err = bn.seed(res, seedAsWritten); err != nil {
				return err
			}
		default:
			return fmt.Errorf("-methods: unknown method %q; want firmware, firmware-uefi, kxboot, seed or systemctl-kexec", name)
		}
		for _, o := range ms {
			if o.name == m.name {
				return fmt.Errorf("-methods names %s twice", m.name)
			}
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		if err := bn.prepare(m); err != nil {
			return err
		}
	}
	for i := 1; i <= bn.runs; i++ {
		for _, m := range ms {
			s, err := bn.measure(m, i)
			if err != nil {
				return err
			}
			m.samples = append(m.samples, s)
			extra := ""
			if s.loadSys != "" {
				extra = fmt.Sprintf("; kxboot loaded in %g ms with %s", s.loadMS, s.loadSys)
			}
			logf("run %d/%d, %s: %s (the next kernel after %s%s)", i, bn.runs, m.name, secs(s.total), secs(s.down), extra)
		}
	}
	res.methods = ms
	return nil
}

// firmware is a plain reboot with nothing installed: the guest resets and
// the harness starts qemu again, which boots kernel A from -kernel.
func firmware() *method {
	return &method{
		name:    "firmware",
		label:   "firmware reboot, nothing installed",
		command: "systemctl reboot",
		notes: []string{"firmware: the reset ends qemu and the harness starts it again with the same " +
			"arguments (Options.Reboot), so its time includes a qemu start, SeaBIOS and the load of " +
			"-kernel: the firmware path of this machine. It has no POST, no option ROMs and no netboot, " +
			"so it is far shorter than a server's, while the kexec paths' SHA-256 work (at the load and " +
			"in purgatory) runs emulated: firmware / kxboot here says nothing about a real server."},
	}
}

// firmwareUEFI is firmware through OVMF, the UEFI firmware of QEMU's PC:
// its own start and the EFI stub's load of -kernel, which SeaBIOS does not
// have; a server's UEFI firmware adds its POST, option ROMs and netboot.
func firmwareUEFI() *method {
	return &method{
		name:    "firmware-uefi",
		label:   "firmware reboot through UEFI (OVMF), nothing installed",
		command: "systemctl reboot",
		boot:    harness.BootUEFI,
		notes: []string{"firmware-uefi: as firmware, with OVMF (Debian's ovmf, " + harness.AMD64.UEFI + ") as the guest's firmware " +
			"instead of SeaBIOS: every boot of this method, the measured one included, goes through OVMF and the kernel's EFI stub."},
	}
}

// systemctlKexec is the lower bound of a kexec reboot on systemd: kernel B
// is loaded before the marker (kxboot load, untimed), and the reboot is
// systemd's own systemctl kexec, which stops the system and jumps.
func (bn *bench) systemctlKexec() (*method, error) {
	kx, err := bn.kxbootBinary()
	if err != nil {
		return nil, err
	}
	kB, iB := "/boot/vmlinuz-"+bn.b.Release, "/boot/initrd.img-"+bn.b.Release
	return &method{
		name:    "systemctl-kexec",
		label:   "`systemctl kexec` with kernel B loaded beforehand",
		command: "systemctl kexec",
		kexec:   true,
		files:   []harness.GuestFile{{Path: "/usr/local/sbin/kxboot", Mode: 0o755, HostPath: kx}},
		pre:     "kxboot load --kernel " + kB + " --initrd " + iB + " >/dev/null || say load.failed $?",
		notes: []string{"systemctl-kexec: kernel B loaded with kxboot load before the marker, so the load is not timed; " +
			"then systemd's own kexec reboot: the least a kexec reboot on systemd can take."},
	}, nil
}

// kxbootBinary builds kxboot for the guests once.
func (bn *bench) kxbootBinary() (string, error) {
	if bn.kx != "" {
		return bn.kx, nil
	}
	bin := filepath.Join(bn.work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	kx, err := harness.BuildKxboot(bin, harness.AMD64)
	bn.kx = kx
	return kx, err
}

// kxboot installs kxboot's reboot once, then reboots with plain reboot.
func (bn *bench) kxboot(res *results) (*method, error) {
	kx, err := bn.kxbootBinary()
	if err != nil {
		return nil, err
	}
	res.kxboot = kxbootVersion()
	return &method{
		name:    "kxboot",
		label:   "kxboot: `kxboot install reboot` once",
		command: "reboot",
		kexec:   true,
		unit:    "kxboot-reboot.service",
		files:   []harness.GuestFile{{Path: "/usr/local/sbin/kxboot", Mode: 0o755, HostPath: kx}},
		setup: `step install kxboot install reboot
step status kxboot status
kx_poweroff`,
		steps: []string{"install", "status"},
		// kxboot-confirm.service's mark-good preloads B when the boot
		// confirms (REBOOT_PRELOAD=auto); a server reboots long after
		// that, so the marker waits for it (at most a minute), as
		// systemctl-kexec's load comes before its marker.
		pre: "i=0; while [ ! -e /run/kxboot/preloaded ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; [ -e /run/kxboot/preloaded ] || say preload.missing 1",
		notes: []string{"kxboot: B preloaded by kxboot-confirm.service's mark-good when the boot confirmed (REBOOT_PRELOAD=auto), " +
			"waited for before the marker (at most 60 s); the shutdown checks it is still the kernel to boot and keeps it."},
	}, nil
}

// The seed's recipe, as its post writes it.
const (
	seedLoadUnit = `# File: /etc/systemd/system/kexec-load.service
[Unit]
Description=Loading new kernel into memory
Documentation=man:kexec(8)
DefaultDependencies=no
Before=reboot.target
RequiresMountsFor=/boot

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStop=/sbin/kexec -d -l /vmlinuz --initrd=/initrd.img --reuse-cmdline

[Install]
WantedBy=default.target
`
	seedOverride = `# File: /etc/systemd/system/systemd-reboot.service.d/override.conf
[Service]
Type=oneshot
ExecStart=
ExecStart=-/bin/systemctl --force kexec
ExecStart=/bin/systemctl --force reboot
`
	seedNormalReboot = `#!/bin/sh
# File: /usr/local/bin/normal-reboot
mkdir -p /run/systemd/transient/systemd-reboot.service.d/
ln -sf /dev/null /run/systemd/transient/systemd-reboot.service.d/override.conf
ln -sf /dev/null /run/systemd/transient/kexec-load.service
systemctl daemon-reload
reboot
`
	seedDebs = "/var/cache/kxbench/debs"
	// seedStop is the bench's one addition to the recipe. With
	// DefaultDependencies=no, kexec-load.service is stopped at shutdown,
	// and its ExecStop loads the kernel, only because RequiresMountsFor=/boot
	// ties it to a boot.mount that umount.target stops: /boot must be a
	// file system of its own. Where / holds /boot, as in this image and on
	// many servers, nothing stops it, nothing is loaded, systemd-shutdown's
	// kexec -e fails and the machine reboots through the firmware. These
	// are the two lines that default dependencies would have given it.
	seedStop = `# kxbench: stop with the shutdown although /boot is not a mount of its own
[Unit]
Conflicts=shutdown.target
Before=shutdown.target
`
	seedStopPath = "/etc/systemd/system/kexec-load.service.d/kxbench-stop.conf"
)

// seed is the recipe of the seed: Debian 12's kexec-tools, whose own
// sysvinit handling is turned off through debconf, the kexec-load.service
// that loads /vmlinuz at shutdown and the override that makes
// systemd-reboot.service try systemctl --force kexec first.
func (bn *bench) seed(res *results, asWritten bool) (*method, error) {
	debs, err := harness.Debs(bn.img, logf, "kexec-tools")
	if err != nil {
		return nil, err
	}
	m := &method{
		name:    "seed",
		command: "reboot",
		kexec:   true,
		unit:    "kexec-load.service",
	}
	var names []string
	for _, d := range debs {
		if d.Package == "kexec-tools" {
			res.kexecTools = d.Version
		}
		names = append(names, d.Package)
		m.files = append(m.files, harness.GuestFile{Path: seedDebs + "/" + d.Package + ".deb", HostPath: d.Path})
	}
	m.label = "seed recipe: kexec-tools, kexec-load.service, systemd-reboot override"
	m.notes = append(m.notes, fmt.Sprintf("seed: kexec-tools %s and what it needs that the image lacks (%s), "+
		"installed with dpkg -i after preseeding kexec-tools/load_kexec to false, so that its own init "+
		"scripts load nothing; the two unit files as the seed writes them. Its kexec -l uses kexec_load, "+
		"kexec-tools' default.", res.kexecTools, strings.Join(names, ", ")))

	unit := seedLoadUnit
	kB, iB := "/boot/vmlinuz-"+bn.b.Release, "/boot/initrd.img-"+bn.b.Release
	lk, err1 := imageLink(bn.img, "/vmlinuz")
	li, err2 := imageLink(bn.img, "/initrd.img")
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	if "/"+strings.TrimPrefix(lk, "/") == kB && "/"+strings.TrimPrefix(li, "/") == iB {
		m.notes = append(m.notes, "seed: the image's /vmlinuz and /initrd.img lead to kernel B's files, so "+
			"kexec-load.service is used exactly as written.")
	} else {
		unit = strings.Replace(unit, "-l /vmlinuz --initrd=/initrd.img", "-l "+kB+" --initrd="+iB, 1)
		m.notes = append(m.notes, fmt.Sprintf("seed: the image's /vmlinuz and /initrd.img do not lead to "+
			"kernel B's files (%q, %q), so kexec-load.service loads %s and %s instead; nothing else changed.", lk, li, kB, iB))
	}
	m.files = append(m.files,
		harness.GuestFile{Path: "/etc/systemd/system/kexec-load.service", Data: []byte(unit)},
		harness.GuestFile{Path: "/etc/systemd/system/systemd-reboot.service.d/override.conf", Data: []byte(seedOverride)},
		harness.GuestFile{Path: "/usr/local/bin/normal-reboot", Mode: 0o755, Data: []byte(seedNormalReboot)},
	)
	if asWritten {
		m.notes = append(m.notes, "seed: as written (-seed-as-written), without a way to stop kexec-load.service at shutdown.")
	} else {
		m.files = append(m.files, harness.GuestFile{Path: seedStopPath, Data: []byte(seedStop)})
		m.notes = append(m.notes, "seed: plus one drop-in, "+seedStopPath+", with Conflicts=shutdown.target and "+
			"Before=shutdown.target: as written, kexec-load.service is stopped at shutdown (and its ExecStop "+
			"loads the kernel) only where /boot is a mount of its own, which RequiresMountsFor=/boot ties it to. "+
			"Here / holds /boot, so without the drop-in nothing is loaded, systemd-shutdown's kexec -e fails "+
			"and the reboot goes through the firmware (-seed-as-written shows it).")
	}
	m.setup = `step preseed sh -c 'echo "kexec-tools kexec-tools/load_kexec boolean false" | debconf-set-selections'
step dpkg env DEBIAN_FRONTEND=noninteractive dpkg -i ` + seedDebs + `/*.deb
step loadkexec grep -x LOAD_KEXEC=false /etc/default/kexec
step enable systemctl enable kexec-load.service
step version /sbin/kexec --version
kx_poweroff`
	m.steps = []string{"preseed", "dpkg", "loadkexec", "enable", "version"}
	return m, nil
}

// imageLink returns the target of the symbolic link p in the image, "" if
// p is absent or not a link.
func imageLink(img *harness.DiskImage, p string) (string, error) {
	cmd := exec.Command("debugfs", "-R", "stat "+p, img.Path)
	cmd.Env = append(os.Environ(), "DEBUGFS_PAGER=__none__", "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("debugfs -R 'stat %s' %s: %w (apt-get install e2fsprogs)", p, img.Path, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if _, t, ok := strings.Cut(l, "Fast link dest: "); ok {
			return strings.Trim(t, `"`), nil
		}
	}
	return "", nil
}

// prepare gives m its own copy of the image with its files and boot
// scripts, and runs its setup boot.
func (bn *bench) prepare(m *method) error {
	dir := filepath.Join(bn.work, m.name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	disk, err := harness.NewDisk(bn.img, dir)
	if err != nil {
		return err
	}
	m.disk = disk
	files := append([]harness.GuestFile(nil), m.files...)
	if m.setup != "" {
		files = append(files, harness.BootScript(1, m.setup))
	}
	for i := 1; i <= bn.runs; i++ {
		n := m.rebootBoot(i)
		files = append(files, harness.BootScript(n, rebootScript(m)), harness.BootScript(n+1, "kx_poweroff"))
	}
	if err := harness.Inject(disk, files...); err != nil {
		return err
	}
	if m.setup == "" {
		return nil
	}

	logf("%s: installing, in a boot of its own", m.name)
	log := filepath.Join(bn.work, m.name+"-setup.console.log")
	g, err := bn.start(m, log, nil, 1)
	if err != nil {
		return err
	}
	defer g.Kill()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s, installing: %s; the console is in %s", m.name, fmt.Sprintf(format, args...), log)
	}
	r, err := g.WaitEnd(1, bootTimeout)
	if err != nil {
		return fail("%v", err)
	}
	for _, name := range m.steps {
		s := r.Step(name)
		if s.RC != 0 {
			return fail("the step %q failed (exit status %d): %s", name, s.RC, harness.Tail(append(s.Out, s.Err...), 5))
		}
	}
	if err := g.Wait(); err != nil {
		return fail("qemu did not end after the poweroff: %v", err)
	}
	for _, name := range m.steps {
		if s := r.Step(name); s.Stdout() != "" {
			logf("%s: %s: %s", m.name, name, strings.ReplaceAll(s.Stdout(), "\n", " | "))
		}
	}
	return nil
}

// rebootScript is the boot script of each measured reboot.
func rebootScript(m *method) string {
	return `# Let the boot finish first: no start job is left when the reboot comes.
step settled systemctl is-system-running --wait
step failed systemctl --failed --plain --no-legend
` + m.pre + `
kx_loud
sync
echo "` + marker + m.name + `"
` + m.command + ` || { say reboot.failed "$?"; kx_poweroff; }
kx_idle`
}

// start boots m's disk on kernel A, as the provider does.
func (bn *bench) start(m *method, log string, w *watch, kernels int) (*harness.Guest, error) {
	o := bn.img.Boot(m.disk)
	o.Boot = m.boot
	o.ConsoleLog = log
	o.MaxKernels = kernels
	o.Timeout = sessionTimeout
	if w == nil {
		w = &watch{}
	}
	w.echo, w.prefix = bn.console, m.name
	if m.unit != "" {
		// systemd shortens status lines to the terminal's width, with an
		// ellipsis in the unit's name.
		w.unit = m.unit[:14]
	}
	o.OnLine = w.line
	return harness.Start(o)
}

// measure runs m's run i: a guest that boots kernel A, prints the marker
// and reboots, and the boot it lands in, which powers off.
func (bn *bench) measure(m *method, i int) (sample, error) {
	n := m.rebootBoot(i)
	log := filepath.Join(bn.work, fmt.Sprintf("%s-run%d.console.log", m.name, i))
	w := &watch{}
	g, err := bn.start(m, log, w, 2)
	if err != nil {
		return sample{}, err
	}
	defer g.Kill()
	fail := func(format string, args ...any) (sample, error) {
		return sample{}, fmt.Errorf("%s, run %d: %s; the console is in %s", m.name, i, fmt.Sprintf(format, args...), log)
	}
	want, how := bn.a.Release, "through the firmware"
	if m.kexec {
		want, how = bn.b.Release, "through kexec"
	}

	r, err := g.WaitEnd(n+1, bootTimeout)
	all := harness.Parse(g.Lines())
	before := all.Stage(strconv.Itoa(n))
	if rc, ok := before.Get("load.failed"); ok {
		return fail("the load before the marker failed in the guest with exit status %s", rc)
	}
	if _, ok := before.Get("preload.missing"); ok {
		return fail("kxboot preloaded nothing within a minute of the boot (see kxboot's mark-good line on the console)")
	}
	if rc, ok := before.Get("reboot.failed"); ok {
		return fail("%q failed in the guest with exit status %s", m.command, rc)
	}
	if err != nil {
		return fail("%v", err)
	}
	if err := g.Wait(); err != nil {
		return fail("qemu did not end after the poweroff: %v", err)
	}
	if s := before.Step("settled"); s.Stdout() != "running" {
		logf("%s, run %d: before the reboot systemd said %q; failed units: %s", m.name, i, s.Stdout(), strings.Join(before.Step("failed").Out, "; "))
	}
	if rel, _ := before.Get("release"); rel != bn.a.Release {
		return fail("boot %d, which reboots, ran on %q; want kernel A %s", n, rel, bn.a.Release)
	}
	if rel, _ := r.Get("release"); rel != want {
		why := ""
		if strings.Contains(g.Console(), "(sd-kexec) failed") {
			why = " (systemd-shutdown's kexec -e failed: no kernel was loaded)"
		}
		return fail("the reboot landed on kernel %q; want %s %s%s", rel, want, how, why)
	}
	if end, _ := r.Get("end"); end != "poweroff" {
		return fail("boot %d, which the reboot landed in, ended with %q; want poweroff", n+1, end)
	}
	resets := 0
	if !m.kexec {
		resets = 1
	}
	if got := g.Resets(); got != resets {
		return fail("the machine went through its firmware %d times; want %d: the reboot did not go %s", got, resets, how)
	}
	if ks := g.Kernels(); len(ks) != 2 || ks[0] != bn.a.Release || ks[1] != want {
		return fail("kernels started: %v; want %s, then %s", ks, bn.a.Release, want)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.markers != 1:
		return fail("the guest printed the marker %d times; want once", w.markers)
	case w.method != m.name:
		return fail("the marker names %q; want %q", w.method, m.name)
	case w.banner.IsZero() || w.release != want:
		return fail("no banner of kernel %s after the marker (got %q)", want, w.release)
	case w.init.IsZero():
		return fail("no %q after the marker", initLine)
	}
	s := sample{total: w.init.Sub(w.marker), down: w.banner.Sub(w.marker)}
	if !w.jump.IsZero() {
		s.jump = w.jump.Sub(w.marker)
	}
	if !w.stop[0].IsZero() && w.stop[1].After(w.stop[0]) {
		s.stop = w.stop[1].Sub(w.stop[0])
	}
	if m.name == "kxboot" {
		if w.load == nil {
			return fail("kxboot printed no %q or %q line at shutdown", "kxboot: reboot: loaded ... in N ms", "kxboot: reboot: kept ...")
		}
		s.loadSys = w.load[2]
		s.loadMS, _ = strconv.ParseFloat(w.load[3], 64)
	}
	return s, nil
}

// watch time-stamps the console lines of one guest on the host as they
// arrive: the marker, then the next kernel's banner, then its "Run /init".
type watch struct {
	echo   bool
	prefix string
	unit   string // the start of the name of the unit whose stop is timed

	mu      sync.Mutex
	markers int
	method  string // named by the first marker
	marker  time.Time
	jump    time.Time    // the old kernel's jump or reset line
	stop    [2]time.Time // the unit's "Stopping" and "Stopped" lines
	banner  time.Time
	release string // of the first banner after the marker
	init    time.Time
	load    []string // loadRE's match between the marker and the banner
}

func (w *watch) line(l string) {
	now := time.Now()
	if w.echo {
		fmt.Fprintf(os.Stderr, "  %s| %s\n", w.prefix, l)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := strings.Index(l, marker); i >= 0 {
		w.markers++
		if w.markers == 1 {
			w.marker = now
			if f := strings.Fields(l[i+len(marker):]); len(f) > 0 {
				w.method = f[0]
			}
		}
		return
	}
	switch {
	case w.markers == 0:
	case w.banner.IsZero():
		if k := harness.KernelStarts([]string{l}); len(k) == 1 {
			w.banner, w.release = now, k[0]
		} else if m := loadRE.FindStringSubmatch(l); m != nil {
			w.load = m
		} else if m := keptRE.FindStringSubmatch(l); m != nil {
			w.load = []string{m[0], m[1], m[2] + " preloaded at boot, kept", "0"}
		} else if jumpRE.MatchString(l) {
			w.jump = now
		} else if w.unit != "" && strings.Contains(l, w.unit) {
			if strings.Contains(l, "Stopping") {
				w.stop[0] = now
			} else if strings.Contains(l, "Stopped") {
				w.stop[1] = now
			}
		}
	case w.init.IsZero():
		if strings.Contains(l, initLine) {
			w.init = now
		}
	}
}

// results is what the run found, for the table.
type results struct {
	date       time.Time
	took       time.Duration
	runs       int
	a, b       string
	image      string
	qemu       string
	kxboot     string // git describe of the tree built, if kxboot ran
	kexecTools string // the version of the seed's kexec-tools, if it ran
	methods    []*method
}

func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("Measured on %s by `go run ./e2e/bench -runs %d`: N = %d reboots per method, interleaved round-robin in one run of %s.",
		r.date.Format("2006-01-02"), r.runs, r.runs, r.took.Round(time.Minute))
	p("Seconds from the reboot command to the next boot's first userspace line (%q).", initLine)
	p("")
	p("**TCG guests (QEMU %s, no KVM, 1 vCPU, %d MiB) on a shared 2-core machine: the absolute numbers are not a real server's. Compare the ratios, within one run.**",
		r.qemu, harness.DefaultMemoryMB)
	p("")
	p("| method | command | lands on | median | min | max | median / kxboot's |")
	p("|---|---|---|--:|--:|--:|--:|")
	var kx *method
	for _, m := range r.methods {
		if m.name == "kxboot" {
			kx = m
		}
	}
	ratio := func(m *method) string {
		if kx == nil {
			return "—"
		}
		return fmt.Sprintf("%.2f", median(values(m, total))/median(values(kx, total)))
	}
	for _, m := range r.methods {
		t := values(m, total)
		p("| %s | `%s` | %s | %s | %s | %s | %s |", m.label, m.command, lands(m),
			secsF(median(t)), secsF(t[0]), secsF(t[len(t)-1]), ratio(m))
	}
	if kx == nil {
		p("| kxboot: `kxboot install reboot` once | `reboot` | B, through kexec | not measured in this run | | | |")
	}
	p("")
	if kx != nil {
		for _, m := range r.methods {
			if m != kx {
				p("- %s / kxboot: **%s** (ratio of the medians)", m.name, ratio(m))
			}
		}
		var loads []float64
		sys := map[string]bool{}
		for _, s := range kx.samples {
			loads = append(loads, s.loadMS)
			sys[s.loadSys] = true
		}
		sort.Float64s(loads)
		p("- kxboot's load at shutdown (its console line `kxboot: reboot: loaded ... in N ms`; 0 when the shutdown kept the kernel preloaded at boot, `kept ...`): median **%g ms** (min %g, max %g), with %s",
			median(loads), loads[0], loads[len(loads)-1], strings.Join(keys(sys), " and "))
	}
	p("- kernels: A = %s (qemu's -kernel: where a firmware reboot lands), B = %s (the newest installed: where a kexec reboot lands)", r.a, r.b)
	if r.kxboot != "" {
		p("- kxboot: %s", r.kxboot)
	}
	p("- disk image: %s, one copy per method", r.image)
	for _, m := range r.methods {
		for _, n := range m.notes {
			p("- %s", n)
		}
	}
	p("")
	p("Where the time goes (medians of each phase, so they need not add up to the median above):")
	p("")
	p("| method | command to the old kernel's last line (shutdown) | of which the unit that loads (its stop) | then to the next kernel's banner (firmware, or kexec's purgatory) | banner to \"Run /init\" |")
	p("|---|--:|--:|--:|--:|")
	for _, m := range r.methods {
		shut, fw, stop := "not printed", "not printed", "—"
		if j := values(m, jump); j[0] > 0 {
			shut = secsF(median(j))
			fw = secsF(median(values(m, func(s sample) time.Duration { return s.down - s.jump })))
		}
		if m.unit != "" {
			stop = "not printed"
			if v := values(m, func(s sample) time.Duration { return s.stop }); v[0] > 0 {
				stop = fmt.Sprintf("%s (%s)", secsF(median(v)), m.unit)
			}
		}
		p("| %s | %s | %s | %s | %s |", m.name, shut, stop, fw, secsF(median(values(m, func(s sample) time.Duration { return s.total - s.down }))))
	}
	return b.String()
}

func lands(m *method) string {
	if m.kexec {
		return "B, through kexec"
	}
	return "A, through the firmware"
}

func total(s sample) time.Duration { return s.total }
func jump(s sample) time.Duration  { return s.jump }

// values returns f of m's samples in seconds, sorted.
func values(m *method, f func(sample) time.Duration) []float64 {
	var v []float64
	for _, s := range m.samples {
		v = append(v, f(s).Seconds())
	}
	sort.Float64s(v)
	return v
}

// median of sorted values.
func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func keys(m map[string]bool) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func secs(d time.Duration) string { return secsF(d.Seconds()) }
func secsF(s float64) string      { return fmt.Sprintf("%.1f s", s) }

// The markers around the results in a Markdown file: the rest of the file
// is the reader's to write.
const (
	beginResults = "<!-- bench results: written by go run ./e2e/bench -out; edit outside these markers -->"
	endResults   = "<!-- end of bench results -->"
)

// spliceResults writes text between the fast reboot markers of the
// Markdown file name, creating it if absent. With text "" it only checks
// that it can, and changes nothing.
func spliceResults(name, text string) error {
	return splice(name, beginResults, endResults, text)
}

// splice writes text between the markers begin and end of the Markdown
// file name, as spliceResults.
func splice(name, beginResults, endResults, text string) error {
	data, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		if text == "" {
			return nil
		}
		return os.WriteFile(name, []byte(beginResults+"\n"+text+"\n"+endResults+"\n"), 0o644)
	}
	if err != nil {
		return err
	}
	s := string(data)
	i := strings.Index(s, beginResults)
	j := strings.Index(s, endResults)
	if i < 0 || j < i {
		return fmt.Errorf("-out %s: the file has no results markers; put the lines %q and %q where the results go, or name another file", name, beginResults, endResults)
	}
	if text == "" {
		return nil
	}
	// The blank line ends the last table before the marker.
	s = s[:i] + beginResults + "\n" + text + "\n" + s[j:]
	return writeFile(name, s)
}

// writeFile replaces name through a rename, so that an interrupted write
// leaves the old file.
func writeFile(name, s string) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

func qemuVersion() string {
	q, err := harness.QEMU(harness.AMD64)
	if err != nil {
		return "unknown"
	}
	out, err := exec.Command(q, "--version").Output()
	if err != nil {
		return "unknown"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimPrefix(first, "QEMU emulator version ")
}

// kxbootVersion describes the tree that BuildKxboot built.
func kxbootVersion() string {
	root, err := harness.ModuleRoot()
	if err != nil {
		return "unknown"
	}
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = root
	cmd.Stderr = io.Discard
	out, err := cmd.Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	return "built from " + strings.TrimSpace(string(out))
}
