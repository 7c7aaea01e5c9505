package vdi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/vmfs/vmfs/layouts"
)

// openDisk opens path as a VDI under env: the opener the tests give
// layouts.Env for parents.
func openDisk(path string, env *layouts.Env) (layouts.Disk, error) {
	f, err := layouts.OpenFile(path)
	if err != nil {
		return nil, err
	}
	d, err := Open(f, env)
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

func diffEnv(allow ...string) *layouts.Env {
	return &layouts.Env{OpenDisk: openDisk, AllowDirs: allow}
}

const (
	diffBlock = 1 << 20
	diffSize  = 5*diffBlock + 7*512 // 6 blocks, the last one partial
)

// makeBlocks writes a raw image of diffSize bytes: per 1 MiB block of
// pattern, 'D' random data with zero runs, 'p' a few random 4 KiB pieces
// in zeros, '.' nothing (a hole).
func makeBlocks(t testing.TB, path string, seed int64, pattern string) []byte {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	data := make([]byte, diffSize)
	for i, c := range pattern {
		lo := int64(i) * diffBlock
		if lo >= diffSize {
			break
		}
		blk := data[lo:min(lo+diffBlock, diffSize)]
		switch c {
		case 'D':
			rng.Read(blk)
			for range 4 * min(1, len(blk)/16384) {
				z := rng.Intn(len(blk) - 8192)
				clear(blk[z : z+4096+rng.Intn(4096)])
			}
		case 'p':
			if len(blk) < 16384 {
				rng.Read(blk[:512])
				break
			}
			for range 3 {
				z := rng.Intn(len(blk)/4096) * 4096
				rng.Read(blk[z : z+4096])
			}
		}
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// layer is one image of a test chain.
type layer struct {
	path string
	raw  []byte // content of the qemu-made image
	rawP string // its raw file
	id   [16]byte
	mod  [16]byte
}

// testUUID makes a distinct UUID from a label.
func testUUID(label string) [16]byte {
	var u [16]byte
	copy(u[:], fmt.Sprintf("%-16s", label))
	return u
}

// makeLayer converts a raw image of pattern into a VDI at path (made with
// qemu-img) and writes the documented header UUID fields: uuidCreate and
// uuidModify.
func makeLayer(t testing.TB, path string, seed int64, pattern string, opts ...string) *layer {
	t.Helper()
	raw := strings.TrimSuffix(path, filepath.Ext(path)) + ".raw"
	l := &layer{path: path, rawP: raw, raw: makeBlocks(t, raw, seed, pattern)}
	qemuImg(t, append(append([]string{"convert", "-f", "raw", "-O", "vdi"}, opts...), raw, path)...)
	l.id = testUUID("c-" + filepath.Base(path))
	l.mod = testUUID("m-" + filepath.Base(path))
	editHeader(t, path, func(h []byte) {
		copy(h[0x188:], l.id[:])
		copy(h[0x198:], l.mod[:])
	})
	return l
}

// makeDiff turns l into a differencing image over parent: image type 4,
// uuidLinkage = parent's uuidCreate, uuidParentModify = parent's
// uuidModify.
func makeDiff(t testing.TB, l, parent *layer) {
	t.Helper()
	editHeader(t, l.path, func(h []byte) {
		binary.LittleEndian.PutUint32(h[0x4c:], typeDiff)
		copy(h[0x1a8:], parent.id[:])
		copy(h[0x1b8:], parent.mod[:])
	})
}

// editHeader rewrites the header of the VDI at path in place.
func editHeader(t testing.TB, path string, fn func(h []byte)) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := make([]byte, headerSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		t.Fatal(err)
	}
	fn(h)
	if _, err := f.WriteAt(h, 0); err != nil {
		t.Fatal(err)
	}
}

// blockMap reads the block map of the VDI at path.
func blockMap(t testing.TB, path string) []uint32 {
	t.Helper()
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	off := le.Uint32(img[0x154:])
	n := le.Uint32(img[0x180:])
	m := make([]uint32, n)
	for i := range m {
		m[i] = le.Uint32(img[off+4*uint32(i):])
	}
	return m
}

// setEntry sets entry i of the block map of the VDI at path.
func setEntry(t testing.TB, path string, i int, v uint32) {
	t.Helper()
	mapOff := int64(binary.LittleEndian.Uint32(mustRead(t, path, 0x154, 4)))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	if _, err := f.WriteAt(b[:], mapOff+4*int64(i)); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t testing.TB, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// source says where block i of a chain's content comes from: the index of
// the layer (0 is the top) whose raw image holds it, or -1 for zeros.
func source(t testing.TB, chain []*layer, i int) int {
	for k, l := range chain {
		if k == len(chain)-1 { // the base: every entry is its own
			if blockMap(t, l.path)[i] == blockZero {
				return -1
			}
			return k
		}
		switch blockMap(t, l.path)[i] {
		case blockFree:
			continue
		case blockZero:
			return -1
		default:
			return k
		}
	}
	return -1
}

// expected assembles the chain's content in Go from the raw images and,
// independently, with dd; the two must agree (qemu-img compare).
func expected(t *testing.T, chain []*layer) []byte {
	t.Helper()
	dir := t.TempDir()
	want := make([]byte, diffSize)
	ddOut := filepath.Join(dir, "dd.raw")
	if err := os.WriteFile(ddOut, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(ddOut, diffSize); err != nil {
		t.Fatal(err)
	}
	for i := 0; int64(i)*diffBlock < diffSize; i++ {
		k := source(t, chain, i)
		if k < 0 {
			continue
		}
		lo := int64(i) * diffBlock
		copy(want[lo:min(lo+diffBlock, diffSize)], chain[k].raw[lo:])
		cmd := exec.Command("dd", "if="+chain[k].rawP, "of="+ddOut, "bs=1M", "count=1",
			fmt.Sprintf("skip=%d", i), fmt.Sprintf("seek=%d", i), "conv=notrunc", "status=none")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dd: %v: %s", err, out)
		}
	}
	exp := filepath.Join(dir, "expected.raw")
	if err := os.WriteFile(exp, want, 0o644); err != nil {
		t.Fatal(err)
	}
	qemuImg(t, "compare", "-q", "-f", "raw", "-F", "raw", exp, ddOut)
	return want
}

// chainCase builds a chain in dir and returns its layers, top first, and
// the env to open the top with.
type chainCase struct {
	name  string
	build func(t *testing.T, dir string) ([]*layer, *layouts.Env)
}

var chainCases = []chainCase{
	{"dynamic-parent", func(t *testing.T, dir string) ([]*layer, *layouts.Env) {
		p := makeLayer(t, filepath.Join(dir, "base.vdi"), 1, "DD.pDD")
		c := makeLayer(t, filepath.Join(dir, "child.vdi"), 2, "D..Dp.")
		makeDiff(t, c, p)
		return []*layer{c, p}, diffEnv()
	}},
	{"static-parent", func(t *testing.T, dir string) ([]*layer, *layouts.Env) {
		p := makeLayer(t, filepath.Join(dir, "base.vdi"), 3, "D.DpDD", "-o", "static=on")
		c := makeLayer(t, filepath.Join(dir, "child.vdi"), 4, ".D..D.")
		makeDiff(t, c, p)
		return []*layer{c, p}, diffEnv()
	}},
	{"three-deep", func(t *testing.T, dir string) ([]*layer, *layouts.Env) {
		b := makeLayer(t, filepath.Join(dir, "base.vdi"), 5, "DDDDDD")
		m := makeLayer(t, filepath.Join(dir, "mid.vdi"), 6, ".D.D.p")
		c := makeLayer(t, filepath.Join(dir, "top.vdi"), 7, "..D..D")
		makeDiff(t, m, b)
		makeDiff(t, c, m)
		return []*layer{c, m, b}, diffEnv()
	}},
	{"zero-blocks", func(t *testing.T, dir string) ([]*layer, *layouts.Env) {
		p := makeLayer(t, filepath.Join(dir, "base.vdi"), 8, "DDDDDD")
		c := makeLayer(t, filepath.Join(dir, "child.vdi"), 9, "D.D...")
		makeDiff(t, c, p)
		setEntry(t, c.path, 1, blockZero) // free → zero: parent data hidden
		setEntry(t, c.path, 2, blockZero) // allocated → zero
		setEntry(t, c.path, 5, blockZero) // the partial last block
		return []*layer{c, p}, diffEnv()
	}},
	{"stale-copy-first", func(t *testing.T, dir string) ([]*layer, *layouts.Env) {
		p := makeLayer(t, filepath.Join(dir, "base.vdi"), 14, "DDpDDD")
		c := makeLayer(t, filepath.Join(dir, "child.vdi"), 15, "D.D.D.")
		makeDiff(t, c, p)
		// A copy of the base with the same UUID, other content and another
		// modification UUID, sorted first: not the parent.
		stale := makeLayer(t, filepath.Join(dir, "a-copy.vdi"), 16, "DDDDDD")
		editHeader(t, stale.path, func(h []byte) {
			copy(h[0x188:], p.id[:])
			copy(h[0x198:], "older-modify-id!")
		})
		return []*layer{c, p}, diffEnv()
	}},
	{"vm-snapshots", func(t *testing.T, dir string) ([]*layer, *layouts.Env) {
		snap := filepath.Join(dir, "Snapshots")
		os.Mkdir(snap, 0o755)
		b := makeLayer(t, filepath.Join(dir, "base.vdi"), 10, "DpDDpD")
		m := makeLayer(t, filepath.Join(snap, "{mid}.vdi"), 11, "D....D")
		c := makeLayer(t, filepath.Join(snap, "{top}.vdi"), 12, ".D..p.")
		// Decoys: other VDIs of the VM, not in the chain.
		makeLayer(t, filepath.Join(dir, "other.vdi"), 13, "D.....")
		os.WriteFile(filepath.Join(snap, "junk.vdi"), []byte("not a vdi"), 0o644)
		makeDiff(t, m, b)
		makeDiff(t, c, m)
		return []*layer{c, m, b}, diffEnv(dir)
	}},
}

func TestDiffChain(t *testing.T) {
	t.Parallel()
	for _, tc := range chainCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			chain, env := tc.build(t, dir)
			want := expected(t, chain)
			used := map[int]bool{}
			for i := 0; int64(i)*diffBlock < diffSize; i++ {
				used[source(t, chain, i)] = true
			}
			for k := range chain {
				if !used[k] {
					t.Fatalf("no block comes from layer %d: the case tests too little", k)
				}
			}
			d, err := openDisk(chain[0].path, env)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Size() != diffSize || d.Format() != Type {
				t.Fatalf("size %d format %s", d.Size(), d.Format())
			}
			got := make([]byte, d.Size())
			if n, err := d.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt = %d, %v", n, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("bytes differ from the expected image")
			}
			ours := filepath.Join(t.TempDir(), "ours.raw")
			if err := os.WriteFile(ours, got, 0o644); err != nil {
				t.Fatal(err)
			}
			exp := filepath.Join(t.TempDir(), "exp.raw")
			os.WriteFile(exp, want, 0o644)
			qemuImg(t, "compare", "-q", "-f", "raw", "-F", "raw", ours, exp)

			checkChainExtents(t, d, chain, want)
			off := d.Size() - 300_000
			if err := iotest.TestReader(io.NewSectionReader(d, off, d.Size()-off), want[off:]); err != nil {
				t.Fatal(err)
			}
			parallelReads(t, d, want)
		})
	}
}

