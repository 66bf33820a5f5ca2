package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// The load benchmark (-load): in one Debian guest (the systemd disk image
// of the e2e tests, booted on kernel A), load kernel B again and again
// with kxboot and with Debian's kexec-tools, case by case, alternating the
// tools inside every round, and compare their wall time and peak memory.
// kxmeasure (e2e/bench/kxmeasure) runs each command and reports its wall
// time, ru_maxrss (the child's VmHWM), user and system CPU. Nothing is
// executed: every load is unloaded again, and the guest powers off.

// loadCase is one way of loading, done by each tool.
type loadCase struct {
	name, label string
	kxboot      string // arguments of kxboot load after --kernel
	kexec       string // arguments of kexec after -l KERNEL
}

var loadCases = []loadCase{
	{"file", "kexec_file_load, one initrd", "--syscall file --initrd $I", "-s --initrd=$I"},
	{"load", "kexec_load, one initrd", "--syscall load --initrd $I", "-c --initrd=$I"},
	{"two", "kexec_file_load, two initrds (kexec-tools: the pre-joined file)", "--syscall file --initrd $E --initrd $I", "-s --initrd=$J"},
	{"none", "kexec_file_load, no initrd", "--syscall file --no-initrd", "-s"},
	{"load-none", "kexec_load, no initrd", "--syscall load --no-initrd", "-c"},
}

// The tools of a round, in their order in even rounds (odd rounds reverse
// it, so that neither always runs right after the other's unload).
func loadTools(before bool) []string {
	if before {
		return []string{"kxboot", "kexec", "before"}
	}
	return []string{"kxboot", "kexec"}
}

const (
	loadBegin = "<!-- bench load results: written by go run ./e2e/bench -load -out; edit outside these markers -->"
	loadEnd   = "<!-- end of bench load results -->"
	debsDir   = "/var/cache/kxbench/debs"
)

// loadScript is the guest's boot script: install kexec-tools, make the
// early initrd and the joined file, then a warm-up round and the measured
// ones.
func loadScript(b harness.Kernel, rounds int, tools []string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, `step preseed sh -c 'echo "kexec-tools kexec-tools/load_kexec boolean false" | debconf-set-selections'
step dpkg env DEBIAN_FRONTEND=noninteractive dpkg -i %s/*.deb
step version /sbin/kexec --version
K=/boot/vmlinuz-%s
I=/boot/initrd.img-%s
E=/root/early.img
J=/root/joined.img
head -c 3145728 /dev/urandom >$E
cat $E $I >$J
chmod 0644 $E $J
CL="$(cat /proc/cmdline)"
say sizes "$(stat -c %%s $K) $(stat -c %%s $I) $(stat -c %%s $E)"
say mem "$(grep MemTotal /proc/meminfo)"
m() { # KEY COMMAND...: measure COMMAND once, then unload
	key=$1; shift
	say "$key" "$(/usr/local/bin/kxmeasure "$@" 2>/tmp/m.err)"
	[ -s /tmp/m.err ] && say "$key.err" "$(head -c 300 /tmp/m.err | tr '\n' ' ')"
	/sbin/kexec -u 2>/dev/null
}
`, debsDir, b.Release, b.Release)
	for r := 0; r <= rounds; r++ {
		prefix := "m"
		if r == 0 {
			prefix = "w" // the warm-up round: files into the page cache
		}
		order := slices.Clone(tools)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range loadCases {
			for _, tool := range order {
				key := fmt.Sprintf("%s.%s.%s", prefix, c.name, tool)
				switch tool {
				case "kxboot":
					fmt.Fprintf(&sb, "m %s /usr/local/sbin/kxboot load --kernel $K %s --cmdline \"$CL\"\n", key, c.kxboot)
				case "before":
					fmt.Fprintf(&sb, "m %s /usr/local/sbin/kxboot-before load --kernel $K %s --cmdline \"$CL\"\n", key, c.kxboot)
				case "kexec":
					fmt.Fprintf(&sb, "m %s /sbin/kexec -l $K %s --command-line=\"$CL\"\n", key, c.kexec)
				}
			}
		}
		// The floor of the peak: ru_maxrss keeps the high-water mark of the
		// address space a child had before its exec, which for a child of
		// kxmeasure (Go forks with CLONE_VM) is kxmeasure's own.
		fmt.Fprintf(&sb, "m %s.floor.true /bin/true\n", prefix)
		for _, tool := range order {
			key := fmt.Sprintf("%s.start.%s", prefix, tool)
			switch tool {
			case "kxboot":
				fmt.Fprintf(&sb, "m %s /usr/local/sbin/kxboot version\n", key)
			case "before":
				fmt.Fprintf(&sb, "m %s /usr/local/sbin/kxboot-before version\n", key)
			case "kexec":
				fmt.Fprintf(&sb, "m %s /sbin/kexec --version\n", key)
			}
		}
	}
	sb.WriteString("kx_poweroff\n")
	return sb.String()
}

