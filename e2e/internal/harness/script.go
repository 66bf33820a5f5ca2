package harness

import (
	"strconv"
	"strings"
)

// Tag starts every console line that a guest script reports to the host:
// "KXTEST key: value".
const Tag = "KXTEST "

// prelude is the start of every /init. say and step print tagged lines;
// finish powers the guest off, which ends qemu.
const prelude = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# Kernel messages would land in the middle of our lines.
dmesg -n 1

# say KEY VALUE: report one value.
say() { k=$1; shift; echo "KXTEST $k: $*"; }

# step NAME CMD...: run CMD and report its output lines as NAME.out and
# NAME.err, and its exit status as NAME.rc.
step() {
	n=$1; shift
	"$@" >/tmp/step.out 2>/tmp/step.err
	rc=$?
	while IFS= read -r l || [ -n "$l" ]; do say "$n.out" "$l"; done </tmp/step.out
	while IFS= read -r l || [ -n "$l" ]; do say "$n.err" "$l"; done </tmp/step.err
	say "$n.rc" "$rc"
	return $rc
}

finish() { say end "$1"; sync; poweroff -f; }

say stage "$KXTEST_STAGE"
say release "$(uname -r)"
say cmdline "$(cat /proc/cmdline)"
# type_of_loader in the boot_params this kernel got (offset 0x210):
# b0 is QEMU's -kernel; d0 is a kexec loader: the kernel's kexec_file_load
# or kexec-tools; d1 is kxboot's own kexec_load. "none" where there are no
# boot_params (arm64).
bp=/sys/kernel/boot_params/data
if [ -e $bp ]; then say loader "$(od -An -tx1 -j528 -N1 $bp | tr -d ' ')"; else say loader none; fi
`

// Script returns an /init for the named stage: the prelude (which reports
// "stage", "release", "cmdline" and "loader"), then body, then a poweroff.
func Script(stage, body string) []byte {
	return []byte(strings.Replace(prelude, "export PATH=/bin\n",
		"export PATH=/bin KXTEST_STAGE="+shellQuote(stage)+"\n", 1) + body + "\nfinish ok\n")
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Report holds the tagged lines of a console, in order.
type Report struct {
	stages []string // the stage each line was reported in
	keys   []string
	values []string
}

// Parse collects the tagged lines. A tag may follow other text on the same
// line (a kernel message that lost its newline).
func Parse(lines []string) *Report {
	r := &Report{}
	stage := ""
	for _, l := range lines {
		i := strings.Index(l, Tag)
		if i < 0 {
			continue
		}
		k, v, ok := strings.Cut(l[i+len(Tag):], ": ")
		if !ok {
			k, ok = strings.CutSuffix(l[i+len(Tag):], ":")
			if !ok {
				continue
			}
		}
		if k == "stage" {
			stage = v
		}
		r.stages = append(r.stages, stage)
		r.keys = append(r.keys, k)
		r.values = append(r.values, v)
	}
	return r
}

// Stage returns the part of the report that a guest script of the named
// stage printed; a hop shows the stages in order.
func (r *Report) Stage(name string) *Report {
	s := &Report{}
	for i := range r.keys {
		if r.stages[i] == name {
			s.stages = append(s.stages, name)
			s.keys = append(s.keys, r.keys[i])
			s.values = append(s.values, r.values[i])
		}
	}
	return s
}

// All returns every value reported for key.
func (r *Report) All(key string) []string {
	var vs []string
	for i, k := range r.keys {
		if k == key {
			vs = append(vs, r.values[i])
		}
	}
	return vs
}

// Get returns the first value reported for key.
func (r *Report) Get(key string) (string, bool) {
	for i, k := range r.keys {
		if k == key {
			return r.values[i], true
		}
	}
	return "", false
}

// Step is the outcome of one `step NAME CMD` of a guest script.
type Step struct {
	Name    string
	Out     []string // stdout lines
	Err     []string // stderr lines
	RC      int      // exit status; -1 if never reported
	Started bool     // whether anything was reported for it
}

// Step returns what the guest reported for the step name.
func (r *Report) Step(name string) Step {
	s := Step{Name: name, Out: r.All(name + ".out"), Err: r.All(name + ".err"), RC: -1}
	if v, ok := r.Get(name + ".rc"); ok {
		s.Started = true
		if n, err := strconv.Atoi(v); err == nil {
			s.RC = n
		}
	}
	return s
}

// Stdout is the step's standard output joined by newlines.
func (s Step) Stdout() string { return strings.Join(s.Out, "\n") }

// Stderr is the step's standard error joined by newlines.
func (s Step) Stderr() string { return strings.Join(s.Err, "\n") }
