package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b, uint8(0))
			f.Add(b, uint8(1))
			f.Add(b, uint8(2))
		}
	}
	for _, s := range []string{"KERNEL='a'\"b\\$\"c\\ d # e", "APPEND=\"x", "export  MODE=a#b", "KERNAL=1", "ENABLED=perhaps"} {
		f.Add([]byte(s), uint8(0))
	}
	names := []string{Kxboot, Droplet, Debian}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		format := names[int(which)%len(names)]
		c, err := Parse("/etc/default/x", data, format)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "/etc/default/x:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}

		// Every value, written back double-quoted, reads back the same.
		keys := make([]string, 0, len(c.Values))
		for k := range c.Values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(k + "=" + Quote(c.Values[k]) + "\n")
		}
		again, err := Parse("/etc/default/x", []byte(b.String()), format)
		if err != nil {
			t.Fatalf("re-emitted file %q: %v", b.String(), err)
		}
		if !reflect.DeepEqual(again.Values, c.Values) {
			t.Fatalf("re-emitted file reads as %q; want %q", again.Values, c.Values)
		}

		// Format writes a kxboot file that says the same.
		out, err := Format(c)
		if err != nil {
			t.Fatalf("Format(%+v): %v", c, err)
		}
		k, err := Parse(Path, []byte(out), Kxboot)
		if err != nil {
			t.Fatalf("Format wrote %q, which does not parse: %v", out, err)
		}
		if k.Enabled != c.Enabled || k.Kernel != c.Kernel || k.Append != c.Append || k.Cmdline != c.Cmdline || k.Marker != c.Marker {
			t.Fatalf("Format wrote %q, which reads as %+v; want %+v", out, k, c)
		}
		if format == Kxboot {
			if !slices.Equal(k.Initrd, c.Initrd) {
				t.Fatalf("Format wrote %q, whose INITRD reads as %q; want %q", out, k.Initrd, c.Initrd)
			}
			for _, s := range settings {
				if s.get == nil && k.Values[s.name] != c.Values[s.name] {
					t.Fatalf("Format wrote %q, whose %s reads as %q; want %q", out, s.name, k.Values[s.name], c.Values[s.name])
				}
			}
		}
		if again, _ := Format(k); again != out {
			t.Fatalf("Format is not stable:\n%s\nthen\n%s", out, again)
		}
	})
}
