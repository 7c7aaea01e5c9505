package layouts_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/raw"
)

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// layer is an in-memory disk with explicit extents, for chain tests.
type layer struct {
	*layouts.Image
	kinds []layouts.Extent
}

func newLayer(t *testing.T, size int64, data map[int64][]byte, zeros [][2]int64) *layer {
	t.Helper()
	var segs []layouts.Segment
	var b layouts.Builder
	type run struct {
		off int64
		n   int64
		k   layouts.Kind
		d   []byte
	}
	var runs []run
	for off, d := range data {
		runs = append(runs, run{off, int64(len(d)), layouts.Data, d})
	}
	for _, z := range zeros {
		runs = append(runs, run{z[0], z[1], layouts.Zero, nil})
	}
	// sort by offset
	for i := range runs {
		for j := i + 1; j < len(runs); j++ {
			if runs[j].off < runs[i].off {
				runs[i], runs[j] = runs[j], runs[i]
			}
		}
	}
	pos := int64(0)
	for _, r := range runs {
		b.Add(pos, r.off-pos, layouts.Hole)
		b.Add(r.off, r.n, r.k)
		if r.k == layouts.Data {
			segs = append(segs, layouts.Segment{Off: r.off, Len: r.n, Kind: layouts.SegBytes, Bytes: r.d})
		}
		pos = r.off + r.n
	}
	b.Add(pos, size-pos, layouts.Hole)
	img, err := layouts.NewImage("mem", size, segs)
	if err != nil {
		t.Fatal(err)
	}
	return &layer{Image: img, kinds: b.Extents()}
}

func (l *layer) Extents(off, n int64) ([]layouts.Extent, error) {
	off, n, ok := layouts.Clip(l.Size(), off, n)
	if !ok {
		return nil, nil
	}
	var b layouts.Builder
	for _, e := range l.kinds {
		s, t := max(e.Off, off), min(e.End(), off+n)
		if s < t {
			b.Add(s, t-s, e.Kind)
		}
	}
	return b.Extents(), nil
}

func TestStack(t *testing.T) {
	parentData := randBytes(4096)
	topData := randBytes(1024)
	// Parent: 8 KiB with data at [0, 4 KiB). Top: 16 KiB with data at
	// [1 KiB, 2 KiB) and a zero extent at [3 KiB, 4 KiB).
	parent := newLayer(t, 8192, map[int64][]byte{0: parentData}, nil)
	top := newLayer(t, 16384, map[int64][]byte{1024: topData}, [][2]int64{{3072, 1024}})
	d := layouts.Stack(top, parent)

	want := make([]byte, 16384)
	copy(want, parentData)
	copy(want[1024:], topData)
	clear(want[3072:4096])
	got := make([]byte, 16384)
	if n, err := d.ReadAt(got, 0); n != 16384 || err != nil {
		t.Fatalf("ReadAt: %d %v", n, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("stacked content differs")
	}
	if err := iotest.TestReader(io.NewSectionReader(d, 0, d.Size()), want); err != nil {
		t.Fatal(err)
	}
	exts, err := d.Extents(0, 16384)
	if err != nil {
		t.Fatal(err)
	}
	wantExts := []layouts.Extent{
		{Off: 0, Len: 3072, Kind: layouts.Data},
		{Off: 3072, Len: 1024, Kind: layouts.Zero},
		{Off: 4096, Len: 12288, Kind: layouts.Hole},
	}
	if len(exts) != len(wantExts) {
		t.Fatalf("extents %v, want %v", exts, wantExts)
	}
	for i := range exts {
		if exts[i] != wantExts[i] {
			t.Fatalf("extents %v, want %v", exts, wantExts)
		}
	}
}

func TestImageReadAndExtents(t *testing.T) {
	a, b := randBytes(100), randBytes(5000)
	src := layouts.Bytes("src", randBytes(10000))
	img, err := layouts.NewImage("img", 20000, []layouts.Segment{
		{Off: 10, Len: 100, Kind: layouts.SegBytes, Bytes: a},
		{Off: 200, Len: 5000, Kind: layouts.SegGen, Gen: func(p []byte, rel int64) error { copy(p, b[rel:]); return nil }},
		{Off: 9000, Len: 3000, Kind: layouts.SegSource, Src: src, SrcOff: 8500}, // runs 1500 bytes past src's end
	})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 20000)
	copy(want[10:], a)
	copy(want[200:], b)
	srcBytes := make([]byte, 10000)
	src.ReadAt(srcBytes, 0)
	copy(want[9000:10500], srcBytes[8500:])
	if err := iotest.TestReader(io.NewSectionReader(img, 0, img.Size()), want); err != nil {
		t.Fatal(err)
	}
	exts, _ := img.Extents(0, 20000)
	var data int64
	for _, e := range exts {
		if e.Kind == layouts.Data {
			data += e.Len
		}
	}
	if data != 100+5000+3000 {
		t.Errorf("data %d in %v", data, exts)
	}
	// Past the end.
	if n, err := img.ReadAt(make([]byte, 10), 19995); n != 5 || err != io.EOF {
		t.Errorf("read at the end: %d %v", n, err)
	}
}