// measurement is one kxmeasure line.
type measurement struct {
	wallMS, userMS, sysMS float64
	rssKB                 float64
}

func parseMeasurement(s string) (measurement, error) {
	f := strings.Fields(s)
	if len(f) != 5 {
		return measurement{}, fmt.Errorf("kxmeasure printed %q; want 5 fields", s)
	}
	var v [5]float64
	for i, x := range f {
		n, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return measurement{}, fmt.Errorf("kxmeasure printed %q: %v", s, err)
		}
		v[i] = n
	}
	if v[4] != 0 {
		return measurement{}, fmt.Errorf("the command exited with status %g", v[4])
	}
	return measurement{wallMS: v[0], rssKB: v[1], userMS: v[2], sysMS: v[3]}, nil
}

func runLoad(rounds int, out, before string, console, keep bool) error {
	if rounds < 1 {
		return fmt.Errorf("-rounds %d: want at least 1", rounds)
	}
	if out != "" {
		if err := splice(out, loadBegin, loadEnd, ""); err != nil {
			return err
		}
	}
	start := time.Now()
	a, b, img, work, err := systemdGuest("kxbench-load-")
	if err != nil {
		return err
	}
	kx, err := harness.BuildKxboot(work, harness.AMD64)
	if err != nil {
		return err
	}
	meas := filepath.Join(work, "kxmeasure")
	root, err := harness.ModuleRoot()
	if err != nil {
		return err
	}
	build := exec.Command("go", "build", "-o", meas, "./e2e/bench/kxmeasure")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building kxmeasure: %v\n%s", err, b)
	}
	debs, err := harness.Debs(img, logf, "kexec-tools")
	if err != nil {
		return err
	}
	disk, err := harness.NewDisk(img, work)
	if err != nil {
		return err
	}
	res := &loadResults{date: start.UTC(), rounds: rounds, a: a.Release, b: b.Release, qemu: qemuVersion(), kxboot: kxbootVersion(), before: before != ""}
	files := []harness.GuestFile{
		{Path: "/usr/local/sbin/kxboot", Mode: 0o755, HostPath: kx},
		{Path: "/usr/local/bin/kxmeasure", Mode: 0o755, HostPath: meas},
		harness.BootScript(1, loadScript(b, rounds, loadTools(before != ""))),
	}
	if before != "" {
		files = append(files, harness.GuestFile{Path: "/usr/local/sbin/kxboot-before", Mode: 0o755, HostPath: before})
	}
	for _, d := range debs {
		if d.Package == "kexec-tools" {
			res.kexecTools = d.Version
		}
		files = append(files, harness.GuestFile{Path: debsDir + "/" + d.Package + ".deb", HostPath: d.Path})
	}
	if err := harness.Inject(disk, files...); err != nil {
		return err
	}
	log := filepath.Join(work, "load.console.log")
	o := img.Boot(disk)
	o.ConsoleLog, o.MaxKernels, o.Timeout = log, 1, 60*time.Minute
	if console {
		o.OnLine = func(l string) { fmt.Fprintln(os.Stderr, "load: "+l) }
	}
	logf("load: one guest, %d rounds of %d cases; the console goes to %s", rounds, len(loadCases), log)
	g, err := harness.Start(o)
	if err != nil {
		return err
	}
	defer g.Kill()
	r, err := g.WaitEnd(1, 50*time.Minute)
	if err != nil {
		return fmt.Errorf("%v (the console is in %s)", err, log)
	}
	g.Wait()
	for _, s := range []string{"preseed", "dpkg", "version"} {
		if st := r.Step(s); st.RC != 0 {
			return fmt.Errorf("the guest's step %q failed (%d): %s; the console is in %s", s, st.RC, harness.Tail(append(st.Out, st.Err...), 5), log)
		}
	}
	res.sizes, _ = r.Get("sizes")
	res.mem, _ = r.Get("mem")
	res.accel = harness.Accel(harness.AMD64, a.Image).String()
	var floor []measurement
	for _, v := range r.All("m.floor.true") {
		m, err := parseMeasurement(v)
		if err != nil {
			return fmt.Errorf("m.floor.true: %v; the console is in %s", err, log)
		}
		floor = append(floor, m)
	}
	if len(floor) > 0 {
		res.floorKB = median(col(floor, func(m measurement) float64 { return m.rssKB }))
	}
	for _, c := range append(slices.Clone(loadCases), loadCase{name: "start", label: "start-up: `kxboot version` / `kexec --version`"}) {
		cr := caseResult{c: c, by: map[string][]measurement{}}
		for _, tool := range loadTools(before != "") {
			key := fmt.Sprintf("m.%s.%s", c.name, tool)
			vals := r.All(key)
			if len(vals) != rounds {
				e, _ := r.Get(key + ".err")
				return fmt.Errorf("%s: %d measurements of %d (%s); the console is in %s", key, len(vals), rounds, e, log)
			}
			for _, v := range vals {
				m, err := parseMeasurement(v)
				if err != nil {
					e, _ := r.Get(key + ".err")
					return fmt.Errorf("%s: %v: %s; the console is in %s", key, err, e, log)
				}
				cr.by[tool] = append(cr.by[tool], m)
			}
		}
		res.cases = append(res.cases, cr)
	}
	if res.chain, err = chainStep(a, b, kx, work, 5); err != nil {
		return err
	}
	res.took = time.Since(start)
	text := res.markdown()
	fmt.Print(text)
	if out != "" {
		if err := splice(out, loadBegin, loadEnd, text); err != nil {
			return err
		}
		logf("results written into %s", out)
	}
	if keep {
		logf("the disk and the console log are in %s", work)
		return nil
	}
	return os.RemoveAll(work)
}

