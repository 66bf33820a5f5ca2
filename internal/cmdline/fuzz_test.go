package cmdline

import (
	"slices"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{debianGrub, fedoraBLS, droplet, scaleway, initArgs, spaces,
		"", `"`, `a="b c" -- "d e"`, `"--" x`, "=a=b", "a\xa0b", "x\x00y", `foo="`} {
		f.Add(s, "root", "/dev/vda1")
	}
	f.Fuzz(func(t *testing.T, s, key, value string) {
		c := Parse(s)
		if again := Parse(c.String()); !slices.Equal(again, c) {
			t.Fatalf("Parse(%q) = %q, but Parse of its String() = %q", s, c, again)
		}
		if plain(s) && c.String() != s {
			t.Fatalf("Parse(%q).String() = %q; want the input back", s, c.String())
		}
		for _, tok := range c {
			if tok == "" {
				t.Fatalf("Parse(%q) has an empty token: %q", s, c)
			}
		}
		init := slices.Clone(c.InitArgs())
		before := slices.Clone(c)
		if got := c.Set(key, value).InitArgs(); !slices.Equal(got, init) {
			t.Fatalf("Parse(%q).Set(%q, %q) changed init's arguments to %q; were %q", s, key, value, got, init)
		}
		if got := c.Remove(key).InitArgs(); !slices.Equal(got, init) {
			t.Fatalf("Parse(%q).Remove(%q) changed init's arguments to %q; were %q", s, key, got, init)
		}
		if got := c.RemoveMarkers(Markers(key)).InitArgs(); !slices.Equal(got, init) {
			t.Fatalf("Parse(%q).RemoveMarkers changed init's arguments to %q; were %q", s, got, init)
		}
		extra := Parse(value)
		a := c.Append(extra)
		if want := append(slices.Clone(init), extra.InitArgs()...); !slices.Equal(a.InitArgs(), want) {
			t.Fatalf("Parse(%q).Append(%q) has init arguments %q; want %q", s, value, a.InitArgs(), want)
		}
		if want := append(slices.Clone(c.Params()), extra.Params()...); !slices.Equal(a.Params(), want) {
			t.Fatalf("Parse(%q).Append(%q) has parameters %q; want %q", s, value, a.Params(), want)
		}
		if !slices.Equal(c, before) {
			t.Fatalf("an edit changed its receiver: %q; was %q", c, before)
		}
		if v, ok := c.Get(key); ok && !c.Has(key) || !ok && v != "" {
			t.Fatalf("Get and Has disagree on %q in %q", key, s)
		}
		_ = Validate(s)
	})
}

// plain says whether s is written the way String writes it: single spaces
// between tokens, no other white space, nothing at either end, no NUL.
func plain(s string) bool {
	if strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") || strings.Contains(s, "  ") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || (s[i] != ' ' && isSpace(s[i])) {
			return false
		}
	}
	return true
}
