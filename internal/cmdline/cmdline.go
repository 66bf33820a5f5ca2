// Package cmdline reads and edits a kernel command line the way the kernel
// itself splits it (lib/cmdline.c next_arg), keeping every token byte for
// byte, so that what kxboot hands to the next kernel is what the user wrote
// plus exactly the edits it made.
package cmdline

import (
	"fmt"
	"slices"
	"strings"
)

// Cmdline is a kernel command line as its raw tokens, quotes included.
type Cmdline []string

// DefaultMarker is the parameter kxboot adds to the command line of a kernel
// it chain boots, so that kernel knows not to hop again.
const DefaultMarker = "kxboot.chained=1"

// LegacyMarkers are the markers of the recipes people already run: the
// DigitalOcean init script ("kexeced") and Scaleway's initrd
// ("is_in_kexec=yes"). A kernel booted by one of them must not hop again
// either.
var LegacyMarkers = []string{"kexeced", "is_in_kexec=yes"}

// MaxLen is the longest command line the kernel takes: COMMAND_LINE_SIZE
// (2048 on x86 and arm64) less the terminating NUL.
const MaxLen = 2047

// Markers returns the markers that mean "already chained": own (DefaultMarker
// when empty) first, then LegacyMarkers.
func Markers(own string) []string {
	if own == "" {
		own = DefaultMarker
	}
	m := []string{own}
	for _, l := range LegacyMarkers {
		if l != own {
			m = append(m, l)
		}
	}
	return m
}

// isSpace is the kernel's isspace(): the ASCII white space and, from its
// Latin-1 table, 0xA0.
func isSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xa0
}

// Parse splits a command line into tokens. Trailing white space (the newline
// of /proc/cmdline) is dropped first, so an unclosed quote does not swallow
// it; the kernel reads a string only up to a NUL, and so does Parse.
func Parse(s string) Cmdline {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	end := len(s)
	for end > 0 && isSpace(s[end-1]) {
		end--
	}
	s = s[:end]
	var c Cmdline
	for i := 0; i < len(s); {
		if isSpace(s[i]) {
			i++
			continue
		}
		start := i
		// Every double quote toggles quoting, wherever it is, as in next_arg.
		for quoted := false; i < len(s) && (quoted || !isSpace(s[i])); i++ {
			if s[i] == '"' {
				quoted = !quoted
			}
		}
		c = append(c, s[start:i])
	}
	return c
}

// String joins the tokens with single spaces.
func (c Cmdline) String() string { return strings.Join(c, " ") }

// split returns what the kernel makes of one token: the parameter name, its
// value, and whether there is a value at all. It follows next_arg exactly,
// including its quirks: a leading quote is dropped together with a trailing
// one, and an '=' as the very first character does not start a value.
func split(tok string) (key, val string, hasVal bool) {
	body := tok
	quoted := strings.HasPrefix(body, `"`)
	if quoted {
		body = body[1:]
	}
	eq := strings.IndexByte(body, '=')
	if eq == 0 {
		eq = strings.IndexByte(body[1:], '=')
		if eq >= 0 {
			eq++
		}
	}
	endQuote := strings.HasSuffix(body, `"`) // the kernel's args[i-1] == '"'
	if eq < 0 {
		key = body
	} else {
		key, val, hasVal = body[:eq], body[eq+1:], true
		if strings.HasPrefix(val, `"`) {
			val = val[1:]
			if endQuote {
				// The closing quote may be the opening one (foo=").
				if val != "" {
					val = val[:len(val)-1]
				}
				endQuote = false
			}
		}
	}
	if quoted && endQuote {
		if hasVal {
			val = val[:len(val)-1]
		} else {
			key = key[:len(key)-1]
		}
	}
	return key, val, hasVal
}

// Key returns a token's parameter name: what comes before its first '=',
// without quotes.
func Key(tok string) string {
	k, _, _ := split(tok)
	return k
}

// Value returns a token's value: what comes after its first '=', without the
// surrounding double quotes. It is false for a bare flag such as "quiet".
func Value(tok string) (string, bool) {
	_, v, ok := split(tok)
	return v, ok
}

// Quote writes key=value as the kernel reads it back: key="value" when the
// value holds white space. The kernel has no escape for a double quote, so a
// value holding one cannot always be written; Validate refuses the result.
func Quote(key, value string) string {
	for i := 0; i < len(value); i++ {
		// Bytes, not runes: the kernel splits inside UTF-8 at 0xA0 too.
		if isSpace(value[i]) {
			return key + `="` + value + `"`
		}
	}
	return key + "=" + value
}

// isSep says whether tok is the "--" that ends the kernel's parameters; the
// kernel strips quotes before it compares, so "\"--\"" is one too.
func isSep(tok string) bool {
	k, _, hasVal := split(tok)
	return k == "--" && !hasVal
}

// sep returns the index of the separator, or len(c) when there is none.
func (c Cmdline) sep() int {
	for i, t := range c {
		if isSep(t) {
			return i
		}
	}
	return len(c)
}

// Params returns the tokens before "--", the kernel's parameters. The result
// has no spare capacity, so appending to it never writes into c.
func (c Cmdline) Params() Cmdline {
	i := c.sep()
	return c[:i:i]
}