type caseResult struct {
	c  loadCase
	by map[string][]measurement
}

type loadResults struct {
	date                                  time.Time
	took                                  time.Duration
	rounds                                int
	a, b, qemu, kxboot, kexecTools, sizes string
	mem, accel                            string
	before                                bool
	floorKB                               float64
	chain                                 []chainSample
	cases                                 []caseResult
}

func col(ms []measurement, f func(measurement) float64) []float64 {
	var v []float64
	for _, m := range ms {
		v = append(v, f(m))
	}
	return v
}

func (r *loadResults) markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Measured on %s by `go run ./e2e/bench -load -rounds %d` in %s: one QEMU amd64 guest (%s, accelerator %s, QEMU %s), kernel %s loading %s; file sizes in bytes (kernel, initrd, early initrd): %s. kxboot %s; kexec-tools %s.\n\n",
		r.date.Format("2006-01-02"), r.rounds, r.took.Round(time.Second), r.mem, r.accel, r.qemu, r.a, r.b, r.sizes, r.kxboot, r.kexecTools)
	fmt.Fprintf(&sb, "Medians of the rounds; time = wall time of the command; peak = ru_maxrss (VmHWM), whose floor here is %.1f MB (`/bin/true` measured the same way); spread = max/min of a tool's times over the rounds, and in brackets max − min (a disturbance of the machine adds the same milliseconds to a short load as to a long one).\n\n", r.floorKB/1024)
	head := "| case | kxboot time | kexec-tools time | ratio | spread kxboot / kexec-tools | kxboot peak | kexec-tools peak | ratio |"
	sep := "|---|---:|---:|---:|---:|---:|---:|---:|"
	if r.before {
		head += " kxboot before: time | peak |"
		sep += "---:|---:|"
	}
	sb.WriteString(head + "\n" + sep + "\n")
	wall := func(m measurement) float64 { return m.wallMS }
	rss := func(m measurement) float64 { return m.rssKB }
	for _, c := range r.cases {
		kx, kt := c.by["kxboot"], c.by["kexec"]
		kw, tw := median(col(kx, wall)), median(col(kt, wall))
		km, tm := median(col(kx, rss)), median(col(kt, rss))
		ws, ts := col(kx, wall), col(kt, wall)
		fmt.Fprintf(&sb, "| %s | %.1f ms | %.1f ms | %.2f | %.2f / %.2f (%.0f / %.0f ms) | %.1f MB | %.1f MB | %.2f |", c.c.label, kw, tw, kw/tw,
			slices.Max(ws)/slices.Min(ws), slices.Max(ts)/slices.Min(ts), slices.Max(ws)-slices.Min(ws), slices.Max(ts)-slices.Min(ts), km/1024, tm/1024, km/tm)
		if r.before {
			bf := c.by["before"]
			fmt.Fprintf(&sb, " %.1f ms | %.1f MB |", median(col(bf, wall)), median(col(bf, rss))/1024)
		}
		sb.WriteString("\n")
	}
	sb.WriteString("\nCPU (medians, user + system ms): ")
	var parts []string
	for _, c := range r.cases {
		u := func(m measurement) float64 { return m.userMS }
		s := func(m measurement) float64 { return m.sysMS }
		parts = append(parts, fmt.Sprintf("%s: kxboot %.0f + %.0f, kexec-tools %.0f + %.0f", c.c.name,
			median(col(c.by["kxboot"], u)), median(col(c.by["kxboot"], s)), median(col(c.by["kexec"], u)), median(col(c.by["kexec"], s))))
	}
	sb.WriteString(strings.Join(parts, "; ") + ".\n")
	if len(r.chain) > 0 {
		f := func(g func(chainSample) float64) float64 {
			var v []float64
			for _, c := range r.chain {
				v = append(v, g(c))
			}
			return median(v)
		}
		before, load, after := f(func(c chainSample) float64 { return c.before }), f(func(c chainSample) float64 { return c.load }), f(func(c chainSample) float64 { return c.after })
		fmt.Fprintf(&sb, "\nThe chain step (kxboot as PID 1 of an initramfs, ABORT_SECONDS=0, kernel %s and a small initrd, kexec_file_load), medians of %d hops by the kernel's console timestamps: %.0f ms from \"Run /init\" to kxboot's first line, %.0f ms load, %.0f ms from the load to the jump; the step is the load + %.0f ms.\n",
			r.b, len(r.chain), before, load, after, before+after)
	}
	return sb.String()
}