func TestNewImageRejectsOverlap(t *testing.T) {
	for _, tc := range []struct {
		name string
		segs []layouts.Segment
	}{
		{"overlap", []layouts.Segment{{Off: 0, Len: 10, Kind: layouts.SegGen}, {Off: 5, Len: 10, Kind: layouts.SegGen}}},
		{"past end", []layouts.Segment{{Off: 95, Len: 10, Kind: layouts.SegGen}}},
		{"bytes length", []layouts.Segment{{Off: 0, Len: 10, Kind: layouts.SegBytes, Bytes: []byte("x")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := layouts.NewImage("x", 100, tc.segs); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestMapFileThroughImage(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "d.raw")
	content := randBytes(1 << 20)
	os.WriteFile(p, content, 0o644)
	f, err := layouts.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	d := raw.New(f)
	defer d.Close()
	img, _ := layouts.NewImage("img", 4<<20, []layouts.Segment{
		{Off: 0, Len: 512, Kind: layouts.SegBytes, Bytes: make([]byte, 512)},
		{Off: 1 << 20, Len: 1 << 20, Kind: layouts.SegSource, Src: d, SrcOff: 0},
	})
	if _, ok := layouts.MapFile(img, 0, 512); ok {
		t.Error("generated bytes must not map to a file")
	}
	r, ok := layouts.MapFile(img, 1<<20+4096, 1<<20)
	if !ok || r.Off != 4096 || r.Len != 1<<20-4096 {
		t.Fatalf("map: %+v %v", r, ok)
	}
	buf := make([]byte, r.Len)
	r.File.ReadAt(buf, r.Off)
	if !bytes.Equal(buf, content[4096:]) {
		t.Fatal("mapped bytes differ")
	}
}

func TestResolvePolicy(t *testing.T) {
	root := t.TempDir()
	vm := filepath.Join(root, "vm")
	other := filepath.Join(root, "other")
	os.MkdirAll(vm, 0o755)
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(vm, "a.vmdk"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(other, "b.vmdk"), []byte("x"), 0o644)
	os.Symlink(filepath.Join(other, "b.vmdk"), filepath.Join(vm, "link.vmdk"))
	syscall.Mkfifo(filepath.Join(vm, "fifo"), 0o644)
	from := filepath.Join(vm, "vm.vmx")
	for _, tc := range []struct {
		name, ref string
		env       *layouts.Env
		want      string // "" for success, else a substring of the error
	}{
		{"same dir", "a.vmdk", nil, ""},
		{"dot dot", "../other/b.vmdk", nil, "outside"},
		{"absolute outside", filepath.Join(other, "b.vmdk"), nil, "outside"},
		{"symlink out", "link.vmdk", nil, "outside"},
		{"allowed dir", "../other/b.vmdk", &layouts.Env{AllowDirs: []string{other}}, ""},
		{"etc shadow", "../../../../../../etc/shadow", nil, "outside"},
		{"missing", "nothere.vmdk", nil, "missing"},
		{"fifo", "fifo", nil, "not a regular file"},
		{"device", "/dev/zero", &layouts.Env{AllowDirs: []string{"/dev"}}, "device"},
		{"nul byte", "a\x00b", nil, "NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.env.Resolve(from, tc.ref)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
		})
	}
}

func TestOpenParentLoop(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	os.WriteFile(a, []byte("x"), 0o644)
	env := &layouts.Env{}
	env.OpenDisk = func(path string, e *layouts.Env) (layouts.Disk, error) {
		return e.OpenParent(path, "a") // every disk names a as parent
	}
	_, err := env.OpenParent(a, "a")
	if err == nil || !strings.Contains(err.Error(), "loops") {
		t.Fatalf("got %v, want a loop error", err)
	}
	if !errors.Is(err, layouts.ErrFormat) {
		t.Errorf("loop error does not wrap ErrFormat: %v", err)
	}
}

func TestRawHoles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sparse.raw")
	f, _ := os.Create(p)
	f.Truncate(64 << 20)
	f.WriteAt(randBytes(1<<20), 8<<20)
	f.Close()
	lf, err := layouts.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	d := raw.New(lf)
	defer d.Close()
	alloc, err := layouts.Allocated(d)
	if err != nil {
		t.Fatal(err)
	}
	if alloc < 1<<20 || alloc > 2<<20 {
		t.Errorf("allocated %d, want about 1 MiB (file system holes)", alloc)
	}
}
