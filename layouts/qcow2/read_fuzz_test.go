package qcow2

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// memFile is a layouts.File over bytes.
type memFile struct {
	b    []byte
	name string
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.b).ReadAt(p, off)
}
func (m *memFile) Size() int64  { return int64(len(m.b)) }
func (m *memFile) Name() string { return m.name }
func (m *memFile) Close() error { return nil }

// FuzzQcow2Open opens arbitrary bytes as qcow2. It fails only on a broken
// invariant: a panic, extents that break the Disk contract, Zero or Hole
// ranges that do not read as zeros, or reads that disagree with each other.
func FuzzQcow2Open(f *testing.F) {
	dir := f.TempDir()
	// Small seeds: the fuzzer minimizes whole inputs.
	seeds := []builder{
		convertFrom(8<<10+512, 1, "-o", "cluster_size=512"),
		convertFrom(24<<10, 2, "-o", "compat=0.10,cluster_size=4096"),
		withIO(convertFrom(32<<10, 3, "-o", "cluster_size=16384,extended_l2=on"), "write -z 2048 1024"),
		convertFrom(24<<10, 4, "-c", "-o", "cluster_size=4096"),
		convertFrom(24<<10, 5, "-c", "-o", "cluster_size=4096,compression_type=zstd"),
		withIO(convertFrom(24<<10, 6, "-o", "cluster_size=4096"), "write -z 8192 8192"),
	}
	for i, b := range seeds {
		sub := filepath.Join(dir, string(rune('a'+i)))
		os.Mkdir(sub, 0o755)
		data, err := os.ReadFile(b(f, sub))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, p := range []string{
		filepath.Join(corpus, "kubevirt__containerized-data-importer__invalid-qcow-large-size.img"),
	} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mf := &memFile{b: data, name: "/nonexistent/fuzz.qcow2"}
		d, err := Open(mf, &layouts.Env{})
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
		m, err := d.ReadAt(buf, 0)
		if err != nil && m == len(buf) && int64(len(buf)) < d.Size() {
			t.Fatalf("ReadAt: %d bytes and error %v", m, err)
		}
		if err != nil {
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
		// Reading in two halves gives the same bytes.
		half := len(buf) / 2
		again := make([]byte, len(buf))
		if _, err := d.ReadAt(again[:half], 0); err != nil {
			t.Fatalf("second read: %v", err)
		}
		if _, err := d.ReadAt(again[half:], int64(half)); err != nil && int64(len(buf)) < d.Size() {
			t.Fatalf("second read: %v", err)
		}
		if !bytes.Equal(buf, again) {
			t.Fatal("two reads of the same range differ")
		}
	})
}
