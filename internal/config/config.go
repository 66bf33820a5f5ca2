// Package config reads /etc/default/kxboot, and the files of the recipes
// kxboot replaces, without a shell: the same file may be sourced by an init
// script, so kxboot accepts only the plain assignments a shell would read the
// same way and refuses anything it would have to evaluate.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// Path is kxboot's own file.
const Path = "/etc/default/kxboot"

// The formats Parse reads.
const (
	Kxboot  = "kxboot"
	Droplet = "droplet-kernel" // /etc/default/droplet-kernel, the DigitalOcean recipe
	Debian  = "debian-kexec"   // /etc/default/kexec, Debian's kexec-tools
)

// Config is what a file says, with kxboot's defaults filled in.
type Config struct {
	Path    string   // in-machine path of the file read; "" when none exists (all defaults)
	Format  string   // Kxboot, Droplet or Debian
	Enabled bool     // whether kxboot is to hop at all
	Kernel  string   // "" lets discovery choose
	Initrd  []string // loaded in this order
	Append  string   // added to the command line
	Cmdline string   // replaces the reused running command line when not ""
	Marker  string   // "" means the default marker
	// AbortSeconds is how long the chain boot waits for a key on the
	// consoles before it hops; 0 skips the wait.
	AbortSeconds int
	// MaxTries is how many hops in a row may go unconfirmed before the
	// chain boot stops and stays on the provider's kernel; 0 never stops.
	MaxTries int
	// HealthCmd must succeed (exit 0) before kxboot mark-good confirms a
	// hop; run by /bin/sh -c. "" confirms on reaching mark-good.
	HealthCmd string
	// HealthDeadline is how long after the hop the kernel has to confirm
	// before kxboot counts the try as failed and reboots through the
	// firmware.
	HealthDeadline int
	// Panic is the panic=N added to the new kernel's command line (unless
	// the owner set panic=), so a panicking kernel resets the machine; 0
	// adds nothing.
	Panic int
	// Watchdog says whether to arm /dev/watchdog before the hop.
	Watchdog bool
	// KnownGood says whether a kernel that used up its tries gives way
	// to the last confirmed one before the provider's.
	KnownGood bool
	// Slots are the boot entries of an A/B scheme (SLOT_<NAME>_*), by
	// name; none when the config names no slot.
	Slots []Slot
	// MetricsDir is where kxboot writes kxboot.prom (Prometheus textfile
	// metrics) at each boot's confirmation; "" writes none.
	MetricsDir string
	// Preload is when the fast reboot loads the next kernel ahead of the
	// shutdown, once the boot is confirmed: PreloadAuto (when the files
	// take at most 1/32 of the RAM), PreloadYes or PreloadNo.
	Preload  string
	Values   map[string]string
	Line     map[string]int
	Warnings []string
}

// setting is one key of a file: set reads its value into the Config; a nil
// set keeps the value in Values only (reserved for later work). get gives the
// value Format writes; nil writes Values[name].
type setting struct {
	name string
	set  func(c *Config, v string) error
	get  func(c *Config) string
}

// quietDefaults are settings that Format leaves out at their default
// unless the file named them, so that a taken-over recipe stays short.
var quietDefaults = map[string]string{
	"MAX_TRIES":       strconv.Itoa(DefaultMaxTries),
	"HEALTH_DEADLINE": strconv.Itoa(DefaultHealthDeadline),
	"PANIC":           strconv.Itoa(DefaultPanic),
	"WATCHDOG":        "yes",
	"KNOWN_GOOD":      "yes",
	"METRICS_DIR":     "",
	"REBOOT_PRELOAD":  PreloadAuto,
}

