// Command demo shows kxboot's main job without touching this machine: it
// boots a throwaway QEMU guest on one Debian kernel (standing in for the
// kernel a hosting provider forces on a VM), and lets kxboot inside it hop
// into a newer kernel (the one the machine's owner wants), narrating each
// step.
//
//	go run ./e2e/demo [-console]
//
// Run it as root from the kxboot module: it may apt-get download two kernel
// packages into /var/cache/kxboot-e2e the first time.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

const demoAppend = "kxdemo.hello=world"

func main() {
	console := flag.Bool("console", false, "print every line of the guest's serial console")
	flag.Parse()
	if err := run(*console); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func run(console bool) error {
	start := time.Now()
	say("Getting two Debian 12 cloud kernels (cached in %s)...", harness.CacheDir())
	a, b, err := harness.Kernels(harness.AMD64, func(format string, args ...any) { say("  "+format, args...) })
	if err != nil {
		return err
	}
	say("  kernel A, the provider's: %s", a.Release)
	say("  kernel B, the owner's:    %s", b.Release)

	dir, err := os.MkdirTemp("", "kxboot-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	say("Building kxboot as a static binary (CGO_ENABLED=0)...")
	kx, err := harness.BuildKxboot(dir, harness.AMD64)
	if err != nil {
		return err
	}
	bb, err := harness.Busybox(harness.AMD64)
	if err != nil {
		return err
	}

	say("Packing the guest's initramfs: busybox, kxboot, kernel B and a second-stage initramfs...")
	initrd := filepath.Join(dir, "stage1.cpio")
	root, err := initramfs(bb, kx, a, b)
	if err != nil {
		return err
	}
	if err := root.Write(initrd); err != nil {
		return err
	}

	appendLine := "console=ttyS0 panic=-1 BOOT_IMAGE=/boot/vmlinuz-" + a.Release + " kxdemo.provider=1"
	say("Booting the provider's kernel %s in a throwaway QEMU guest (TCG, no disk, no network)...", a.Short())
	n := &narrator{console: console}
	g, err := harness.Start(harness.Options{
		Kernel: a.Image, Initrd: initrd, Append: appendLine,
		ConsoleLog: filepath.Join(dir, "console.log"),
		OnLine:     n.line,
	})
	if err != nil {
		return err
	}
	waitErr := g.Wait()
	r := harness.Parse(g.Lines())
	before, _ := r.Stage("1").Get("release")
	after, hopped := r.Stage("2").Get("release")
	say("")
	if waitErr != nil || !hopped || after != b.Release {
		say("The hop did not happen. Last lines of the guest's console:")
		say("%s", harness.Tail(g.Lines(), 30))
		if waitErr != nil {
			return waitErr
		}
		return fmt.Errorf("kernel B (%s) never ran the second stage", b.Release)
	}
	say("What changed, in %v:", time.Since(start).Round(time.Second))
	say("  uname -r before: %s (the provider's kernel)", before)
	say("  uname -r after:  %s (the owner's kernel, started by kxboot through kexec)", after)
	c1, _ := r.Stage("1").Get("cmdline")
	c2, _ := r.Stage("2").Get("cmdline")
	added, removed := diff(strings.Fields(c1), strings.Fields(c2))
	say("  command line kept: the provider's parameters, minus %s", list(removed))
	say("  command line added: %s", list(added))
	return nil
}

// initramfs is stage 1: kxboot checks the machine, shows its plan, loads
// kernel B with stage2.cpio and jumps. Stage 2 reports what it runs on.
// A's config is in /boot, as on an installed machine, so that the doctor
// can read the running kernel's kexec options.
func initramfs(bb, kx string, a, b harness.Kernel) (*harness.Initramfs, error) {
	stage2 := harness.NewInitramfs().Busybox(bb).HostFile("/bin/kxboot", 0o755, kx)
	stage2.File("/init", 0o755, harness.Script("2", "step status kxboot status\n"))
	s2, err := stage2.Bytes()
	if err != nil {
		return nil, err
	}
	root := harness.NewInitramfs().Busybox(bb).HostFile("/bin/kxboot", 0o755, kx)
	root.File("/stage2.cpio", 0o644, s2)
	root.HostFile("/boot/vmlinuz-"+b.Release, 0o644, b.Image)
	if a.Config != "" {
		root.HostFile("/boot/config-"+a.Release, 0o644, a.Config)
	}
	load := "kxboot load --kernel /boot/vmlinuz-" + b.Release + " --initrd /stage2.cpio --append " + demoAppend
	root.File("/init", 0o755, harness.Script("1", `
step doctor kxboot doctor
step dryrun `+load+` --dry-run
step load `+load+`
step status kxboot status
say exec "kxboot exec --force"
step exec kxboot exec --force
finish "kxboot exec returned"
`))
	return root, nil
}

// narrator turns the guest's console into sentences as lines arrive.
type narrator struct {
	console bool
	stage   string
	step    string
	said    int // output lines shown for step
}

// steps says what each step of the guest script is for.
var steps = map[string]string{
	"1/doctor": "kxboot doctor checks whether this machine can kexec at all. kxboot in the guest says:",
	"1/dryrun": "kxboot load --dry-run shows what it would load, and with which command line, without loading. It says:",
	"1/load":   "Now the real load: kernel B and its initramfs go into memory through kexec; nothing runs yet.",
	"1/status": "kxboot status, between load and jump:",
	"1/exec":   "kxboot exec returned, which it should not:",
	"2/status": "kxboot status on kernel B:",
}

func (n *narrator) line(l string) {
	if n.console {
		say("  console| %s", l)
	}
	i := strings.Index(l, harness.Tag)
	if i < 0 {
		if !n.console && (strings.Contains(l, "Linux version") || strings.Contains(l, "kexec")) {
			say("  console| %s", strings.TrimSpace(l))
		}
		return
	}
	key, val, _ := strings.Cut(l[i+len(harness.Tag):], ": ")
	switch key {
	case "stage":
		n.stage, n.step = val, ""
		if val == "1" {
			say("The provider's kernel is up and runs the guest's /init.")
		} else {
			say("")
			say("A new kernel is up and runs the /init from the second-stage initramfs.")
		}
		return
	case "release":
		say("  uname -r: %s", val)
		return
	case "cmdline":
		say("  /proc/cmdline: %s", val)
		return
	case "exec":
		say("")
		say("Jumping: %s. The provider's kernel hands the machine to kernel B now, with no firmware reboot...", val)
		return
	case "end":
		say("The guest powers off.")
		return
	}
	name, kind, ok := cutLast(key, ".")
	if !ok {
		return
	}
	if name != n.step {
		n.step, n.said = name, 0
		say("")
		if d, ok := steps[n.stage+"/"+name]; ok {
			say("%s", d)
		}
	}
	switch kind {
	case "out", "err":
		n.said++
		say("    %s", val)
	case "rc":
		switch {
		case val != "0":
			say("    (failed: exit status %s)", val)
		case n.said == 0:
			say("    (done, nothing printed)")
		}
	}
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// diff returns the fields only in b and only in a.
func diff(a, b []string) (added, removed []string) {
	in := func(s string, l []string) bool {
		for _, x := range l {
			if x == s {
				return true
			}
		}
		return false
	}
	for _, f := range b {
		if !in(f, a) {
			added = append(added, f)
		}
	}
	for _, f := range a {
		if !in(f, b) {
			removed = append(removed, f)
		}
	}
	return added, removed
}

func list(l []string) string {
	if len(l) == 0 {
		return "nothing"
	}
	return strings.Join(l, " ")
}