// checkChainExtents checks the chain's extents: the contract, zeros where
// they say Zero or Hole, and the top layer's own map: Hole exactly at
// its free blocks, Zero at its zero blocks.
func checkChainExtents(t *testing.T, d layouts.Disk, chain []*layer, want []byte) {
	t.Helper()
	exts, err := d.Extents(0, d.Size())
	if err != nil {
		t.Fatal(err)
	}
	checkExtents(t, exts, 0, d.Size())
	for _, e := range exts {
		if e.Kind != layouts.Data && !bytes.Equal(want[e.Off:e.End()], make([]byte, e.Len)) {
			t.Fatalf("%v extent %+v holds data", e.Kind, e)
		}
	}
	top := layouts.TopOf(d)
	bm := blockMap(t, chain[0].path)
	for i := 0; int64(i)*diffBlock < diffSize; i++ {
		lo := int64(i) * diffBlock
		te, err := top.Extents(lo, min(diffBlock, diffSize-lo))
		if err != nil {
			t.Fatal(err)
		}
		wantKind := layouts.Data
		switch bm[i] {
		case blockFree:
			wantKind = layouts.Hole
		case blockZero:
			wantKind = layouts.Zero
		}
		if len(te) != 1 || te[0].Kind != wantKind {
			t.Fatalf("top block %d: extents %v, want one %v", i, te, wantKind)
		}
	}
}

func TestDiffErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		build    func(t *testing.T, dir string) (string, *layouts.Env)
		sentinel error
		msg      string
	}{
		{"parent-missing", func(t *testing.T, dir string) (string, *layouts.Env) {
			p := makeLayer(t, filepath.Join(t.TempDir(), "elsewhere.vdi"), 1, "DDDDDD")
			c := makeLayer(t, filepath.Join(dir, "child.vdi"), 2, "D.....")
			makeLayer(t, filepath.Join(dir, "unrelated.vdi"), 3, "D.....")
			makeDiff(t, c, p)
			return c.path, diffEnv()
		}, fs.ErrNotExist, "not found next to it (looked in"},
		{"size-mismatch", func(t *testing.T, dir string) (string, *layouts.Env) {
			p := makeLayer(t, filepath.Join(dir, "base.vdi"), 1, "DDDDDD")
			c := makeLayer(t, filepath.Join(dir, "child.vdi"), 2, "D.....")
			editHeader(t, p.path, func(h []byte) { // a smaller parent
				binary.LittleEndian.PutUint64(h[0x170:], 4*diffBlock)
			})
			makeDiff(t, c, p)
			return c.path, diffEnv()
		}, layouts.ErrFormat, "differs from the size"},
		{"parent-modified", func(t *testing.T, dir string) (string, *layouts.Env) {
			p := makeLayer(t, filepath.Join(dir, "base.vdi"), 1, "DDDDDD")
			c := makeLayer(t, filepath.Join(dir, "child.vdi"), 2, "D.....")
			makeDiff(t, c, p)
			editHeader(t, p.path, func(h []byte) { copy(h[0x198:], "changed later!!!") })
			return c.path, diffEnv()
		}, layouts.ErrFormat, "was modified after"},
		{"loop", func(t *testing.T, dir string) (string, *layouts.Env) {
			a := makeLayer(t, filepath.Join(dir, "a.vdi"), 1, "D.....")
			b := makeLayer(t, filepath.Join(dir, "b.vdi"), 2, ".D....")
			makeDiff(t, a, b)
			makeDiff(t, b, a)
			return a.path, diffEnv()
		}, layouts.ErrFormat, "loops back"},
		{"self-loop", func(t *testing.T, dir string) (string, *layouts.Env) {
			a := makeLayer(t, filepath.Join(dir, "a.vdi"), 1, "D.....")
			makeDiff(t, a, a)
			return a.path, diffEnv()
		}, layouts.ErrFormat, "loops back"},
		{"same-uuid-copies", func(t *testing.T, dir string) (string, *layouts.Env) {
			// Copies of one differencing image naming itself: one open per
			// level, not every copy in turn.
			a := makeLayer(t, filepath.Join(dir, "a.vdi"), 1, "D.....")
			makeDiff(t, a, a)
			img, err := os.ReadFile(a.path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				os.WriteFile(filepath.Join(dir, fmt.Sprintf("copy%02d.vdi", i)), img, 0o644)
			}
			return filepath.Join(dir, "copy07.vdi"), diffEnv()
		}, layouts.ErrFormat, "loops back"},
		{"outside-allowed-dirs", func(t *testing.T, dir string) (string, *layouts.Env) {
			snap := filepath.Join(dir, "Snapshots")
			os.Mkdir(snap, 0o755)
			b := makeLayer(t, filepath.Join(dir, "base.vdi"), 1, "DDDDDD")
			c := makeLayer(t, filepath.Join(snap, "{top}.vdi"), 2, "D.....")
			makeDiff(t, c, b)
			return c.path, diffEnv() // the VM directory is not allowed
		}, layouts.ErrRefused, "allow their directory with --allow-path"},
		{"no-env", func(t *testing.T, dir string) (string, *layouts.Env) {
			p := makeLayer(t, filepath.Join(dir, "base.vdi"), 1, "DDDDDD")
			c := makeLayer(t, filepath.Join(dir, "child.vdi"), 2, "D.....")
			makeDiff(t, c, p)
			return c.path, nil
		}, layouts.ErrUnsupported, "no way to open its parent"},
		{"no-linkage", func(t *testing.T, dir string) (string, *layouts.Env) {
			c := makeLayer(t, filepath.Join(dir, "child.vdi"), 2, "D.....")
			editHeader(t, c.path, func(h []byte) { binary.LittleEndian.PutUint32(h[0x4c:], typeDiff) })
			return c.path, diffEnv()
		}, layouts.ErrFormat, "names no parent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, env := tc.build(t, t.TempDir())
			d, err := openDisk(path, env)
			if err == nil {
				d.Close()
				t.Fatal("opened")
			}
			msg := err.Error()
			if !errors.Is(err, tc.sentinel) || !strings.Contains(msg, tc.msg) || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "vdi: "+path) {
				t.Fatalf("error %q, want %v mentioning %q", msg, tc.sentinel, tc.msg)
			}
		})
	}
}

func BenchmarkDiffRead(b *testing.B) {
	dir := b.TempDir()
	p := makeLayer(b, filepath.Join(dir, "base.vdi"), 1, "DDDDDD")
	c := makeLayer(b, filepath.Join(dir, "child.vdi"), 2, "D.D.D.")
	makeDiff(b, c, p)
	d, err := openDisk(c.path, diffEnv())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		off := int64(i*len(buf)) % (d.Size() - int64(len(buf)))
		if _, err := d.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
}