// settings are the keys of /etc/default/kxboot, in the order Format writes
// them. An empty value means the default, as in the shell scripts.
var settings = []setting{
	{"ENABLED", setEnabled, func(c *Config) string { return yesNo(c.Enabled) }},
	{"KERNEL", func(c *Config, v string) error { c.Kernel = v; return nil }, func(c *Config) string { return c.Kernel }},
	{"INITRD", func(c *Config, v string) error { c.Initrd = strings.Fields(v); return nil }, func(c *Config) string { return strings.Join(c.Initrd, " ") }},
	{"APPEND", func(c *Config, v string) error { c.Append = v; return nil }, func(c *Config) string { return c.Append }},
	{"CMDLINE", func(c *Config, v string) error { c.Cmdline = v; return nil }, func(c *Config) string { return c.Cmdline }},
	{"MARKER", setMarker, func(c *Config) string { return c.Marker }},
	{"ABORT_SECONDS", setAbort, func(c *Config) string { return strconv.Itoa(c.AbortSeconds) }},
	{"MAX_TRIES", intSetting("MAX_TRIES", DefaultMaxTries, 0, 100, func(c *Config) *int { return &c.MaxTries },
		"a number of hops from 0 to 100; write for example MAX_TRIES=3 (0 never stops hopping)"),
		func(c *Config) string { return strconv.Itoa(c.MaxTries) }},
	{"HEALTH_CMD", func(c *Config, v string) error { c.HealthCmd = v; return nil }, func(c *Config) string { return c.HealthCmd }},
	{"HEALTH_DEADLINE", intSetting("HEALTH_DEADLINE", DefaultHealthDeadline, 10, 86400, func(c *Config) *int { return &c.HealthDeadline },
		"a number of seconds from 10 to 86400; write for example HEALTH_DEADLINE=300"),
		func(c *Config) string { return strconv.Itoa(c.HealthDeadline) }},
	{"PANIC", intSetting("PANIC", DefaultPanic, 0, 3600, func(c *Config) *int { return &c.Panic },
		"a number of seconds from 0 to 3600; write for example PANIC=10 (0 adds no panic= parameter)"),
		func(c *Config) string { return strconv.Itoa(c.Panic) }},
	{"WATCHDOG", func(c *Config, v string) error {
		b, err := yesNoValue("WATCHDOG", v, true)
		c.Watchdog = b
		return err
	}, func(c *Config) string { return yesNo(c.Watchdog) }},
	{"KNOWN_GOOD", func(c *Config, v string) error {
		b, err := yesNoValue("KNOWN_GOOD", v, true)
		c.KnownGood = b
		return err
	}, func(c *Config) string { return yesNo(c.KnownGood) }},
	{"MODE", nil, nil},
	{"METRICS_DIR", setMetricsDir, func(c *Config) string { return c.MetricsDir }},
	{"REBOOT_PRELOAD", setPreload, func(c *Config) string { return c.Preload }},
}

// The values of REBOOT_PRELOAD.
const (
	PreloadAuto = "auto"
	PreloadYes  = "yes"
	PreloadNo   = "no"
)

func setPreload(c *Config, v string) error {
	switch strings.ToLower(v) {
	case "", PreloadAuto:
		c.Preload = PreloadAuto
	case PreloadYes, "true", "1":
		c.Preload = PreloadYes
	case PreloadNo, "false", "0":
		c.Preload = PreloadNo
	default:
		return fmt.Errorf("REBOOT_PRELOAD=%q is not auto, yes or no; write REBOOT_PRELOAD=auto (preload when the kernel and initrds take at most 1/32 of the RAM), yes or no", v)
	}
	return nil
}

// Keys lists the keys of /etc/default/kxboot, in the order Format writes
// them (the slots' SLOT_<NAME>_* keys come on top).
func Keys() []string {
	var ks []string
	for _, st := range settings {
		ks = append(ks, st.name)
	}
	return ks
}

func setMetricsDir(c *Config, v string) error {
	if v != "" && !strings.HasPrefix(v, "/") {
		return fmt.Errorf("METRICS_DIR=%q is not an absolute path; write for example METRICS_DIR=/var/lib/prometheus/node-exporter", v)
	}
	c.MetricsDir = v
	return nil
}

// format is how one kind of file is read.
type format struct {
	settings []setting
	enabled  bool // Enabled when the file does not say
	strict   bool // an unknown key is an error, not a warning
	what     string
}

