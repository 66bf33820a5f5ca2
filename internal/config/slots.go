package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Slot is one boot entry of an A/B scheme: SLOT_<NAME>_KERNEL and its
// companions. Kernel and Initrd are paths inside the slot's root file
// system when Root names one (it is mounted read-only to load them),
// otherwise on this machine.
type Slot struct {
	Name    string
	Kernel  string
	Initrd  []string // nil: the initrds found beside the kernel
	Cmdline string   // "": the usual command line, with root= set to Root
	Root    string   // a device (/dev/..., UUID=..., LABEL=...) or ""
	Line    int      // the line of SLOT_<NAME>_KERNEL
}

// slotKey matches the keys of the slots.
var slotKey = regexp.MustCompile(`^SLOT_([A-Z][A-Z0-9]*)_(KERNEL|INITRD|CMDLINE|ROOT)$`)

// IsSlotKey says whether key is a slot's setting.
func IsSlotKey(key string) bool { return slotKey.MatchString(key) }

// slots reads the slots from the values, ordered by name.
func (c *Config) slots() error {
	byName := map[string]*Slot{}
	for key, v := range c.Values {
		m := slotKey.FindStringSubmatch(key)
		if m == nil {
			continue
		}
		s := byName[m[1]]
		if s == nil {
			s = &Slot{Name: m[1]}
			byName[m[1]] = s
		}
		switch m[2] {
		case "KERNEL":
			s.Kernel, s.Line = v, c.Line[key]
		case "INITRD":
			if f := strings.Fields(v); len(f) > 0 {
				s.Initrd = f
			}
		case "CMDLINE":
			s.Cmdline = v
		case "ROOT":
			s.Root = v
		}
	}
	for name, s := range byName {
		if s.Kernel == "" {
			return fmt.Errorf("%s: slot %s has settings but no SLOT_%s_KERNEL; name its kernel, or remove the slot's lines", c.Path, name, name)
		}
		if !strings.HasPrefix(s.Kernel, "/") {
			return fmt.Errorf("%s:%d: SLOT_%s_KERNEL=%q is not an absolute path; write the kernel's path (inside the slot's root when SLOT_%s_ROOT is set), for example /boot/vmlinuz", c.Path, s.Line, name, s.Kernel, name)
		}
		c.Slots = append(c.Slots, *s)
	}
	slices.SortFunc(c.Slots, func(a, b Slot) int { return strings.Compare(a.Name, b.Name) })
	if len(c.Slots) > 0 && c.Kernel != "" {
		return fmt.Errorf("%s:%d: KERNEL= and the SLOT_..._KERNEL settings both name the kernel to boot; with slots, remove KERNEL= (the active slot is booted)", c.Path, c.Line["KERNEL"])
	}
	return nil
}

// Slot returns the slot of that name.
func (c *Config) Slot(name string) (Slot, bool) {
	for _, s := range c.Slots {
		if s.Name == name {
			return s, true
		}
	}
	return Slot{}, false
}

// SlotNames lists the slots' names.
func (c *Config) SlotNames() []string {
	var out []string
	for _, s := range c.Slots {
		out = append(out, s.Name)
	}
	return out
}
