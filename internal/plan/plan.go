// Package plan decides what a load would do: which kernel, which initrds and
// which command line, from the flags, the config file, the installed kernels
// and the running command line, and says for each where it came from. It
// reads files but changes nothing, so `load --dry-run`, `status` and
// `doctor` show exactly what `load` would use.
package plan

import (
	"fmt"
	"strings"

	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/kernels"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// Flags are the command-line overrides; a nil slice or pointer means "not
// given", so that the config file applies.
type Flags struct {
	Kernel   string
	Initrds  []string // given at least once when non-nil
	NoInitrd bool
	Append   *string
	Cmdline  *string
}

// Plan is what would be loaded, and why.
type Plan struct {
	Kernel        string          `json:"kernel"`
	Release       string          `json:"release,omitempty"` // of the new kernel, when known
	KernelFrom    string          `json:"kernel_from"`
	Initrds       []string        `json:"initrds"`
	InitrdsFrom   string          `json:"initrds_from"`
	Cmdline       string          `json:"cmdline"`
	CmdlineFrom   string          `json:"cmdline_from"`
	Marker        string          `json:"marker"`
	RunningParams cmdline.Cmdline `json:"-"` // the running kernel's command line
}

// Make builds the plan. cfg may be the zero Config (no file).
func Make(fsys rootfs.FS, cfg *config.Config, f Flags) (Plan, error) {
	var p Plan
	where := func(key string) string {
		if line, ok := cfg.Line[key]; ok {
			return fmt.Sprintf("%s= in %s:%d", key, cfg.Path, line)
		}
		return fmt.Sprintf("%s= in %s", key, cfg.Path)
	}

	// The kernel: the flag, the config, or the newest installed.
	var k kernels.Kernel
	switch {
	case f.Kernel != "":
		k = kernels.ForImage(fsys, f.Kernel)
		p.KernelFrom = "--kernel"
	case cfg.Kernel != "":
		k = kernels.ForImage(fsys, cfg.Kernel)
		p.KernelFrom = where(legacyKey(cfg, "KERNEL"))
	default:
		newest, err := kernels.Newest(fsys)
		if err != nil {
			return p, err
		}
		k = newest
		p.KernelFrom = "newest installed kernel (" + newest.Source + ")"
	}
	p.Kernel, p.Release = k.Path, k.Version
	if f.Kernel != "" {
		p.Kernel = f.Kernel // as named, so that messages quote the owner's words
	} else if cfg.Kernel != "" {
		p.Kernel = cfg.Kernel
	}

	// The initrds: the flags, the config, or those that belong to the kernel.
	switch {
	case f.NoInitrd:
		p.InitrdsFrom = "--no-initrd"
	case f.Initrds != nil:
		p.Initrds, p.InitrdsFrom = f.Initrds, "--initrd"
	case len(cfg.Initrd) > 0:
		p.Initrds, p.InitrdsFrom = cfg.Initrd, where("INITRD")
	case len(k.Initrds) > 0:
		p.Initrds, p.InitrdsFrom = k.Initrds, "found beside the kernel"
	default:
		p.InitrdsFrom = "none found beside the kernel"
	}

	// The command line: given whole, or the running one reused; then the
	// additions and the marker that tells the next boot it came through kxboot.
	p.Marker = cfg.Marker
	if p.Marker == "" {
		p.Marker = cmdline.DefaultMarker
	}
	markers := cmdline.Markers(p.Marker)
	running, err := fsys.ReadString("/proc/cmdline")
	if err != nil {
		return p, fmt.Errorf("cannot read the running command line: %w", err)
	}
	p.RunningParams = cmdline.Parse(running)
	var base cmdline.Cmdline
	switch {
	case f.Cmdline != nil:
		base, p.CmdlineFrom = cmdline.Parse(*f.Cmdline).RemoveMarkers(markers), "--cmdline"
	case cfg.Cmdline != "":
		base, p.CmdlineFrom = cmdline.Parse(cfg.Cmdline).RemoveMarkers(markers), where(legacyKey(cfg, "CMDLINE"))
	default:
		base, p.CmdlineFrom = cmdline.Reuse(running, markers), "the running command line"
	}
	switch {
	case f.Append != nil && *f.Append != "":
		base = appendNew(base, cmdline.Parse(*f.Append))
		p.CmdlineFrom += " + --append"
	case f.Append == nil && f.Cmdline == nil && cfg.Append != "":
		// --cmdline is the whole command line: the file's APPEND stays out.
		base = appendNew(base, cmdline.Parse(cfg.Append))
		p.CmdlineFrom += " + " + where("APPEND")
	}
	base = base.Append(cmdline.Cmdline{p.Marker})
	p.Cmdline = base.String()
	if err := cmdline.Validate(p.Cmdline); err != nil {
		return p, fmt.Errorf("the new command line (%s) cannot be used: %w", p.CmdlineFrom, err)
	}
	return p, nil
}

// appendNew appends the parameters of extra that base does not have word
// for word: a kernel that came through kxboot runs with APPEND already on
// its command line, and a reboot from it must not add it twice.
func appendNew(base, extra cmdline.Cmdline) cmdline.Cmdline {
	have := map[string]bool{}
	for _, t := range base.Params() {
		have[t] = true
	}
	var add cmdline.Cmdline
	for _, t := range extra.Params() {
		if !have[t] {
			add = append(add, t)
			have[t] = true
		}
	}
	return base.Append(append(add, extra[len(extra.Params()):]...))
}

// legacyKey names the key as the file spells it: the legacy recipe files
// call the kernel KERNEL_IMAGE and put the whole command line in APPEND.
func legacyKey(cfg *config.Config, key string) string {
	if cfg.Format == "" || cfg.Format == "kxboot" {
		return key
	}
	switch key {
	case "KERNEL":
		return "KERNEL_IMAGE"
	case "CMDLINE":
		return "APPEND"
	}
	return key
}

// Describe prints the plan for people, one item a line.
func (p Plan) Describe() string {
	var b strings.Builder
	rel := ""
	if p.Release != "" {
		rel = " (" + p.Release + ")"
	}
	fmt.Fprintf(&b, "kernel:  %s%s\n         from %s\n", p.Kernel, rel, p.KernelFrom)
	if len(p.Initrds) == 0 {
		fmt.Fprintf(&b, "initrd:  none (%s)\n", p.InitrdsFrom)
	} else {
		for i, ir := range p.Initrds {
			label := "initrd:  "
			if i > 0 {
				label = "         "
			}
			fmt.Fprintf(&b, "%s%s\n", label, ir)
		}
		fmt.Fprintf(&b, "         from %s\n", p.InitrdsFrom)
	}
	fmt.Fprintf(&b, "cmdline: %s\n         from %s\n", p.Cmdline, p.CmdlineFrom)
	return b.String()
}
