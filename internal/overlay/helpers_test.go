package overlay

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"golang.org/x/sys/unix"
)

// testBase builds a base image of the given size from a seed: random data
// pieces, zero-filled data pieces and holes, and returns it with its bytes.
func testBase(t testing.TB, size int64, seed uint64) (*layouts.Image, []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	content := make([]byte, size)
	var segs []layouts.Segment
	for pos := int64(0); pos < size; {
		n := min(size-pos, 1+r.Int64N(300<<10))
		switch r.IntN(3) {
		case 0: // hole
		case 1: // stored zeros
			segs = append(segs, layouts.Segment{Off: pos, Len: n, Kind: layouts.SegBytes, Bytes: make([]byte, n)})
		default:
			b := content[pos : pos+n]
			fill(r, b)
			segs = append(segs, layouts.Segment{Off: pos, Len: n, Kind: layouts.SegBytes, Bytes: b})
		}
		pos += n
	}
	img, err := layouts.NewImage("raw", size, segs)
	if err != nil {
		t.Fatal(err)
	}
	return img, content
}

func fill(r *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// refFile is a plain file that receives the same operations as an overlay
// file: the oracle.
type refFile struct {
	*os.File
}

func newRef(t testing.TB, content []byte) refFile {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "ref"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteAt(content, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(content))); err != nil {
		t.Fatal(err)
	}
	return refFile{f}
}

func (r refFile) punch(off, n int64) error {
	return unix.Fallocate(int(r.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

func (r refFile) bytes(t testing.TB) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(r.File, 0, 1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll reads the whole overlay file.
func readAll(t testing.TB, f *File) []byte {
	t.Helper()
	b := make([]byte, f.Size())
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if n != len(b) {
		t.Fatalf("read %d of %d bytes", n, len(b))
	}
	return b
}

// diffAt describes the first difference of two byte slices.
func diffAt(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("length %d, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at %d (block %d): got %#x want %#x", i, i>>blockShift, got[i], want[i])
		}
	}
	return ""
}

// checkSame compares an overlay file with the reference byte for byte,
// checks its Extents against its bytes, and runs iotest-like checks.
func checkSame(t testing.TB, f *File, ref refFile) {
	t.Helper()
	want := ref.bytes(t)
	if f.Size() != int64(len(want)) {
		t.Fatalf("size %d, want %d", f.Size(), len(want))
	}
	got := readAll(t, f)
	if !bytes.Equal(got, want) {
		t.Fatalf("content differs from reference: %s", diffAt(got, want))
	}
	checkExtents(t, f, got)
}

// checkExtents checks that Extents cover the file in order and that Zero
// and Hole extents read as zeros.
func checkExtents(t testing.TB, f *File, content []byte) {
	t.Helper()
	exts, err := f.Extents(0, f.Size())
	if err != nil {
		t.Fatal(err)
	}
	var pos int64
	for i, e := range exts {
		if e.Off != pos || e.Len <= 0 {
			t.Fatalf("extent %d %+v does not follow %d", i, e, pos)
		}
		if i > 0 && exts[i-1].Kind == e.Kind {
			t.Fatalf("extent %d %+v not merged with its neighbour", i, e)
		}
		if e.Kind != layouts.Data {
			for j := e.Off; j < e.End(); j++ {
				if content[j] != 0 {
					t.Fatalf("extent %+v is %v but byte %d is %#x", e, e.Kind, j, content[j])
				}
			}
		}
		pos = e.End()
	}
	if pos != f.Size() {
		t.Fatalf("extents end at %d, size %d", pos, f.Size())
	}
}