var formats = map[string]format{
	Kxboot:  {settings: settings, enabled: true, strict: true, what: "kxboot"},
	Droplet: {settings: dropletSettings, what: "droplet-kernel"},
	Debian:  {settings: debianSettings, what: "kexec-tools"},
}

func setEnabled(c *Config, v string) error {
	b, err := yesNoValue("ENABLED", v, true)
	c.Enabled = b
	return err
}

// yesNoValue reads a yes/no setting; "" is the default.
func yesNoValue(key, v string, def bool) (bool, error) {
	switch strings.ToLower(v) {
	case "":
		return def, nil
	case "yes", "true", "1":
		return true, nil
	case "no", "false", "0":
		return false, nil
	}
	return def, fmt.Errorf("%s=%q is not yes or no; write %s=yes or %s=no", key, v, key, key)
}

// Defaults of the boot-counting settings.
const (
	// DefaultMaxTries unconfirmed hops in a row stop the chain boot.
	DefaultMaxTries = 3
	// DefaultHealthDeadline seconds after the hop, an unconfirmed kernel
	// has failed its try.
	DefaultHealthDeadline = 300
	// DefaultPanic is the panic=N the hop adds: a panicking kernel resets
	// the machine after 10 s, and the provider's kernel comes back.
	DefaultPanic = 10
)

// intSetting reads a whole number in [lo, hi] into the field at; "" is def.
func intSetting(key string, def, lo, hi int, at func(*Config) *int, want string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" {
			*at(c) = def
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%s=%q is not %s", key, v, want)
		}
		*at(c) = n
		return nil
	}
}

// defaults is the configuration of a machine whose file says nothing.
func defaults() Config {
	return Config{
		Format: Kxboot, Enabled: true, Values: map[string]string{}, Line: map[string]int{},
		AbortSeconds: DefaultAbortSeconds, MaxTries: DefaultMaxTries,
		HealthDeadline: DefaultHealthDeadline, Panic: DefaultPanic, Watchdog: true, KnownGood: true,
		Preload: PreloadAuto,
	}
}

// DefaultAbortSeconds is the abort window when the config does not set one:
// long enough to hit a key on a serial console, short enough not to slow
// every boot much.
const DefaultAbortSeconds = 5

