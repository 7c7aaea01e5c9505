package vmdk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// memFile is an in-memory layouts.File that reports reads outside it.
type memFile struct {
	b       []byte
	name    string
	outside error
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m.b)) {
		m.outside = fmt.Errorf("read of %d bytes at %d outside a file of %d", len(p), off, len(m.b))
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (m *memFile) Size() int64  { return int64(len(m.b)) }
func (m *memFile) Name() string { return m.name }
func (m *memFile) Close() error { return nil }

// fuzzSeeds makes small images of each kind with qemu-img.
func fuzzSeeds(f *testing.F) {
	f.Add([]byte("# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 8 ZERO\nRW 16 FLAT \"x.vmdk\" 0\n"))
	// Hostile: a descriptor past the size vmfs reads, and one of
	// thousands of extents naming one file.
	head := "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
	f.Add([]byte(head + strings.Repeat("RW 1 ZERO\n", maxDescriptor/10+1)))
	f.Add([]byte(head + strings.Repeat("RW 1 ZERO\nRW 1 FLAT \"x.vmdk\" 0\n", 5000)))
	if _, err := exec.LookPath("qemu-img"); err != nil {
		return
	}
	dir := f.TempDir()
	src := filepath.Join(dir, "src.raw")
	makeRaw(f, src, 200<<10, 11)
	for _, sub := range []string{"monolithicSparse", "streamOptimized"} {
		img := filepath.Join(dir, sub+".vmdk")
		qemuImg(f, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, src, img)
		b := mustRead(f, img)
		f.Add(b)
		if sub == "streamOptimized" {
			f.Add(withFooter(b))
		}
	}
	cowd := filepath.Join(dir, "c.vmdk")
	buildCOWD(f, cowd, 600, 8, 3)
	f.Add(mustRead(f, cowd))
}

// FuzzOpen opens arbitrary bytes as a VMDK. Invariants: no panic, no read
// outside the file, holes and zeros read as zeros, reads either fill the
// buffer or fail, and the same bytes read twice are the same.
func FuzzOpen(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		mf := &memFile{b: data, name: "/nonexistent-vmfs-fuzz/fuzz.vmdk"}
		d, err := Open(mf, nil)
		if mf.outside != nil {
			t.Fatal(mf.outside)
		}
		if err != nil {
			if bytes.ContainsRune([]byte(err.Error()), '\n') {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		defer d.Close()
		if d.Size() < 0 {
			t.Fatalf("size %d", d.Size())
		}
		limit := min(d.Size(), 1<<20)
		buf := make([]byte, 64<<10)
		again := make([]byte, 64<<10)
		err = layouts.Walk(d, 0, limit, func(e layouts.Extent) error {
			if e.Len <= 0 || e.Off < 0 || e.End() > d.Size() {
				t.Fatalf("bad extent %+v for size %d", e, d.Size())
			}
			for off := e.Off; off < e.End(); off += int64(len(buf)) {
				n := min(int64(len(buf)), e.End()-off)
				got, err := d.ReadAt(buf[:n], off)
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				if int64(got) != n {
					t.Fatalf("short read %d of %d without error", got, n)
				}
				if e.Kind != layouts.Data && !allZero(buf[:n]) {
					t.Fatalf("%v extent %+v reads non-zero", e.Kind, e)
				}
				if _, err := d.ReadAt(again[:n], off); err != nil && !errors.Is(err, io.EOF) {
					t.Fatalf("second read fails: %v", err)
				}
				if !bytes.Equal(buf[:n], again[:n]) {
					t.Fatal("two reads differ")
				}
			}
			return nil
		})
		if mf.outside != nil {
			t.Fatal(mf.outside)
		}
		_ = err // a corrupt table found while reading is a fine answer
	})
}
