package vhdx

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// sparseFile is a layouts.File made of 4 KiB pages, zero where absent, that
// fails the test on any read outside the file. VHDX places its structures
// at MiB offsets, so fuzz inputs describe files as pages rather than as
// whole multi-MiB byte strings.
type sparseFile struct {
	t     *testing.T
	size  int64
	pages map[int64][]byte
}

const page = 4096

// decodeSparse reads: u32 size in pages, then (u32 page index, u16 length,
// bytes) records.
func decodeSparse(t *testing.T, b []byte) *sparseFile {
	f := &sparseFile{t: t, pages: map[int64][]byte{}}
	if len(b) < 4 {
		return f
	}
	f.size = int64(binary.LittleEndian.Uint32(b)%(64<<20/page)) * page
	b = b[4:]
	for len(b) >= 6 {
		idx := int64(binary.LittleEndian.Uint32(b))
		n := int(binary.LittleEndian.Uint16(b[4:]))
		b = b[6:]
		n = min(n, len(b), page)
		if idx*page < f.size {
			p := make([]byte, page)
			copy(p, b[:n])
			f.pages[idx] = p
		}
		b = b[n:]
	}
	return f
}

func encodeSparse(file []byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32((len(file)+page-1)/page))
	zero := make([]byte, page)
	for off := 0; off < len(file); off += page {
		p := file[off:min(off+page, len(file))]
		if bytes.Equal(p, zero[:len(p)]) {
			continue
		}
		p = bytes.TrimRight(p, "\x00")
		out = binary.LittleEndian.AppendUint32(out, uint32(off/page))
		out = binary.LittleEndian.AppendUint16(out, uint16(len(p)))
		out = append(out, p...)
	}
	return out
}

func (f *sparseFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > f.size {
		f.t.Fatalf("read of %d bytes at %d outside a file of %d", len(p), off, f.size)
	}
	for done := 0; done < len(p); {
		pos := off + int64(done)
		pg, in := pos/page, int(pos%page)
		n := min(page-in, len(p)-done)
		if d, ok := f.pages[pg]; ok {
			copy(p[done:done+n], d[in:])
		} else {
			clear(p[done : done+n])
		}
		done += n
	}
	return len(p), nil
}
func (f *sparseFile) Size() int64  { return f.size }
func (f *sparseFile) Name() string { return "fuzz.vhdx" }
func (f *sparseFile) Close() error { return nil }

// checkDisk checks the invariants any opened disk keeps: extents tile the
// disk, non-Data reads as zeros, and reads agree whatever their split.
func checkDisk(t *testing.T, d layouts.Disk) {
	pos := int64(0)
	buf := make([]byte, 64<<10)
	bad := error(nil)
	err := layouts.Walk(d, 0, min(d.Size(), 1<<40), func(e layouts.Extent) error {
		if e.Off != pos || e.Len <= 0 {
			bad = fmt.Errorf("extent %+v at %d", e, pos)
			return bad
		}
		pos = e.End()
		if e.Kind == layouts.Data || e.Off > 4<<20 {
			return nil
		}
		n := min(e.Len, int64(len(buf)))
		if _, err := d.ReadAt(buf[:n], e.Off); err != nil {
			return nil
		}
		for _, c := range buf[:n] {
			if c != 0 {
				bad = fmt.Errorf("%v extent %+v reads non-zero", e.Kind, e)
				return bad
			}
		}
		return nil
	})
	if bad != nil {
		t.Fatal(bad)
	}
	if err != nil {
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

func FuzzVHDXOpen(f *testing.F) {
	data := make([]byte, 3*mib)
	copy(data[5000:], bytes.Repeat([]byte("vmfs"), 300))
	copy(data[2*mib+100:], bytes.Repeat([]byte("fuzz"), 300))
	for _, s := range []xspec{
		{data: data, blockSize: mib},
		{data: data, blockSize: mib, logical: 4096},
		{data: data, blockSize: mib, state: func(b int64) uint64 { return []uint64{stFullyPresent, stZero, stUnmapped}[b] }},
		{data: data, blockSize: mib, hasParent: true, linkage: "{" + (guid{1}).String() + "}", relPath: "p.vhdx",
			state: func(int64) uint64 { return stPartiallyPresent }, present: func(s int64) bool { return s%5 == 0 }},
		{data: data, blockSize: mib, logGUID: guid{1}, logEntry: true},
	} {
		f.Add(encodeSparse(buildX(s)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file := decodeSparse(t, b)
		var d layouts.Disk
		var err error
		if len(b) > 0 && b[0]&1 == 1 {
			d, err = openTop(file) // reach differencing disks' blocks
		} else {
			d, err = Open(file, &layouts.Env{})
		}
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

// TestSparseEncoding checks that fuzz seeds decode into images that open.
func TestSparseEncoding(t *testing.T) {
	data := make([]byte, 3*mib)
	copy(data[5000:], bytes.Repeat([]byte("vmfs"), 300))
	file := buildX(xspec{data: data, blockSize: mib})
	sf := decodeSparse(t, encodeSparse(file))
	d, err := openTop(sf)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, d.Size())
	if _, err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}
