package vhd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// memFile is a layouts.File over bytes that fails the test on any read
// outside the file.
type memFile struct {
	t    *testing.T
	b    []byte
	name string
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		m.t.Fatalf("read of %d bytes at %d outside a file of %d", len(p), off, len(m.b))
	}
	return copy(p, m.b[off:]), nil
}
func (m *memFile) Size() int64  { return int64(len(m.b)) }
func (m *memFile) Name() string { return m.name }
func (m *memFile) Close() error { return nil }

// checkDisk checks the invariants any opened disk keeps: extents tile the
// disk, non-Data reads as zeros, and reads agree whatever their split.
func checkDisk(t *testing.T, d layouts.Disk) {
	const maxCheck = 4 << 20
	pos := int64(0)
	buf := make([]byte, 64<<10)
	err := layouts.Walk(d, 0, min(d.Size(), 1<<40), func(e layouts.Extent) error {
		if e.Off != pos || e.Len <= 0 {
			return fmt.Errorf("extent %+v at %d", e, pos)
		}
		pos = e.End()
		if e.Kind == layouts.Data || e.Off > maxCheck {
			return nil
		}
		n := min(e.Len, int64(len(buf)))
		if _, err := d.ReadAt(buf[:n], e.Off); err != nil {
			return nil // a corrupt block may fail to read: fine
		}
		for _, c := range buf[:n] {
			if c != 0 {
				return fmt.Errorf("%v extent %+v reads non-zero", e.Kind, e)
			}
		}
		return nil
	})
	if err != nil {
		if bytes.Contains([]byte(err.Error()), []byte("extent")) {
			t.Fatal(err)
		}
		return
	}
	n := min(d.Size(), 1<<20)
	whole := make([]byte, n)
	if _, err := d.ReadAt(whole, 0); err != nil && err.Error() != "EOF" {
		return
	}
	part := make([]byte, n)
	for off := int64(0); off < n; off += 4096 + 512 {
		end := min(off+4096+512, n)
		if _, err := d.ReadAt(part[off:end], off); err != nil && err.Error() != "EOF" {
			t.Fatalf("piece at %d fails after the whole read worked: %v", off, err)
		}
	}
	if !bytes.Equal(whole, part) {
		t.Fatal("reads disagree with their split")
	}
}

func FuzzVHDOpen(f *testing.F) {
	dir := f.TempDir()
	data, _ := content(12<<10, 1)
	for i, s := range []spec{
		{data: data, blockSize: 4096, diskType: diskDynamic},
		{data: data, blockSize: 8192, diskType: diskDynamic, present: func(s int64) bool { return s%3 == 0 }},
		{data: data, blockSize: 4096, diskType: diskDiff, parentRel: "p.vhd", parentID: [16]byte{1}},
	} {
		p := filepath.Join(dir, fmt.Sprint(i))
		writeSpec(f, p, s)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	fixed := append(make([]byte, 8192), make([]byte, 512)...)
	copy(fixed, data)
	putFooter(fixed[8192:], 8192, diskFixed, ^uint64(0), [16]byte{2})
	f.Add(fixed)
	f.Fuzz(func(t *testing.T, b []byte) {
		m := &memFile{t: t, b: b, name: "fuzz.vhd"}
		d, err := Open(m, &layouts.Env{})
		if err != nil {
			if bytes.ContainsRune([]byte(err.Error()), '\n') {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		defer d.Close()
		checkDisk(t, d)
	})
}