// The chain step (-load measures it too): kxboot as PID 1 of an initramfs
// (the wrapper mode, ABORT_SECONDS=0) hops from kernel A into kernel B.
// The kernel's timestamps on the console split the step: from "Run /init"
// to kxboot's first line (mounts, config, plan, the try record read), the
// load (to "chain: loaded"), and from there to the old kernel's last line
// (the try record written and synced, the jump).
var (
	printkRE  = regexp.MustCompile(`^\[\s*([0-9]+\.[0-9]+)\] (.*)$`)
	chainMark = []string{"Run /init as init process", "kxboot: chain: ", "kxboot: chain: loaded ", "kexec_core: Starting new kernel"}
)

// chainSample is one hop's split, in ms.
type chainSample struct{ before, load, after float64 }

// chainTimes reads the split of one hop from its console lines.
func chainTimes(lines []string) (chainSample, error) {
	var t [4]float64
	found := 0
	for _, l := range lines {
		m := printkRE.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil || found == len(chainMark) {
			continue
		}
		if strings.Contains(m[2], chainMark[found]) {
			t[found], _ = strconv.ParseFloat(m[1], 64)
			found++
		}
	}
	if found < len(chainMark) {
		return chainSample{}, fmt.Errorf("the console lacks a timestamped %q", chainMark[found])
	}
	return chainSample{before: (t[1] - t[0]) * 1e3, load: (t[2] - t[1]) * 1e3, after: (t[3] - t[2]) * 1e3}, nil
}