func setAbort(c *Config, v string) error {
	if v == "" {
		c.AbortSeconds = DefaultAbortSeconds
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 600 {
		return fmt.Errorf("ABORT_SECONDS=%q is not a whole number of seconds from 0 to 600; write for example ABORT_SECONDS=5, or 0 to skip the wait", v)
	}
	c.AbortSeconds = n
	return nil
}

func setMarker(c *Config, v string) error {
	// The kernel's white space, its quote, and its "--" would all make the
	// marker something other than one parameter.
	bad := v == "--"
	for i := 0; i < len(v); i++ {
		bad = bad || strings.IndexByte(" \t\n\v\f\r\"\xa0", v[i]) >= 0
	}
	if bad {
		return fmt.Errorf("MARKER=%q is not a single kernel parameter; write one word such as MARKER=kxboot.chained=1", v)
	}
	c.Marker = v
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// warnf adds a warning about key, located at its line.
func (c *Config) warnf(key, f string, args ...any) {
	c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: ", c.Path, c.Line[key])+fmt.Sprintf(f, args...))
}

// Parse reads data, the contents of the file name, as format.
func Parse(name string, data []byte, formatName string) (*Config, error) {
	f, ok := formats[formatName]
	if !ok {
		return nil, fmt.Errorf("%s: unknown config format %q", name, formatName)
	}
	d := defaults()
	c := &d
	c.Path, c.Format, c.Enabled = name, formatName, f.enabled
	for n, line := range strings.Split(string(data), "\n") {
		key, val, ok, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n+1, err)
		}
		if !ok {
			continue
		}
		if find(f.settings, key) == nil && !(f.strict && IsSlotKey(key)) {
			if f.strict {
				return nil, fmt.Errorf("%s:%d: %s", name, n+1, unknown(key, f))
			}
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: %s is not a %s setting; kxboot ignores it", name, n+1, key, f.what))
		}
		c.Values[key] = val // a later line wins, as in a shell
		c.Line[key] = n + 1
	}
	for _, s := range f.settings {
		v, ok := c.Values[s.name]
		if !ok || s.set == nil {
			continue
		}
		if err := s.set(c, v); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, c.Line[s.name], err)
		}
	}
	if f.strict {
		if err := c.slots(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func find(ss []setting, key string) *setting {
	for i := range ss {
		if ss[i].name == key {
			return &ss[i]
		}
	}
	return nil
}

// unknown says that key is not a setting, and which one was likely meant.
func unknown(key string, f format) string {
	best, dist := "", 3
	for _, s := range f.settings {
		if d := Distance(strings.ToUpper(key), s.name); d < dist {
			best, dist = s.name, d
		}
	}
	if best != "" {
		return fmt.Sprintf("%s is not a %s setting; did you mean %s?", key, f.what, best)
	}
	names := make([]string, len(f.settings))
	for i, s := range f.settings {
		names[i] = s.name
	}
	return fmt.Sprintf("%s is not a %s setting; the settings are %s", key, f.what, strings.Join(names, ", "))
}

// Distance is the Levenshtein distance between a and b (for "did you
// mean" answers).
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// parseLine reads one line: ok is false for a blank line or a comment.
func parseLine(line string) (key, val string, ok bool, err error) {
	if strings.IndexByte(line, 0) >= 0 {
		return "", "", false, errors.New("the line holds a NUL byte; the file must be plain text")
	}
	if strings.HasSuffix(line, "\r") {
		return "", "", false, errors.New("the line ends in a carriage return (DOS line endings); convert the file with dos2unix")
	}
	s := strings.TrimLeft(line, " \t")
	if s == "" || s[0] == '#' {
		return "", "", false, nil
	}
	if rest, found := strings.CutPrefix(s, "export"); found && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		s = strings.TrimLeft(rest, " \t")
	}
	n := nameLen(s)
	if n == 0 || n == len(s) || s[n] != '=' {
		return "", "", false, fmt.Errorf("%s is not a KEY=value assignment; write it as KEY=value with no space around \"=\"", excerpt(s))
	}
	key = s[:n]
	val, err = parseValue(key, s[n+1:])
	return key, val, err == nil, err
}

// nameLen is the length of the shell variable name s starts with.
func nameLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return i
	}
	return len(s)
}

func excerpt(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%q...", s[:40])
	}
	return fmt.Sprintf("%q", s)
}

