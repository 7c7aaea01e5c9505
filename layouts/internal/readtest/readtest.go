// Package readtest holds the harness shared by the read tests of the
// block-mapped formats (vhd, vhdx): source content with zero runs and
// holes, qemu-img as an oracle, and the reader contract checks.
package readtest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	corpusdir "github.com/vmfs/vmfs/internal/corpus"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/vmfs/vmfs/layouts"
)

// Corpus is where the shared corpus keeps its images.
var Corpus = corpusdir.Path("images")

// NeedQemu skips t when qemu-img is not installed.
func NeedQemu(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
}

// QemuImg runs qemu-img and returns its output; failing fails t.
func QemuImg(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("qemu-img", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("qemu-img %s: %v: %s%s", strings.Join(args, " "), err, errb.String(), out.String())
	}
	return out.String()
}

// Content makes size bytes of known content: random runs, zero runs and
// runs left as holes when written sparse (marked in holes).
func Content(size int64, seed int64) (data []byte, holes [][2]int64) {
	r := rand.New(rand.NewSource(seed))
	data = make([]byte, size)
	for off := int64(0); off < size; {
		n := min(int64(r.Intn(700_000)+1000), size-off)
		switch r.Intn(3) {
		case 0:
			r.Read(data[off : off+n])
		case 1: // zeros written
		case 2:
			holes = append(holes, [2]int64{off, n})
		}
		off += n
	}
	return data, holes
}

// WriteRaw writes data to path, leaving holes unwritten.
func WriteRaw(t testing.TB, path string, data []byte, holes [][2]int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	pos := int64(0)
	for _, h := range append(holes, [2]int64{int64(len(data)), 0}) {
		if h[0] > pos {
			if _, err := f.WriteAt(data[pos:h[0]], pos); err != nil {
				t.Fatal(err)
			}
		}
		pos = h[0] + h[1]
	}
}

// Dump reads d whole, in odd-sized pieces, into a raw file.
func Dump(t testing.TB, d layouts.Disk, path string) []byte {
	t.Helper()
	out := make([]byte, d.Size())
	step := 3<<20 + 4096 + 512 + 7
	for off := 0; off < len(out); off += step {
		end := min(off+step, len(out))
		n, err := d.ReadAt(out[off:end], int64(off))
		if n != end-off || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", off, end-off, n, err)
		}
	}
	if path != "" {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

type mapEntry struct {
	Start, Length int64
	Data, Zero    bool
}

// CheckMap compares d's Data extents with qemu-img map's data ranges.
func CheckMap(t *testing.T, d layouts.Disk, img, format string) {
	t.Helper()
	var qm []mapEntry
	if err := json.Unmarshal([]byte(QemuImg(t, "map", "--output=json", "-f", format, img)), &qm); err != nil {
		t.Fatal(err)
	}
	for _, m := range qm {
		exts, err := d.Extents(m.Start, m.Length)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range exts {
			if (e.Kind == layouts.Data) != m.Data {
				t.Errorf("extent %+v, qemu-img map says data=%v for [%d,+%d)", e, m.Data, m.Start, m.Length)
			}
		}
	}
}

// CheckExtents checks extents cover [0,size) in order and that non-Data
// extents read as zeros.
func CheckExtents(t *testing.T, d layouts.Disk, got []byte) {
	t.Helper()
	pos := int64(0)
	err := layouts.Walk(d, 0, d.Size(), func(e layouts.Extent) error {
		if e.Off != pos || e.Len <= 0 {
			t.Fatalf("extent %+v at pos %d", e, pos)
		}
		if e.Kind != layouts.Data {
			for _, c := range got[e.Off:e.End()] {
				if c != 0 {
					t.Fatalf("extent %+v is %v but holds non-zero bytes", e, e.Kind)
				}
			}
		}
		pos = e.End()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pos != d.Size() {
		t.Fatalf("extents end at %d, size %d", pos, d.Size())
	}
}

// VirtualSizeOf is the virtual size qemu-img info reports for img.
func VirtualSizeOf(t *testing.T, img, format string) int64 {
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal([]byte(QemuImg(t, "info", "--output=json", "-f", format, img)), &info); err != nil {
		t.Fatal(err)
	}
	return info.VirtualSize
}

// Gunzip unpacks src to dst, skipping t when src is missing.
func Gunzip(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Skip(err)
	}
	defer in.Close()
	z, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, z); err != nil {
		t.Fatal(err)
	}
}

// TestReader runs iotest.TestReader over the last 64 KiB of d (the whole
// disk would take millions of tiny reads) and checks the EOF contract.
func TestReader(t *testing.T, d layouts.Disk, got []byte) {
	t.Helper()
	size := d.Size()
	off := max(0, size-64<<10)
	if err := iotest.TestReader(io.NewSectionReader(d, off, size-off), got[off:]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if n, err := d.ReadAt(buf, size-100); n != 100 || err != io.EOF {
		t.Fatalf("ReadAt across the end = %d, %v", n, err)
	}
	if n, err := d.ReadAt(buf, size); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at the end = %d, %v", n, err)
	}
	if n, err := d.ReadAt(buf, size-1000); n != 1000 || err != nil {
		t.Fatalf("ReadAt ending at the end = %d, %v", n, err)
	}
}

// CheckMapFile checks that every range d maps to a plain file (see
// layouts.MapFile) holds exactly the disk's bytes, got, walking d in
// pieces of step bytes; it returns how many bytes were mapped.
func CheckMapFile(t testing.TB, d layouts.Disk, got []byte, step int64) int64 {
	t.Helper()
	var mapped int64
	for off := int64(0); off < d.Size(); {
		n := min(step, d.Size()-off)
		r, ok := layouts.MapFile(d, off, n)
		if !ok {
			off += min(n, 4096)
			continue
		}
		if r.Len <= 0 || r.Len > n {
			t.Fatalf("MapFile(%d, %d) = %d bytes", off, n, r.Len)
		}
		buf := make([]byte, r.Len)
		if m, err := r.File.ReadAt(buf, r.Off); m != len(buf) {
			t.Fatalf("MapFile(%d, %d) = [%d,+%d) of %s: read %d: %v", off, n, r.Off, r.Len, r.File.Name(), m, err)
		}
		if !bytes.Equal(buf, got[off:off+r.Len]) {
			t.Fatalf("MapFile(%d, %d) = [%d,+%d) of %s: bytes differ from ReadAt", off, n, r.Off, r.Len, r.File.Name())
		}
		mapped += r.Len
		off += r.Len
	}
	return mapped
}

// MapFileConverted converts Content(size, seed), written sparse, to a
// qemu-img format with opts, opens it with open and checks its MapFile
// ranges with CheckMapFile for several piece sizes: some must map.
func MapFileConverted(t *testing.T, size, seed int64, format, opts string, open func(path string) (layouts.Disk, error)) {
	t.Helper()
	NeedQemu(t)
	dir := t.TempDir()
	data, holes := Content(size, seed)
	src := filepath.Join(dir, "src.raw")
	WriteRaw(t, src, data, holes)
	img := filepath.Join(dir, "img."+format)
	QemuImg(t, "convert", "-f", "raw", "-O", format, "-o", opts, src, img)
	d, err := open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := Dump(t, d, "")
	for _, step := range []int64{4096, 128<<10 + 512, 3 << 20} {
		if CheckMapFile(t, d, got, step) == 0 {
			t.Fatalf("step %d: nothing mapped", step)
		}
	}
}