// runChainOnly measures the chain step alone and prints, for each run, the
// timestamped kxboot lines between "Run /init" and the jump: where the
// time before the load goes.
func runChainOnly() error {
	a, b, err := harness.Kernels(harness.AMD64, logf)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kxbench-chain-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	kx, err := harness.BuildKxboot(work, harness.AMD64)
	if err != nil {
		return err
	}
	_, err = chainStep(a, b, kx, work, 5)
	return err
}

// chainStep boots the wrapper's hop n times and returns the splits.
func chainStep(a, b harness.Kernel, kx, work string, n int) ([]chainSample, error) {
	bb, err := harness.Busybox(harness.AMD64)
	if err != nil {
		return nil, err
	}
	stage2, err := harness.NewInitramfs().Busybox(bb).File("/init", 0o755, []byte("#!/bin/sh\n/bin/busybox poweroff -f\n")).Bytes()
	if err != nil {
		return nil, err
	}
	root := harness.NewInitramfs().Busybox(bb).HostFile("/bin/kxboot", 0o755, kx)
	root.Symlink("/init", "/bin/kxboot")
	root.File("/sbin/init.kxboot-orig", 0o755, []byte("#!/bin/sh\necho 'KXBENCH no hop'\n/bin/busybox poweroff -f\n"))
	root.HostFile("/boot/vmlinuz-"+b.Release, 0o644, b.Image)
	root.File("/boot/stage2.cpio", 0o644, stage2)
	root.File("/etc/default/kxboot", 0o644, []byte("KERNEL=/boot/vmlinuz-"+b.Release+"\nINITRD=/boot/stage2.cpio\nABORT_SECONDS=0\n"))
	initrd := filepath.Join(work, "chain.cpio")
	if err := root.Write(initrd); err != nil {
		return nil, err
	}
	var out []chainSample
	for i := 1; i <= n; i++ {
		log := filepath.Join(work, fmt.Sprintf("chain-run%d.console.log", i))
		g, err := harness.Start(harness.Options{Kernel: a.Image, Initrd: initrd, Append: "console=" + a.Arch.Console + " panic=-1 " + a.Arch.Params,
			ConsoleLog: log, MaxKernels: 2, Timeout: 5 * time.Minute})
		if err != nil {
			return nil, err
		}
		err = g.Wait()
		g.Kill()
		if err != nil {
			return nil, fmt.Errorf("chain step, run %d: %v; the console is in %s", i, err, log)
		}
		s, err := chainTimes(g.Lines())
		if err != nil {
			return nil, fmt.Errorf("chain step, run %d: %v; the console is in %s", i, err, log)
		}
		logf("chain step, run %d: %.0f ms before the load, %.0f ms load, %.0f ms after", i, s.before, s.load, s.after)
		for _, l := range g.Lines() {
			if printkRE.MatchString(l) && (strings.Contains(l, "kxboot") || strings.Contains(l, "Run /init") || strings.Contains(l, "kexec_core")) {
				logf("  %s", l)
			}
		}
		out = append(out, s)
	}
	return out, nil
}
