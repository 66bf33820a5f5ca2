package config

import "strings"

// The files of the recipes kxboot replaces, read the way their own scripts
// used them, so a machine keeps doing what it did when it moves to kxboot.

// dropletSettings are /etc/default/droplet-kernel's keys (the DigitalOcean
// init script): it hopped only when ENABLED was exactly "true", and a
// non-empty APPEND replaced /proc/cmdline instead of adding to it.
var dropletSettings = []setting{
	{name: "ENABLED", set: legacyEnabled("ENABLED", "droplet-kernel")},
	{name: "KERNEL_IMAGE", set: setLegacyKernel},
	{name: "INITRD", set: setLegacyInitrd},
	{name: "APPEND", set: legacyAppend("the droplet-kernel script")},
}

// debianSettings are /etc/default/kexec's keys (Debian's kexec-tools): the
// kexec-load script tests LOAD_KEXEC = "true", replaces /proc/cmdline with a
// non-empty APPEND, and with USE_GRUB_CONFIG=true takes kernel, initrd and
// command line from GRUB's default entry instead.
var debianSettings = []setting{
	{name: "LOAD_KEXEC", set: legacyEnabled("LOAD_KEXEC", "kexec-load")},
	{name: "KERNEL_IMAGE", set: unlessGrub(setLegacyKernel)},
	{name: "INITRD", set: unlessGrub(setLegacyInitrd)},
	{name: "APPEND", set: unlessGrub(legacyAppend("Debian's kexec-load script"))},
	{name: "USE_GRUB_CONFIG", set: useGrub},
	{name: "REUSE_CMDLINE"},
}

// legacyEnabled reads a recipe's on switch, which its script compared with
// "true" and nothing else.
func legacyEnabled(key, script string) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		c.Enabled = v == "true"
		if v != "true" && v != "false" && v != "" {
			c.warnf(key, "%s=%q is not \"true\", so the %s script did nothing; kxboot reads it as disabled too", key, v, script)
		}
		return nil
	}
}

func setLegacyKernel(c *Config, v string) error { c.Kernel = v; return nil }

// setLegacyInitrd reads INITRD as kxboot does, a list split at white space:
// the scripts passed "$INITRD" to kexec as one path, but none of their files
// names a path with white space in it, and kxboot's list could not hold one.
func setLegacyInitrd(c *Config, v string) error {
	c.Initrd = strings.Fields(v)
	return nil
}

func legacyAppend(script string) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		if v != "" {
			c.Cmdline = v
			c.warnf("APPEND", "APPEND replaced the running command line in %s, so kxboot reads it as CMDLINE; in %s write CMDLINE= for that, or APPEND= to add to the running one", script, Path)
		}
		return nil
	}
}

func grub(c *Config) bool { return c.Values["USE_GRUB_CONFIG"] == "true" }

func unlessGrub(set func(c *Config, v string) error) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		if grub(c) {
			return nil
		}
		return set(c, v)
	}
}

func useGrub(c *Config, v string) error {
	if v == "true" {
		c.warnf("USE_GRUB_CONFIG", "USE_GRUB_CONFIG=true made kexec-load boot GRUB's default entry, so kxboot ignores KERNEL_IMAGE, INITRD and APPEND and finds the default kernel itself")
	}
	return nil
}
