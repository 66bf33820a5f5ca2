package fdt

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dumpDir, when set (go test ./internal/fdt/ -run TestDump -args
// -dump=DIR), receives Marshal's output for every test blob and edit, to be
// decoded with dtc -I dtb -O dts by hand (see testdata/README.md).
var dumpDir = flag.String("dump", "", "write marshaled test blobs to this directory")

// blob reads a file of testdata, gunzipping *.gz.
func blob(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func mustParse(t testing.TB, b []byte) *Tree {
	t.Helper()
	tr, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// diffTrees describes the first difference between a and b, or returns "".
func diffTrees(a, b *Tree) string {
	if a.BootCPU != b.BootCPU {
		return fmt.Sprintf("boot cpu %d != %d", a.BootCPU, b.BootCPU)
	}
	if fmt.Sprint(a.Reserve) != fmt.Sprint(b.Reserve) {
		return fmt.Sprintf("reserve %x != %x", a.Reserve, b.Reserve)
	}
	return diffNodes("/", a.Root, b.Root)
}

func diffNodes(path string, a, b *Node) string {
	if a == nil || b == nil {
		if a != b {
			return path + ": one node is nil"
		}
		return ""
	}
	if a.Name != b.Name {
		return fmt.Sprintf("%s: name %q != %q", path, a.Name, b.Name)
	}
	if len(a.Props) != len(b.Props) {
		return fmt.Sprintf("%s: %d props != %d", path, len(a.Props), len(b.Props))
	}
	for i := range a.Props {
		if a.Props[i].Name != b.Props[i].Name || !bytes.Equal(a.Props[i].Value, b.Props[i].Value) {
			return fmt.Sprintf("%s: prop %d %q=%x != %q=%x", path, i, a.Props[i].Name, a.Props[i].Value, b.Props[i].Name, b.Props[i].Value)
		}
	}
	if len(a.Children) != len(b.Children) {
		return fmt.Sprintf("%s: %d children != %d", path, len(a.Children), len(b.Children))
	}
	for i := range a.Children {
		if d := diffNodes(path+a.Children[i].Name+"/", a.Children[i], b.Children[i]); d != "" {
			return d
		}
	}
	return ""
}

func countNodes(n *Node) int {
	c := 1
	for _, k := range n.Children {
		c += countNodes(k)
	}
	return c
}

func TestParseTestdata(t *testing.T) {
	for _, tc := range []struct {
		file    string
		nodes   int
		bootCPU uint32
		reserve []Region
		path    string   // a node to look up
		props   []string // its property names, in order
	}{
		{"virt.dtb.gz", 56, 0, nil, "/chosen", []string{"stdout-path", "rng-seed", "kaslr-seed"}},
		{"virt-dtc.dtb", 56, 0, nil, "/memory@40000000", []string{"reg", "device_type"}},
		{"efistub.dtb", 2, 0, []Region{{0x13fff0000, 0x10000}}, "/chosen", []string{"bootargs",
			"linux,uefi-system-table", "linux,uefi-mmap-start", "linux,uefi-mmap-size",
			"linux,uefi-mmap-desc-size", "linux,uefi-mmap-desc-ver", "kaslr-seed"}},
		{"kdump.dtb", 3, 0, nil, "/chosen", []string{"bootargs", "linux,initrd-start", "linux,initrd-end",
			"linux,elfcorehdr", "linux,usable-memory-range", "kaslr-seed", "stdout-path"}},
		{"minimal.dtb", 2, 1, []Region{{0x40000000, 0x1000}, {0xbff00000, 0x100000}}, "/", []string{
			"#address-cells", "#size-cells", "compatible"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			tr := mustParse(t, blob(t, tc.file))
			if n := countNodes(tr.Root); n != tc.nodes {
				t.Errorf("%d nodes, want %d", n, tc.nodes)
			}
			if tr.Root.Name != "" {
				t.Errorf("root named %q", tr.Root.Name)
			}
			if tr.BootCPU != tc.bootCPU {
				t.Errorf("boot cpu %d, want %d", tr.BootCPU, tc.bootCPU)
			}
			if fmt.Sprint(tr.Reserve) != fmt.Sprint(tc.reserve) {
				t.Errorf("reserve %x, want %x", tr.Reserve, tc.reserve)
			}
			n := tr.Lookup(tc.path)
			if n == nil {
				t.Fatalf("no %s", tc.path)
			}
			var names []string
			for _, p := range n.Props {
				names = append(names, p.Name)
			}
			if strings.Join(names, " ") != strings.Join(tc.props, " ") {
				t.Errorf("%s props %q, want %q", tc.path, names, tc.props)
			}
		})
	}
}

func TestValues(t *testing.T) {
	virt := mustParse(t, blob(t, "virt.dtb.gz"))
	efi := mustParse(t, blob(t, "efistub.dtb"))
	kd := mustParse(t, blob(t, "kdump.dtb"))
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	for _, tc := range []struct {
		tree *Tree
		path string
		prop string
		want []byte
	}{
		{virt, "/memory@40000000", "reg", []byte{0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0}},
		{virt, "/memory@40000000", "device_type", []byte("memory\x00")},
		{virt, "/", "model", []byte("linux,dummy-virt\x00")},
		{virt, "/pl011@9000000", "compatible", []byte("arm,pl011\x00arm,primecell\x00")},
		{virt, "/chosen", "stdout-path", []byte("/pl011@9000000\x00")},
		{efi, "/", "#address-cells", u32(2)},
		{efi, "/chosen", "bootargs", []byte("console=ttyAMA0 root=/dev/vda2 ro\x00")},
		{efi, "/chosen", "linux,uefi-mmap-size", u32(0x1b30)},
		{efi, "/chosen", "linux,uefi-mmap-desc-size", u32(0x30)},
		{efi, "/chosen", "linux,uefi-mmap-desc-ver", u32(1)},
		{efi, "/chosen", "kaslr-seed", make([]byte, 8)},
		{kd, "/chosen", "linux,initrd-start", u32(0x48000000)},
	} {
		n := tc.tree.Lookup(tc.path)
		if n == nil {
			t.Errorf("no %s", tc.path)
			continue
		}
		got, ok := n.Get(tc.prop)
		if !ok || !bytes.Equal(got, tc.want) {
			t.Errorf("%s %s = %x %v, want %x", tc.path, tc.prop, got, ok, tc.want)
		}
	}
	if v, ok := virt.Lookup("/chosen").Get("rng-seed"); !ok || len(v) != 32 {
		t.Errorf("virt rng-seed %x", v)
	}
	for _, tc := range []struct {
		tree *Tree
		prop string
		want uint64
		ok   bool
	}{
		{efi, "linux,uefi-system-table", 0x13ffd0018, true},
		{efi, "linux,uefi-mmap-start", 0x13d8b3018, true},
		{efi, "linux,uefi-mmap-size", 0x1b30, true},
		{efi, "kaslr-seed", 0, true},
		{efi, "bootargs", 0, false}, // 35 bytes
		{efi, "linux,initrd-start", 0, false},
		{kd, "linux,initrd-start", 0x48000000, true},
		{kd, "linux,initrd-end", 0x48400000, true},
		{kd, "linux,elfcorehdr", 0, false}, // 16 bytes
	} {
		got, ok := tc.tree.Lookup("/chosen").U64(tc.prop)
		if got != tc.want || ok != tc.ok {
			t.Errorf("U64(%s) = %#x %v, want %#x %v", tc.prop, got, ok, tc.want, tc.ok)
		}
	}
}

// TestMarshalMatchesDtc checks Marshal against blobs dtc compiled from the
// committed sources. virt.dtb.gz is QEMU's own (libfdt) blob: that it comes
// out as dtc's compilation of dtc's decompilation of it shows that Parse
// read what dtc reads and Marshal writes what dtc writes.
func TestMarshalMatchesDtc(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"virt.dtb.gz", "virt-dtc.dtb"},
		{"virt-dtc.dtb", "virt-dtc.dtb"},
		{"efistub.dtb", "efistub.dtb"},
		{"efistub-kexec.dtb", "efistub-kexec.dtb"},
		{"kdump.dtb", "kdump.dtb"},
		{"kdump-kexec.dtb", "kdump-kexec.dtb"},
		{"minimal.dtb", "minimal.dtb"},
		{"minimal-kexec.dtb", "minimal-kexec.dtb"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got := mustParse(t, blob(t, tc.in)).Marshal()
			if want := blob(t, tc.want); !bytes.Equal(got, want) {
				t.Errorf("Marshal gives %d bytes that differ from %s (%d bytes)", len(got), tc.want, len(want))
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, f := range []string{"virt.dtb.gz", "virt-dtc.dtb", "efistub.dtb", "kdump.dtb", "minimal.dtb"} {
		t.Run(f, func(t *testing.T) {
			tr := mustParse(t, blob(t, f))
			m := tr.Marshal()
			checkLayout(t, m)
			again := mustParse(t, m)
			if d := diffTrees(tr, again); d != "" {
				t.Errorf("Parse(Marshal(t)) differs: %s", d)
			}
			if !bytes.Equal(again.Marshal(), m) {
				t.Error("Marshal is not stable across a round trip")
			}
		})
	}
}

// checkLayout checks the header of a marshaled blob against dtc's layout.
func checkLayout(t *testing.T, m []byte) {
	t.Helper()
	h := func(i int) uint32 { return binary.BigEndian.Uint32(m[4*i:]) }
	total, offStruct, offStrings, offRsv := h(1), h(2), h(3), h(4)
	sizeStrings, sizeStruct := h(8), h(9)
	switch {
	case h(0) != magic, h(5) != 17, h(6) != 16:
		t.Errorf("header magic %#x version %d/%d", h(0), h(5), h(6))
	case int(total) != len(m):
		t.Errorf("totalsize %d of a %d-byte blob", total, len(m))
	case offRsv != 40 || offStruct%8 != 0:
		t.Errorf("reservation block at %d, structure block at %d", offRsv, offStruct)
	case offStruct+sizeStruct != offStrings || offStrings+sizeStrings != total:
		t.Errorf("blocks %d+%d, %d+%d in %d bytes", offStruct, sizeStruct, offStrings, sizeStrings, total)
	case binary.BigEndian.Uint32(m[offStrings-4:]) != tokEnd:
		t.Error("structure block does not end with END")
	}
}

func TestEdits(t *testing.T) {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	for _, tc := range []struct {
		name, in, want string // want: a dtc-built blob, or "" to check only by reparsing
		edit           func(t *Tree)
		check          func(t *testing.T, c *Node)
	}{
		{"uefi", "efistub.dtb", "efistub-kexec.dtb", func(t *Tree) {
			c := t.Lookup("/chosen")
			c.SetString("bootargs", "console=ttyAMA0 root=/dev/vda2 ro kxboot.hop=1")
			c.SetU64("kaslr-seed", 0x0123456789abcdef)
			c.SetU64("linux,initrd-start", 0x48000000)
			c.SetU64("linux,initrd-end", 0x48a00000)
			c.Delete("linux,elfcorehdr")
			c.Delete("linux,usable-memory-range")
			c.Set("rng-seed", seed)
		}, func(t *testing.T, c *Node) {
			if v, _ := c.U64("linux,uefi-system-table"); v != 0x13ffd0018 {
				t.Errorf("uefi system table %#x", v)
			}
			if v, _ := c.U64("kaslr-seed"); v != 0x0123456789abcdef {
				t.Errorf("kaslr-seed %#x", v)
			}
		}},
		{"kdump", "kdump.dtb", "kdump-kexec.dtb", func(t *Tree) {
			c := t.Ensure("/chosen")
			c.SetString("bootargs", "console=ttyAMA0")
			c.SetU64("linux,initrd-start", 0x44000000)
			c.SetU64("linux,initrd-end", 0x44200000)
			if !c.Delete("linux,elfcorehdr") || !c.Delete("linux,usable-memory-range") {
				panic("kdump props missing")
			}
		}, func(t *testing.T, c *Node) {
			if v, ok := c.Get("linux,initrd-start"); !ok || len(v) != 8 {
				t.Errorf("initrd-start %x: not rewritten as u64", v)
			}
		}},
		{"no chosen", "minimal.dtb", "minimal-kexec.dtb", func(t *Tree) {
			if t.Lookup("/chosen") != nil {
				panic("minimal has /chosen")
			}
			c := t.Ensure("/chosen")
			c.SetString("bootargs", "console=ttyAMA0 root=/dev/vda2")
			c.SetU64("linux,initrd-start", 0x48000000)
			c.SetU64("linux,initrd-end", 0x48a00000)
		}, nil},
		{"virt without initrd", "virt.dtb.gz", "", func(t *Tree) {
			c := t.Lookup("/chosen")
			c.SetString("bootargs", "console=ttyAMA0")
			c.Delete("rng-seed")
			c.Delete("kaslr-seed")
			c.Delete("linux,initrd-start")
			c.Delete("linux,initrd-end")
			t.Lookup("/memory@40000000").SetU32("numa-node-id", 0)
		}, func(t *testing.T, c *Node) {
			var names []string
			for _, p := range c.Props {
				names = append(names, p.Name)
			}
			if got := strings.Join(names, " "); got != "stdout-path bootargs" {
				t.Errorf("chosen holds %s", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustParse(t, blob(t, tc.in))
			before := countNodes(tr.Root)
			tc.edit(tr)
			m := tr.Marshal()
			checkLayout(t, m)
			got := mustParse(t, m)
			if d := diffTrees(tr, got); d != "" {
				t.Errorf("reparsed edit differs: %s", d)
			}
			c := got.Lookup("/chosen")
			if c == nil {
				t.Fatal("no /chosen after the edit")
			}
			args, _ := c.Get("bootargs")
			if want, _ := tr.Lookup("/chosen").Get("bootargs"); !bytes.Equal(args, want) || args[len(args)-1] != 0 {
				t.Errorf("bootargs %q", args)
			}
			for _, p := range []string{"linux,elfcorehdr", "linux,usable-memory-range"} {
				if _, ok := c.Get(p); ok {
					t.Errorf("%s survived", p)
				}
			}
			if tc.check != nil {
				tc.check(t, c)
			}
			if tc.want != "" {
				if want := blob(t, tc.want); !bytes.Equal(m, want) {
					t.Errorf("edited blob (%d bytes) differs from %s (%d bytes)", len(m), tc.want, len(want))
				}
			} else if n := countNodes(got.Root); n != before {
				t.Errorf("%d nodes after the edit, %d before", n, before)
			}
		})
	}
}

func TestLookupEnsure(t *testing.T) {
	tr := mustParse(t, blob(t, "virt.dtb.gz"))
	for _, tc := range []struct {
		path, want string // want: name of the node found, "-" for nil
	}{
		{"/", ""},
		{"", ""},
		{"/chosen", "chosen"},
		{"/chosen/", "chosen"},
		{"/memory@40000000", "memory@40000000"},
		{"/memory", "-"},
		{"/intc@8000000/v2m@8020000", "v2m@8020000"},
		{"/intc@8000000/v2m", "-"},
		{"/nonexistent/chosen", "-"},
	} {
		n := tr.Lookup(tc.path)
		got := "-"
		if n != nil {
			got = n.Name
		}
		if got != tc.want {
			t.Errorf("Lookup(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
	if tr.Ensure("/chosen") != tr.Lookup("/chosen") || countNodes(tr.Root) != 56 {
		t.Error("Ensure of an existing node created one")
	}
	var empty Tree
	if empty.Lookup("/") != nil || empty.Lookup("/chosen") != nil {
		t.Error("Lookup in an empty tree found a node")
	}
	n := empty.Ensure("/a/b@1")
	n.SetU32("x", 7)
	if empty.Root == nil || empty.Lookup("/a/b@1") != n || n.Name != "b@1" {
		t.Fatal("Ensure did not build /a/b@1")
	}
	got := mustParse(t, empty.Marshal())
	if v, ok := got.Lookup("/a/b@1").U64("x"); !ok || v != 7 {
		t.Errorf("x = %d %v after a round trip", v, ok)
	}
	if b := (&Tree{}).Marshal(); mustParse(t, b).Root == nil {
		t.Error("an empty tree does not marshal to a root")
	}
}

func TestSetDelete(t *testing.T) {
	var n Node
	v := []byte{1, 2}
	n.Set("a", v)
	v[0] = 9
	if got, _ := n.Get("a"); got[0] != 1 {
		t.Error("Set keeps the caller's slice")
	}
	n.SetU32("b", 0x01020304)
	n.SetString("c", "hi")
	n.SetU64("a", 0x0102030405060708) // in place
	n.Set("b", nil)
	want := "a=0102030405060708 b= c=686900"
	var got []string
	for _, p := range n.Props {
		got = append(got, fmt.Sprintf("%s=%x", p.Name, p.Value))
	}
	if strings.Join(got, " ") != want {
		t.Errorf("props %s, want %s", strings.Join(got, " "), want)
	}
	if n.Delete("zz") {
		t.Error("Delete of a missing prop says it deleted")
	}
	n.Props = append(n.Props, Prop{"a", []byte{1}}) // a duplicate, as a blob may hold
	if !n.Delete("a") || len(n.Props) != 2 || n.Props[0].Name != "b" {
		t.Errorf("Delete left %v", n.Props)
	}
	if _, ok := n.Get("a"); ok {
		t.Error("a still there")
	}
}

// TestStringSharing checks that Marshal shares a name with the tail of an
// earlier one, as dtc does (linux,phandle then phandle).
func TestStringSharing(t *testing.T) {
	tr := &Tree{Root: &Node{Children: []*Node{
		{Name: "a", Props: []Prop{{"linux,phandle", []byte{0, 0, 0, 1}}}},
		{Name: "b", Props: []Prop{{"phandle", []byte{0, 0, 0, 2}}, {"x", nil}, {"", nil}}},
	}}}
	m := tr.Marshal()
	off, size := binary.BigEndian.Uint32(m[12:]), binary.BigEndian.Uint32(m[32:])
	if s := string(m[off : off+size]); s != "linux,phandle\x00x\x00" {
		t.Errorf("strings block %q", s)
	}
	if d := diffTrees(tr, mustParse(t, m)); d != "" {
		t.Error(d)
	}
}

// put32 returns a copy of b with the big-endian word at off set to v.
func put32(b []byte, off uint32, v uint32) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint32(b[off:], v)
	return b
}

func TestParseErrors(t *testing.T) {
	base := blob(t, "efistub.dtb")
	h := func(i int) uint32 { return binary.BigEndian.Uint32(base[4*i:]) }
	total, st, rsv := h(1), h(2), h(4)
	stEnd := st + h(9)
	// efistub.dtb's structure block: root BEGIN_NODE at st, its name at
	// st+4, the first property (#address-cells) at st+8 with its length at
	// st+12 and name offset at st+16; it ends with chosen's END_NODE, the
	// root's END_NODE and END.
	nest := func(levels int) []byte {
		tr := &Tree{Root: &Node{}}
		for n := tr.Root; levels > 1; levels-- {
			c := &Node{Name: "n"}
			n.Children = []*Node{c}
			n = c
		}
		return tr.Marshal()
	}
	nops := base
	for off := st + 8; off < st+24; off += 4 { // #address-cells
		nops = put32(nops, off, tokNop)
	}
	v16 := put32(put32(base, 20, 16), 36, 0xffffffff) // size_dt_struct ignored
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "too short to hold even the magic"},
		{"bad magic", put32(base, 0, 0xfeedd00d), "magic number is 0xfeedd00d"},
		{"not a dtb", []byte("\x7fELF\x02\x01\x01"), "not a flattened device tree"},
		{"truncated header", base[:30], "shorter than the 36-byte header"},
		{"truncated v17 header", base[:38], "shorter than the 40-byte version 17 header"},
		{"truncated blob", base[:len(base)-1], "only 456 bytes are there: the blob is truncated"},
		{"totalsize too big", put32(base, 4, total+8), "totalsize is 465 bytes but only 457"},
		{"totalsize too small", put32(base, 4, 20), "less than the 40-byte header"},
		{"old version", put32(base, 20, 3), "format version 3"},
		{"incompatible", put32(base, 24, 18), "compatible back to format version 18"},
		{"rsvmap in header", put32(base, 16, 8), "memory reservation block offset 8 lies outside"},
		{"rsvmap past end", put32(base, 16, total+1), "memory reservation block offset 458"},
		{"rsvmap unterminated", put32(base, 16, total-24), "has no terminating zero entry"},
		{"struct in header", put32(base, 8, 4), "structure block offset 4 lies outside"},
		{"struct past end", put32(base, 8, total+4), "structure block offset 461 lies outside"},
		{"struct unaligned", put32(base, 8, st+2), "not a multiple of 4"},
		{"struct size", put32(base, 36, total), "runs past the blob's 457 bytes"},
		{"strings past end", put32(base, 12, total), "strings block (offset 457"},
		{"strings size", put32(base, 32, total), "strings block"},
		{"strings in header", put32(base, 12, 0), "strings block (offset 0"},
		{"bad token", put32(base, st, 7), "unknown token 0x7 at structure offset 0"},
		{"bad token inside", put32(base, st+8, 0x10), "unknown token 0x10 at structure offset 8"},
		{"string offset", put32(base, st+16, h(8)), "names string offset"},
		{"string offset huge", put32(base, st+16, 0xfffffff0), "outside the"},
		{"string unterminated", put32(base, 32, h(8)-1), "is not NUL-terminated inside the strings block"},
		{"prop too long", put32(base, st+12, 0xffff), "claims 65535 bytes, past the end"},
		{"prop length overflow", put32(base, st+12, 0xfffffffd), "claims 4294967293 bytes"},
		{"prop cut off", put32(base, 36, 12), "is cut off"},
		{"unterminated node", put32(base, stEnd-8, tokNop), `node "/" is not terminated: the END token`},
		{"unterminated child", put32(put32(base, stEnd-12, tokNop), stEnd-8, tokNop), `node "/chosen" is not terminated`},
		{"struct ends in node", put32(base, 36, h(9)-12), `node "/chosen" is not terminated: the structure block ends`},
		{"no END", put32(base, 36, h(9)-4), "ends without an END token"},
		{"extra END_NODE", put32(base, stEnd-4, tokEndNode), "closes no open node"},
		{"second root", put32(base, stEnd-4, tokBeginNode), "second top-level node"},
		{"prop outside", put32(base, stEnd-4, tokProp), "outside any node"},
		{"no root", put32(base, st, tokEnd), "has no root node"},
		{"empty struct", put32(base, 36, 0), "ends before any node"},
		{"name unterminated", put32(base, 36, 48), "name of the node at structure offset 40 is not NUL-terminated"},
		{"too deep", nest(maxDepth + 1), "nests deeper than 64 levels"},
		{"deepest", nest(maxDepth), ""},
		{"v16 without size", v16, ""},
		{"v16 bad strings", put32(v16, 12, total+1), "strings block"},
		{"v16 short header", v16[:35], "shorter than the 36-byte header"},
		{"trailing bytes", append(bytes.Clone(base), 1, 2, 3), ""},
		{"NOPs", nops, ""},
		{"rsvmap at its terminator", put32(base, 16, rsv+16), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Parse(tc.b)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want == "":
				if tr.Root == nil {
					t.Error("no root")
				}
			case err == nil:
				t.Errorf("accepted, want an error with %q", tc.want)
			case !strings.HasPrefix(err.Error(), "device tree: ") || !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q, want one with %q", err, tc.want)
			}
		})
	}
}

// TestDump writes Marshal's output for the test blobs to -dump, or to a
// temporary directory, and checks it reads back.
func TestDump(t *testing.T) {
	dir := *dumpDir
	if dir == "" {
		dir = t.TempDir()
	}
	for _, f := range []string{"virt.dtb.gz", "efistub.dtb", "kdump.dtb", "minimal.dtb"} {
		m := mustParse(t, blob(t, f)).Marshal()
		name := strings.TrimSuffix(strings.TrimSuffix(f, ".gz"), ".dtb") + ".marshal.dtb"
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, m, 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, m) {
			t.Fatalf("%s does not read back: %v", path, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	ents, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".dtb") {
			f.Add(blob(f, e.Name()))
		}
	}
	// QEMU's own layout (reservation block at 0x30, free space after the
	// strings), cut down from its 1 MiB to the used bytes plus a little.
	virt := blob(f, "virt.dtb.gz")
	used := binary.BigEndian.Uint32(virt[12:]) + binary.BigEndian.Uint32(virt[32:]) + 64
	f.Add(put32(virt[:used], 4, used))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := Parse(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "device tree: ") {
				t.Fatalf("error without the prefix: %v", err)
			}
			return
		}
		m := tr.Marshal()
		again, err := Parse(m)
		if err != nil {
			t.Fatalf("Marshal of a parsed tree does not parse: %v", err)
		}
		if d := diffTrees(tr, again); d != "" {
			t.Fatalf("Parse(Marshal(t)) differs: %s", d)
		}
		if !bytes.Equal(again.Marshal(), m) {
			t.Fatal("Marshal is not stable")
		}
	})
}

// TestPropAfterChild parses a hand-made blob whose root has a property
// after its child node, which dtc and Linux accept.
func TestPropAfterChild(t *testing.T) {
	var st []byte
	for _, w := range []uint32{tokBeginNode, 0, tokNop, tokBeginNode, 'c' << 24, tokEndNode,
		tokProp, 4, 0, 0x2a, tokEndNode, tokEnd} {
		st = binary.BigEndian.AppendUint32(st, w)
	}
	strs := "p\x00"
	b := make([]byte, 56, 56+len(st)+len(strs))
	for i, v := range []uint32{magic, uint32(cap(b)), 56, uint32(56 + len(st)), 40, 17, 16, 3,
		uint32(len(strs)), uint32(len(st))} {
		binary.BigEndian.PutUint32(b[4*i:], v)
	}
	b = append(append(b, st...), strs...)
	tr := mustParse(t, b)
	if v, ok := tr.Root.U64("p"); !ok || v != 0x2a || tr.Lookup("/c") == nil || tr.BootCPU != 3 {
		t.Fatalf("parsed %+v", tr.Root)
	}
	if d := diffTrees(tr, mustParse(t, tr.Marshal())); d != "" {
		t.Error(d)
	}
}