// parseValue reads the value of key from v, the rest of its line, as a shell
// would, refusing what a shell would evaluate.
func parseValue(key, v string) (string, error) {
	var b strings.Builder
	expansion := func(what string) error {
		return fmt.Errorf("the value of %s uses shell expansion (%s), which kxboot does not evaluate; write the value out", key, what)
	}
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == ' ' || c == '\t':
			rest := strings.TrimLeft(v[i:], " \t")
			if rest == "" || rest[0] == '#' {
				return b.String(), nil
			}
			if n := nameLen(rest); n > 0 && n < len(rest) && rest[n] == '=' {
				return "", errors.New("the line holds more than one assignment; put each KEY=value on its own line")
			}
			return "", fmt.Errorf("the value of %s has white space outside quotes; put the whole value in double quotes", key)
		case c == '\'':
			j := strings.IndexByte(v[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("the value of %s has an unclosed single quote; close it on the same line", key)
			}
			b.WriteString(v[i+1 : i+1+j])
			i += j + 2
		case c == '"':
			for i++; ; i++ {
				if i >= len(v) {
					return "", fmt.Errorf("the value of %s has an unclosed double quote; close it on the same line", key)
				}
				c := v[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
					i++
					c = v[i]
				} else if c == '$' {
					return "", expansion("$...")
				} else if c == '`' {
					return "", expansion("`...`")
				}
				b.WriteByte(c)
			}
		case c == '\\':
			if i+1 == len(v) {
				return "", fmt.Errorf("the value of %s ends in a backslash, which continues the line in a shell; put the value on one line", key)
			}
			b.WriteByte(v[i+1])
			i += 2
		case c == '$':
			return "", expansion("$...")
		case c == '`':
			return "", expansion("`...`")
		case c == '~' && (i == 0 || v[i-1] == ':'):
			return "", expansion("~")
		case strings.IndexByte(";&|<>()", c) >= 0:
			return "", fmt.Errorf("the value of %s uses shell syntax (%c), which kxboot does not run; put the value in single quotes", key, c)
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// Quote writes v as a double-quoted shell word that Parse and sh read back as v.
func Quote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if strings.IndexByte("\"\\$`", v[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

// Format writes c as the canonical /etc/default/kxboot: every kxboot key
// that is set, as KEY="value". A Config read from a recipe's file comes out
// in kxboot's own keys, which is how a machine moves to kxboot.
func Format(c *Config) (string, error) {
	var b strings.Builder
	b.WriteString("# kxboot settings, read without a shell: write values out, no $ or `.\n")
	own := c.Format == Kxboot || c.Format == ""
	for _, s := range settings {
		var v string
		switch {
		case s.get != nil:
			v = s.get(c)
			if v == "" && s.name != "ENABLED" {
				continue
			}
			if _, named := c.Line[s.name]; v == quietDefaults[s.name] && !named {
				continue
			}
		case own:
			var ok bool
			if v, ok = c.Values[s.name]; !ok {
				continue
			}
		default:
			continue
		}
		if strings.ContainsAny(v, "\n\x00") {
			return "", fmt.Errorf("the value of %s holds a newline or NUL byte, which %s cannot hold; remove it", s.name, Path)
		}
		fmt.Fprintf(&b, "%s=%s\n", s.name, Quote(v))
	}
	return b.String(), nil
}

// sources are the files Load looks for, first found wins: kxboot's own,
// then the recipes it replaces, so that moving to kxboot is one command.
var sources = []struct{ path, format string }{
	{Path, Kxboot},
	{"/etc/default/droplet-kernel", Droplet},
	{"/etc/default/kexec", Debian},
}

// Load reads the machine's config: /etc/default/kxboot, or else the file of
// a recipe kxboot replaces, or else the defaults.
func Load(fsys rootfs.FS) (*Config, error) {
	for i, src := range sources {
		real, ok, err := locate(fsys, src.path)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if err := fsys.Trusted(src.path); err != nil {
			if errors.Is(err, rootfs.ErrUntrusted) {
				return nil, fmt.Errorf("refusing the config: %w", err)
			}
			return nil, fmt.Errorf("checking %s: %w", src.path, err)
		}
		data, err := os.ReadFile(fsys.Path(real))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", src.path, err)
		}
		c, err := Parse(src.path, data, src.format)
		if err != nil {
			return nil, err
		}
		for _, other := range sources[i+1:] {
			if _, ok, _ := locate(fsys, other.path); ok {
				// Its recipe's init script may still be installed and hop too.
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s is ignored because %s exists; remove it, and its recipe, once kxboot works", other.path, src.path))
			}
		}
		return c, nil
	}
	c := defaults()
	return &c, nil
}

// locate follows p's links inside the root and says whether a file is
// there. A link to nothing is an error: the user meant a file to be read.
func locate(fsys rootfs.FS, p string) (string, bool, error) {
	real, err := fsys.Resolve(p)
	if err != nil {
		return "", false, fmt.Errorf("reading %s: %w", p, err)
	}
	_, err = os.Stat(fsys.Path(real))
	if err == nil {
		return real, true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("reading %s: %w", p, err)
	}
	dir, err := fsys.Resolve(path.Dir(p))
	if err == nil {
		if _, err := os.Lstat(fsys.Path(path.Join(dir, path.Base(p)))); err == nil {
			return "", false, fmt.Errorf("%s is a link to %s, which does not exist; fix the link or remove it", p, real)
		}
	}
	return "", false, nil
}
