package vdi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

type memFile struct {
	b    []byte
	name string // "fuzz.vdi" when empty
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.b).ReadAt(p, off)
}
func (m *memFile) Size() int64 { return int64(len(m.b)) }
func (m *memFile) Name() string {
	if m.name == "" {
		return "fuzz.vdi"
	}
	return m.name
}
func (m *memFile) Close() error { return nil }

// handMade builds a VDI by hand: 4 KiB blocks with 512 bytes of extra
// data before each, block map [1, free, zero, 0], and a size that ends
// inside the last block. It returns the image and the disk it holds.
func handMade() ([]byte, []byte) {
	const bs, extra, nblocks = 4096, 512, 4
	size := int64(3*bs + 1000)
	le := binary.LittleEndian
	img := make([]byte, 0x400+2*(bs+extra))
	copy(img, "<<< Oracle VM VirtualBox Disk Image >>>\n")
	le.PutUint32(img[0x40:], signature)
	le.PutUint32(img[0x44:], version11)
	le.PutUint32(img[0x48:], 0x190)
	le.PutUint32(img[0x4c:], typeNormal)
	le.PutUint32(img[0x154:], 0x200)
	le.PutUint32(img[0x158:], 0x400)
	le.PutUint64(img[0x170:], uint64(size))
	le.PutUint32(img[0x178:], bs)
	le.PutUint32(img[0x17c:], extra)
	le.PutUint32(img[0x180:], nblocks)
	le.PutUint32(img[0x184:], 2)
	for i, e := range []uint32{1, blockFree, blockZero, 0} {
		le.PutUint32(img[0x200+4*i:], e)
	}
	want := make([]byte, size)
	for i := range 2 { // stored block i holds the byte 0xa0+i
		data := img[0x400+i*(bs+extra):]
		for j := range extra {
			data[j] = 0xee // extra data is never part of the disk
		}
		for j := extra; j < bs+extra; j++ {
			data[j] = byte(0xa0 + i)
		}
	}
	for j := range bs { // virtual block 0 is stored block 1
		want[j] = 0xa1
	}
	for j := 3 * bs; j < int(size); j++ { // virtual block 3 is stored block 0
		want[j] = 0xa0
	}
	return img, want
}

func TestHandMade(t *testing.T) {
	img, want := handMade()
	d, err := Open(&memFile{b: img}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, d.Size())
	if n, err := d.ReadAt(got, 0); n != len(want) || (err != nil && err.Error() != "EOF") {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("wrong bytes")
	}
	exts, err := d.Extents(0, d.Size())
	if err != nil {
		t.Fatal(err)
	}
	wantExts := []layouts.Extent{
		{Off: 0, Len: 4096, Kind: layouts.Data},
		{Off: 4096, Len: 4096, Kind: layouts.Hole},
		{Off: 8192, Len: 4096, Kind: layouts.Zero},
		{Off: 12288, Len: 1000, Kind: layouts.Data},
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

// FuzzVDIOpen opens arbitrary bytes as VDI. It fails only on a broken
// invariant: a panic, extents that break the Disk contract, Zero or Hole
// ranges that do not read as zeros.
func FuzzVDIOpen(f *testing.F) {
	img, _ := handMade()
	f.Add(img)
	dir := f.TempDir()
	for i, b := range []builder{convert(64<<10+512, 1), convert(32<<10, 2, "-o", "static=on")} {
		sub := filepath.Join(dir, string(rune('a'+i)))
		os.Mkdir(sub, 0o755)
		data, err := os.ReadFile(b(f, sub))
		if err != nil {
			f.Fatal(err)
		}
		if len(data) < 1<<16 { // keep seeds small for minimization
			f.Add(data)
		}
	}
	// A differencing header: the hand-made image over a parent UUID.
	diff := append([]byte(nil), img...)
	binary.LittleEndian.PutUint32(diff[0x4c:], typeDiff)
	copy(diff[0x1a8:], "parent-uuid-0001")
	f.Add(diff)
	// Differencing images look for their parent next to the file: an
	// empty directory (and the seeds' directory above it, which holds no
	// VDI file itself), with an opener that fails.
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	env := &layouts.Env{OpenDisk: func(string, *layouts.Env) (layouts.Disk, error) {
		return nil, errors.New("no parent in fuzzing")
	}}
	f.Fuzz(func(t *testing.T, data []byte) {
		if d, err := Open(&memFile{b: data, name: filepath.Join(empty, "fuzz.vdi")}, env); err == nil {
			d.Close()
		}
		// The layer alone (a differencing image without its parent).
		d, err := open(&memFile{b: data})
		if err != nil {
			return
		}
		defer d.Close()
		n := min(d.Size(), 4<<20)
		exts, err := d.Extents(0, n)
		if err != nil {
			return
		}
		checkExtents(t, exts, 0, n)
		buf := make([]byte, min(n, 1<<20))
		if _, err := d.ReadAt(buf, 0); err != nil && int64(len(buf)) < d.Size() {
			return
		}
		for _, e := range exts {
			if e.Kind == layouts.Data || e.Off >= int64(len(buf)) {
				continue
			}
			seg := buf[e.Off:min(e.End(), int64(len(buf)))]
			if !bytes.Equal(seg, make([]byte, len(seg))) {
				t.Fatalf("%v extent %+v does not read as zeros", e.Kind, e)
			}
		}
	})
}
