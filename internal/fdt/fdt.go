// Package fdt reads, edits and writes flattened device tree blobs (the
// format of /sys/firmware/fdt, versions 16 and 17 of the devicetree
// specification), so that the arm64 kexec_load path can hand the running
// kernel's tree, with an edited /chosen, to the next kernel.
//
// Parse keeps nodes and properties in the order of the blob, and Marshal
// writes them back in that order with dtc's layout, so a blob that dtc made
// comes back byte for byte.
package fdt

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Region is one entry of the memory reservation block.
type Region struct {
	Addr, Size uint64
}

// Tree is a whole device tree: the root node, the memory reservation block
// and the header's boot_cpuid_phys.
type Tree struct {
	Root    *Node
	Reserve []Region
	BootCPU uint32
}

// Node is one node; Name is "" for the root and "name@unit" for the others.
type Node struct {
	Name     string
	Props    []Prop
	Children []*Node
}

// Prop is one property. Names must not contain NUL bytes.
type Prop struct {
	Name  string
	Value []byte
}

const (
	magic = 0xd00dfeed

	tokBeginNode = 1
	tokEndNode   = 2
	tokProp      = 3
	tokNop       = 4
	tokEnd       = 9

	headerV16 = 36 // through size_dt_strings
	headerV17 = 40 // plus size_dt_struct

	// maxDepth is the deepest nesting Linux unflattens (FDT_MAX_DEPTH in
	// drivers/of/fdt.c); the root is level 1.
	maxDepth = 64

	// shareLen bounds the names whose tails Marshal indexes for sharing
	// (spec names are at most 31 characters); longer ones are only shared
	// when equal, which keeps Marshal linear on hostile trees.
	shareLen = 64
)

func errorf(format string, args ...any) error {
	return fmt.Errorf("device tree: "+format, args...)
}

func be32(b []byte, off uint64) uint32 { return binary.BigEndian.Uint32(b[off:]) }
func be64(b []byte, off uint64) uint64 { return binary.BigEndian.Uint64(b[off:]) }

