package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// AccelEnv forces the accelerator of every guest: "tcg" or "kvm".
const AccelEnv = "KXBOOT_E2E_ACCEL"

// ProbeTimeout bounds the KVM probe: a guest that has not reached its
// init by then counts as KVM not working. Under KVM a kernel reaches its
// init in about a second; nested KVM on the machines this was written on
// printed nothing at all and had to be killed.
const ProbeTimeout = 10 * time.Second

// Accelerator is the answer of Accel.
type Accelerator struct {
	Name string // "kvm" or "tcg"
	Why  string // how it was decided, for the log
}

func (a Accelerator) String() string { return a.Name + " (" + a.Why + ")" }

var (
	accelMu   sync.Mutex
	accelDone = map[string]Accelerator{}
)

// Accel returns the accelerator for guests of arch, deciding once per
// process: $KXBOOT_E2E_ACCEL if set; TCG for a foreign architecture or
// when /dev/kvm does not open; else KVM if a probe guest (kernel, which
// must be of arch, with a busybox initramfs) reaches its init within
// ProbeTimeout under KVM, and TCG if not. The probe's answer is kept in
// the cache for the rest of the host's boot, so a KVM that hangs costs
// its ProbeTimeout once per boot, not once per run.
func Accel(arch Arch, kernel string) Accelerator {
	arch = arch.orAMD64()
	accelMu.Lock()
	defer accelMu.Unlock()
	if a, ok := accelDone[arch.GOARCH]; ok {
		return a
	}
	a := decideAccel(arch, kernel)
	accelDone[arch.GOARCH] = a
	return a
}

func decideAccel(arch Arch, kernel string) Accelerator {
	switch v := os.Getenv(AccelEnv); v {
	case "tcg", "kvm":
		return Accelerator{v, "$" + AccelEnv}
	case "":
	default:
		return Accelerator{"tcg", fmt.Sprintf("$%s=%q is neither tcg nor kvm", AccelEnv, v)}
	}
	if !arch.Native() {
		return Accelerator{"tcg", arch.GOARCH + " guests on a " + AMD64.GOARCH + " host"}
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return Accelerator{"tcg", "/dev/kvm: " + err.Error()}
	}
	f.Close()

	bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	memo := filepath.Join(CacheDir(), "accel-"+arch.GOARCH)
	if data, err := os.ReadFile(memo); err == nil {
		id, answer, ok := strings.Cut(strings.TrimSpace(string(data)), " ")
		name, why, _ := strings.Cut(answer, " ")
		if ok && id == strings.TrimSpace(string(bootID)) && (name == "kvm" || name == "tcg") {
			return Accelerator{name, why + ", probed earlier in this host boot"}
		}
	}
	a := probeKVM(arch, kernel)
	if len(bootID) > 0 && os.MkdirAll(CacheDir(), 0o755) == nil {
		os.WriteFile(memo, []byte(strings.TrimSpace(string(bootID))+" "+a.Name+" "+a.Why+"\n"), 0o644)
	}
	return a
}

// probeKVM boots kernel under KVM with an initramfs whose init says a word
// and powers off.
func probeKVM(arch Arch, kernel string) Accelerator {
	bb, err := Busybox(arch)
	if err != nil {
		return Accelerator{"tcg", "no KVM probe: " + err.Error()}
	}
	dir, err := os.MkdirTemp("", "kxprobe-")
	if err != nil {
		return Accelerator{"tcg", "no KVM probe: " + err.Error()}
	}
	defer os.RemoveAll(dir)
	initrd := filepath.Join(dir, "probe.cpio")
	const word = "kxprobe-reached-init"
	root := NewInitramfs().Busybox(bb).File("/init", 0o755, []byte("#!/bin/sh\n/bin/echo "+word+"\n/bin/poweroff -f\n"))
	if err := root.Write(initrd); err != nil {
		return Accelerator{"tcg", "no KVM probe: " + err.Error()}
	}
	start := time.Now()
	g, err := Start(Options{
		Arch: arch, Accel: "kvm", Kernel: kernel, Initrd: initrd,
		Append: "console=" + arch.Console + " panic=-1", MemoryMB: 256, Timeout: ProbeTimeout,
	})
	if err != nil {
		return Accelerator{"tcg", "KVM probe: " + err.Error()}
	}
	defer g.Kill()
	if _, err := g.WaitFor(word, ProbeTimeout); err != nil {
		return Accelerator{"tcg", fmt.Sprintf("a KVM probe guest did not reach its init within %v", ProbeTimeout)}
	}
	return Accelerator{"kvm", fmt.Sprintf("a KVM probe guest reached its init in %v", time.Since(start).Round(100*time.Millisecond))}
}