// InitArgs returns the tokens after "--", which the kernel hands to init, or
// nil when there is no "--".
func (c Cmdline) InitArgs() Cmdline {
	i := c.sep()
	if i == len(c) {
		return nil
	}
	return c[i+1:]
}

// tail returns the separator and what follows it (nil when there is none).
func (c Cmdline) tail() Cmdline { return c[c.sep():] }

// Get returns the value of the last key among the parameters, as the kernel
// lets the last one win. A bare flag gives "" and true.
func (c Cmdline) Get(key string) (string, bool) {
	p := c.Params()
	for i := len(p) - 1; i >= 0; i-- {
		if k, v, _ := split(p[i]); k == key {
			return v, true
		}
	}
	return "", false
}

// Has says whether key is among the parameters, with or without a value.
func (c Cmdline) Has(key string) bool {
	_, ok := c.Get(key)
	return ok
}

// Set returns a copy of c where key has the single value value: the first
// occurrence among the parameters is replaced, later ones dropped; if there
// was none, it is added at the end of the parameters, before "--".
func (c Cmdline) Set(key, value string) Cmdline {
	tok := Quote(key, value)
	out := make(Cmdline, 0, len(c)+1)
	done := false
	for _, t := range c.Params() {
		if Key(t) != key {
			out = append(out, t)
		} else if !done {
			out = append(out, tok)
			done = true
		}
	}
	if !done {
		out = append(out, tok)
	}
	return append(out, c.tail()...)
}

// Remove returns a copy of c without the parameters named by keys.
func (c Cmdline) Remove(keys ...string) Cmdline {
	return c.filter(func(t string) bool { return slices.Contains(keys, Key(t)) })
}

// filter returns a copy of c without the parameters drop says yes to; init's
// arguments are kept as they are.
func (c Cmdline) filter(drop func(tok string) bool) Cmdline {
	out := make(Cmdline, 0, len(c))
	for _, t := range c.Params() {
		if !drop(t) {
			out = append(out, t)
		}
	}
	return append(out, c.tail()...)
}

// Append returns c followed by extra: extra's parameters after c's and
// before "--", extra's init arguments after c's.
func (c Cmdline) Append(extra Cmdline) Cmdline {
	out := make(Cmdline, 0, len(c)+len(extra)+1)
	out = append(out, c.Params()...)
	out = append(out, extra.Params()...)
	switch {
	case c.sep() < len(c):
		out = append(out, c.tail()...)
		out = append(out, extra.InitArgs()...)
	case extra.sep() < len(extra):
		out = append(out, extra.tail()...)
	}
	return out
}

// isMarker says whether tok is the parameter marker, comparing as the kernel
// reads them, so is_in_kexec="yes" is is_in_kexec=yes.
func isMarker(tok, marker string) bool {
	tk, tv, th := split(tok)
	mk, mv, mh := split(marker)
	return tk == mk && tv == mv && th == mh
}

// HasMarker returns the first of markers that is one of the parameters.
// Markers are looked for anywhere, not only at the end of the line: a
// marker followed by something another tool appended still counts.
func (c Cmdline) HasMarker(markers []string) (string, bool) {
	for _, m := range markers {
		for _, t := range c.Params() {
			if isMarker(t, m) {
				return m, true
			}
		}
	}
	return "", false
}

// Chained returns the marker by which c says that its boot already came
// through a hop (own is the config's MARKER, "" for the default; legacy
// markers count too), and whether it does.
func (c Cmdline) Chained(own string) (string, bool) { return c.HasMarker(Markers(own)) }

// RemoveMarkers returns a copy of c without any of markers.
func (c Cmdline) RemoveMarkers(markers []string) Cmdline {
	return c.filter(func(t string) bool {
		return slices.ContainsFunc(markers, func(m string) bool { return isMarker(t, m) })
	})
}

// Reuse turns the running kernel's command line into the start of the next
// one: the boot loader's BOOT_IMAGE= and initrd= describe the running kernel,
// not the next, and the markers must not carry over.
func Reuse(running string, markers []string) Cmdline {
	return Parse(running).Remove("BOOT_IMAGE", "initrd").RemoveMarkers(markers)
}

// Validate checks that the kernel would take s as it is.
func Validate(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("the command line holds a NUL byte, which would end it early; remove it")
	}
	if strings.IndexByte(s, '\n') >= 0 {
		return fmt.Errorf("the command line holds a newline, which breaks every tool that reads /proc/cmdline; put it on one line")
	}
	if strings.Count(s, `"`)%2 != 0 {
		c := Parse(s)
		return fmt.Errorf("the command line has an unclosed double quote in %s; close it or remove it", short(c[len(c)-1]))
	}
	if len(s) > MaxLen {
		return fmt.Errorf("the command line is %d bytes; the kernel accepts at most %d, so drop parameters it does not need", len(s), MaxLen)
	}
	return nil
}

// short quotes tok for a message, cut to a readable length.
func short(tok string) string {
	if len(tok) > 40 {
		return fmt.Sprintf("%q...", tok[:40])
	}
	return fmt.Sprintf("%q", tok)
}