// align4 rounds up to a multiple of 4.
func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// Parse decodes a version 16 or 17 blob. Bytes after totalsize are ignored.
// Every value is copied: the tree does not share memory with b. It accepts
// what dtc and Linux accept although the specification frowns on it: NOP
// tokens, duplicate names, properties after a node's children (Marshal
// writes them before) and a named root (Marshal keeps the name). Nesting
// deeper than the 64 levels Linux unflattens is refused.
func Parse(b []byte) (*Tree, error) {
	if len(b) < 4 {
		return nil, errorf("the blob is %d bytes long, too short to hold even the magic number", len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != magic {
		return nil, errorf("the magic number is %#08x, not %#08x: this is not a flattened device tree", m, uint32(magic))
	}
	if len(b) < headerV16 {
		return nil, errorf("the blob is %d bytes long, shorter than the %d-byte header: it is truncated", len(b), headerV16)
	}
	total := uint64(be32(b, 4))
	version, lastComp := be32(b, 20), be32(b, 24)
	if version < 16 {
		return nil, errorf("the blob is format version %d; only versions 16 and later are read", version)
	}
	if lastComp > 17 {
		return nil, errorf("the blob is only compatible back to format version %d; this reader knows version 17", lastComp)
	}
	hdr := uint64(headerV16)
	if version >= 17 {
		hdr = headerV17
	}
	if uint64(len(b)) < hdr {
		return nil, errorf("the blob is %d bytes long, shorter than the %d-byte version %d header: it is truncated", len(b), hdr, version)
	}
	if total > uint64(len(b)) {
		return nil, errorf("the header's totalsize is %d bytes but only %d bytes are there: the blob is truncated", total, len(b))
	}
	if total < hdr {
		return nil, errorf("the header's totalsize is %d bytes, less than the %d-byte header itself", total, hdr)
	}
	b = b[:total]
	offRsv, offStruct, offStrings := uint64(be32(b, 16)), uint64(be32(b, 8)), uint64(be32(b, 12))
	sizeStrings := uint64(be32(b, 32))
	if offRsv < hdr || offRsv > total {
		return nil, errorf("the memory reservation block offset %d lies outside the blob's %d bytes after the header", offRsv, total)
	}
	if offStruct < hdr || offStruct > total {
		return nil, errorf("the structure block offset %d lies outside the blob's %d bytes after the header", offStruct, total)
	}
	if offStruct%4 != 0 {
		return nil, errorf("the structure block offset %d is not a multiple of 4", offStruct)
	}
	sizeStruct := total - offStruct
	if version >= 17 {
		sizeStruct = uint64(be32(b, 36))
		if offStruct+sizeStruct > total {
			return nil, errorf("the structure block (offset %d, %d bytes) runs past the blob's %d bytes", offStruct, sizeStruct, total)
		}
	}
	if offStrings < hdr || offStrings+sizeStrings > total {
		return nil, errorf("the strings block (offset %d, %d bytes) lies outside the blob's %d bytes after the header", offStrings, sizeStrings, total)
	}

	t := &Tree{BootCPU: be32(b, 28)}
	for off := offRsv; ; off += 16 {
		if off+16 > total {
			return nil, errorf("the memory reservation block at offset %d has no terminating zero entry before the end of the blob", offRsv)
		}
		r := Region{be64(b, off), be64(b, off+8)}
		if r == (Region{}) {
			break
		}
		t.Reserve = append(t.Reserve, r)
	}

	root, err := parseStruct(b[offStruct:offStruct+sizeStruct], b[offStrings:offStrings+sizeStrings])
	if err != nil {
		return nil, err
	}
	t.Root = root
	return t, nil
}

// parseStruct decodes the structure block s, whose property names index
// the strings block strs. It walks the tokens with an explicit stack.
func parseStruct(s, strs []byte) (*Node, error) {
	var root *Node
	var stack []*Node
	end := uint64(len(s))
	for pos := uint64(0); ; {
		if pos+4 > end {
			if len(stack) > 0 {
				return nil, errorf("node %s is not terminated: the structure block ends before its END_NODE token", pathOf(stack))
			}
			if root == nil {
				return nil, errorf("the structure block ends before any node")
			}
			return nil, errorf("the structure block ends without an END token")
		}
		at := pos
		tok := be32(s, pos)
		pos += 4
		switch tok {
		case tokNop:
		case tokBeginNode:
			if root != nil && len(stack) == 0 {
				return nil, errorf("a second top-level node begins at structure offset %d; a tree has one root", at)
			}
			name, ok := cstring(s[pos:])
			if !ok {
				return nil, errorf("the name of the node at structure offset %d is not NUL-terminated inside the structure block", at)
			}
			if len(stack) >= maxDepth {
				return nil, errorf("node %q at structure offset %d nests deeper than %d levels", name, at, maxDepth)
			}
			pos = align4(pos + uint64(len(name)) + 1)
			n := &Node{Name: name}
			if root == nil {
				root = n
			} else {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			}
			stack = append(stack, n)
		case tokEndNode:
			if len(stack) == 0 {
				return nil, errorf("the END_NODE token at structure offset %d closes no open node", at)
			}
			stack = stack[:len(stack)-1]
		case tokProp:
			if len(stack) == 0 {
				return nil, errorf("the property at structure offset %d lies outside any node", at)
			}
			if pos+8 > end {
				return nil, errorf("the property at structure offset %d is cut off by the end of the structure block", at)
			}
			size, nameOff := uint64(be32(s, pos)), uint64(be32(s, pos+4))
			pos += 8
			if size > end-pos {
				return nil, errorf("the property at structure offset %d claims %d bytes, past the end of the structure block", at, size)
			}
			if nameOff >= uint64(len(strs)) {
				return nil, errorf("the property at structure offset %d names string offset %d, outside the %d-byte strings block", at, nameOff, len(strs))
			}
			name, ok := cstring(strs[nameOff:])
			if !ok {
				return nil, errorf("the name of the property at structure offset %d (string offset %d) is not NUL-terminated inside the strings block", at, nameOff)
			}
			n := stack[len(stack)-1]
			n.Props = append(n.Props, Prop{name, append([]byte{}, s[pos:pos+size]...)})
			pos = align4(pos + size)
		case tokEnd:
			if len(stack) > 0 {
				return nil, errorf("node %s is not terminated: the END token at structure offset %d comes before its END_NODE", pathOf(stack), at)
			}
			if root == nil {
				return nil, errorf("the structure block has no root node")
			}
			return root, nil
		default:
			return nil, errorf("unknown token %#x at structure offset %d", tok, at)
		}
	}
}

// cstring returns the NUL-terminated string at the start of b.
func cstring(b []byte) (string, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), true
		}
	}
	return "", false
}

// pathOf names the innermost node of stack for error messages.
func pathOf(stack []*Node) string {
	var names []string
	for _, n := range stack[1:] {
		names = append(names, n.Name)
	}
	return fmt.Sprintf("%q", "/"+strings.Join(names, "/"))
}

// Marshal encodes the tree as a version 17 blob (last compatible version
// 16) laid out as dtc lays it out: header, the memory reservation block at
// offset 40 with its terminating entry, the structure block, then the
// strings block, with no free space. Property names are stored once, and a
// name that ends another one already stored points into it, as dtc does. A
// nil Root is written as an empty root node.
func (t *Tree) Marshal() []byte {
	w := writer{names: map[string]uint32{}}
	root := t.Root
	if root == nil {
		root = &Node{}
	}
	w.node(root)
	w.u32(tokEnd)

	offRsv := uint32(headerV17)
	offStruct := offRsv + 16*uint32(len(t.Reserve)+1)
	offStrings := offStruct + uint32(len(w.st))
	total := offStrings + uint32(len(w.strs))

	out := make([]byte, 0, total)
	for _, v := range []uint32{magic, total, offStruct, offStrings, offRsv, 17, 16,
		t.BootCPU, uint32(len(w.strs)), uint32(len(w.st))} {
		out = binary.BigEndian.AppendUint32(out, v)
	}
	for _, r := range t.Reserve {
		out = binary.BigEndian.AppendUint64(out, r.Addr)
		out = binary.BigEndian.AppendUint64(out, r.Size)
	}
	out = append(out, make([]byte, 16)...)
	out = append(out, w.st...)
	return append(out, w.strs...)
}

// writer accumulates the structure and strings blocks.
type writer struct {
	st, strs []byte
	names    map[string]uint32 // name (or short tail of one) -> offset in strs
}

func (w *writer) u32(v uint32) { w.st = binary.BigEndian.AppendUint32(w.st, v) }

// pad zero-fills the structure block to a multiple of 4.
func (w *writer) pad() {
	for len(w.st)%4 != 0 {
		w.st = append(w.st, 0)
	}
}

func (w *writer) node(n *Node) {
	w.u32(tokBeginNode)
	w.st = append(w.st, n.Name...)
	w.st = append(w.st, 0)
	w.pad()
	for _, p := range n.Props {
		w.u32(tokProp)
		w.u32(uint32(len(p.Value)))
		w.u32(w.name(p.Name))
		w.st = append(w.st, p.Value...)
		w.pad()
	}
	for _, c := range n.Children {
		if c != nil {
			w.node(c)
		}
	}
	w.u32(tokEndNode)
}

// name returns the strings block offset of s, adding s if no stored name
// ends with it. Names are added in first-use order, so the offset is the
// first place s appears, as dtc picks it.
func (w *writer) name(s string) uint32 {
	if off, ok := w.names[s]; ok {
		return off
	}
	off := uint32(len(w.strs))
	w.strs = append(w.strs, s...)
	w.strs = append(w.strs, 0)
	w.names[s] = off
	for i := max(1, len(s)-shareLen); i <= len(s); i++ {
		if _, ok := w.names[s[i:]]; !ok {
			w.names[s[i:]] = off + uint32(i)
		}
	}
	return off
}

// Lookup returns the node at path ("/", "/chosen", "/soc/uart@9000000"),
// matching whole node names, or nil. Empty path elements are ignored.
func (t *Tree) Lookup(path string) *Node {
	n := t.Root
	for _, name := range strings.Split(path, "/") {
		if n == nil {
			return nil
		}
		if name != "" {
			n = n.Child(name)
		}
	}
	return n
}

// Ensure returns the node at path, creating the missing nodes (and the
// root) at the end of their parents' children.
func (t *Tree) Ensure(path string) *Node {
	if t.Root == nil {
		t.Root = &Node{}
	}
	n := t.Root
	for _, name := range strings.Split(path, "/") {
		if name == "" {
			continue
		}
		c := n.Child(name)
		if c == nil {
			c = &Node{Name: name}
			n.Children = append(n.Children, c)
		}
		n = c
	}
	return n
}

// Child returns the direct child named name (with its unit address), or nil.
func (n *Node) Child(name string) *Node {
	for _, c := range n.Children {
		if c != nil && c.Name == name {
			return c
		}
	}
	return nil
}

func (n *Node) find(name string) int {
	for i := range n.Props {
		if n.Props[i].Name == name {
			return i
		}
	}
	return -1
}

// Get returns the value of the first property named name.
func (n *Node) Get(name string) ([]byte, bool) {
	if i := n.find(name); i >= 0 {
		return n.Props[i].Value, true
	}
	return nil, false
}

// Set replaces the value of the property named name where it stands, or
// appends the property. The node keeps a copy of v.
func (n *Node) Set(name string, v []byte) {
	v = append([]byte{}, v...)
	if i := n.find(name); i >= 0 {
		n.Props[i].Value = v
		return
	}
	n.Props = append(n.Props, Prop{name, v})
}

// SetString sets a NUL-terminated string property.
func (n *Node) SetString(name, s string) { n.Set(name, append([]byte(s), 0)) }

// SetU64 sets a big-endian 64-bit property (two cells).
func (n *Node) SetU64(name string, v uint64) { n.Set(name, binary.BigEndian.AppendUint64(nil, v)) }

// SetU32 sets a big-endian 32-bit property (one cell).
func (n *Node) SetU32(name string, v uint32) { n.Set(name, binary.BigEndian.AppendUint32(nil, v)) }

// Delete removes every property named name and says whether there was one.
func (n *Node) Delete(name string) bool {
	kept := n.Props[:0]
	for _, p := range n.Props {
		if p.Name != name {
			kept = append(kept, p)
		}
	}
	found := len(kept) < len(n.Props)
	clear(n.Props[len(kept):])
	n.Props = kept
	return found
}

// U64 reads a property of one or two big-endian cells, the two sizes
// linux,initrd-start and linux,initrd-end come in.
func (n *Node) U64(name string) (uint64, bool) {
	v, ok := n.Get(name)
	switch {
	case !ok:
		return 0, false
	case len(v) == 4:
		return uint64(binary.BigEndian.Uint32(v)), true
	case len(v) == 8:
		return binary.BigEndian.Uint64(v), true
	}
	return 0, false
}
