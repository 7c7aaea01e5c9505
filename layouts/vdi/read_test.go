package vdi

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	corpusdir "github.com/vmfs/vmfs/internal/corpus"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/vmfs/vmfs/layouts"
)

const testSize = 5*1024*1024 + 7*512 // not a multiple of the 1 MiB block

func qemuImg(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("qemu-img", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("qemu-img %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// makeRaw writes a raw image of 4 KiB pieces of random data, written zeros
// and holes.
func makeRaw(t testing.TB, path string, size, seed int64) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < size; {
		n := min(int64(4096*(1+rng.Intn(64))), size-off)
		buf := make([]byte, n)
		switch rng.Intn(5) {
		case 0, 1:
			rng.Read(buf)
			if n > 1024 {
				z := rng.Int63n(n - 512)
				clear(buf[z : z+512])
			}
			f.WriteAt(buf, off)
		case 2:
			f.WriteAt(buf, off)
		}
		off += n
	}
}

func openPath(t testing.TB, path string) layouts.Disk {
	t.Helper()
	f, err := layouts.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(f, nil)
	if err != nil {
		f.Close()
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func openErr(path string) error {
	f, err := layouts.OpenFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	d, err := Open(f, nil)
	if err == nil {
		d.Close()
	}
	return err
}

// builder makes a test image in dir and returns its path.
type builder func(t testing.TB, dir string) string

func convert(size, seed int64, opts ...string) builder {
	return func(t testing.TB, dir string) string {
		src := filepath.Join(dir, "src.raw")
		makeRaw(t, src, size, seed)
		dst := filepath.Join(dir, "img.vdi")
		qemuImg(t, append(append([]string{"convert", "-f", "raw", "-O", "vdi"}, opts...), src, dst)...)
		return dst
	}
}

// patch edits the image b builds.
func patch(b builder, fn func(img []byte)) builder {
	return func(t testing.TB, dir string) string {
		p := b(t, dir)
		img, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fn(img)
		if err := os.WriteFile(p, img, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// zeroBlock marks the first allocated block of the map as a zero block.
func zeroBlock(img []byte) {
	off := binary.LittleEndian.Uint32(img[0x154:])
	n := binary.LittleEndian.Uint32(img[0x180:])
	for i := range n {
		e := img[off+4*i:]
		if binary.LittleEndian.Uint32(e) < blockZero {
			binary.LittleEndian.PutUint32(e, blockZero)
			return
		}
	}
}

func gunzipped(name string) builder {
	return func(t testing.TB, dir string) string {
		src := corpusdir.Path("images", name+".gz")
		f, err := os.Open(src)
		if err != nil {
			t.Fatal("corpus file missing")
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "corpus.vdi")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

var readCases = []struct {
	name  string
	build builder
}{
	{"static", convert(testSize, 2, "-o", "static=on")},
	{"dynamic-small", convert(100*1024+512, 3)},
	{"dynamic-empty", func(t testing.TB, dir string) string {
		p := filepath.Join(dir, "e.vdi")
		qemuImg(t, "create", "-q", "-f", "vdi", p, "3M")
		return p
	}},
	{"zero-block", patch(convert(testSize, 4), zeroBlock)},
	{"corpus-basic", gunzipped("fox-it__dissect.hypervisor__basic.vdi")},
}

func TestRead(t *testing.T) {
	t.Parallel()
	for _, tc := range readCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.build(t, t.TempDir())
			d := openPath(t, p)
			if d.Format() != Type {
				t.Fatalf("format %q", d.Format())
			}
			got := make([]byte, d.Size())
			if n, err := d.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt = %d, %v", n, err)
			}
			dir := t.TempDir()
			dump := filepath.Join(dir, "ours.raw")
			os.WriteFile(dump, got, 0o644)
			qemuImg(t, "compare", "-q", "-f", "raw", "-F", "vdi", dump, p)
			conv := filepath.Join(dir, "qemu.raw")
			qemuImg(t, "convert", "-f", "vdi", "-O", "raw", p, conv)
			want, _ := os.ReadFile(conv)
			if !bytes.Equal(got, want) {
				t.Fatal("bytes differ from qemu-img convert")
			}
			checkMap(t, p, d)
			off := max(0, d.Size()-300_000)
			if err := iotest.TestReader(io.NewSectionReader(d, off, d.Size()-off), want[off:]); err != nil {
				t.Fatal(err)
			}
			parallelReads(t, d, want)
		})
	}
}

type mapEntry struct {
	Start  int64 `json:"start"`
	Length int64 `json:"length"`
	Data   bool  `json:"data"`
}

// checkMap compares Data extents with qemu-img map's data flag.
func checkMap(t *testing.T, path string, d layouts.Disk) {
	t.Helper()
	var qm []mapEntry
	if err := json.Unmarshal([]byte(qemuImg(t, "map", "--output=json", "-f", "vdi", path)), &qm); err != nil {
		t.Fatal(err)
	}
	exts, err := d.Extents(0, d.Size())
	if err != nil {
		t.Fatal(err)
	}
	checkExtents(t, exts, 0, d.Size())
	for _, q := range qm {
		for _, e := range exts {
			lo, hi := max(e.Off, q.Start), min(e.End(), q.Start+q.Length)
			if lo < hi && (e.Kind == layouts.Data) != q.Data {
				t.Fatalf("[%d,%d): ours %v, qemu-img map %+v", lo, hi, e.Kind, q)
			}
		}
	}
}

func checkExtents(t testing.TB, exts []layouts.Extent, off, n int64) {
	t.Helper()
	pos := off
	for i, e := range exts {
		if e.Off != pos || e.Len <= 0 || (i > 0 && exts[i-1].Kind == e.Kind) {
			t.Fatalf("extent %d %+v breaks the contract (at %d)", i, e, pos)
		}
		pos = e.End()
	}
	if pos != off+n {
		t.Fatalf("extents end at %d, want %d", pos, off+n)
	}
}

func parallelReads(t testing.TB, d layouts.Disk, want []byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			buf := make([]byte, 3<<20)
			for range 100 {
				n := rng.Intn(len(buf)) + 1
				off := rng.Int63n(d.Size())
				m, _ := d.ReadAt(buf[:n], off)
				exp := want[off:min(off+int64(n), d.Size())]
				if m != len(exp) || !bytes.Equal(buf[:m], exp) {
					errs <- fmt.Errorf("ReadAt(%d, %d): wrong bytes", n, off)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestHostile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good, err := os.ReadFile(convert(testSize, 9)(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	}
	cases := []struct {
		name     string
		mutate   func([]byte) []byte
		sentinel error
		msg      string
		readErr  bool
	}{
		{"not-vdi", put32(0x40, 0x12345678), layouts.ErrWrongType, "no vdi signature", false},
		{"tiny", func(b []byte) []byte { return b[:10] }, layouts.ErrWrongType, "no vdi signature", false},
		{"truncated-header", func(b []byte) []byte { return b[:0x100] }, layouts.ErrFormat, "header truncated", false},
		{"version-1.0", put32(0x44, 0x00010000), layouts.ErrUnsupported, "version 1.0", false},
		{"differencing-no-parent", put32(0x4c, typeDiff), layouts.ErrFormat, "names no parent", false},
		{"undo", put32(0x4c, typeUndo), layouts.ErrUnsupported, "undo image", false},
		{"bad-type", put32(0x4c, 9), layouts.ErrFormat, "image type 9", false},
		{"block-size-zero", put32(0x178, 0), layouts.ErrFormat, "block size 0", false},
		{"block-size-odd", put32(0x178, 1000), layouts.ErrFormat, "block size 1000", false},
		{"blocks-absurd", put32(0x180, 0xffffffff), layouts.ErrFormat, "block map", false},
		{"disk-larger-than-blocks", put32(0x180, 1), layouts.ErrFormat, "does not fit", false},
		{"map-past-eof", put32(0x154, 0x7fffffff), layouts.ErrFormat, "block map at", false},
		{"data-past-eof", put32(0x158, 0x7fffffff), layouts.ErrFormat, "data offset", false},
		{"small-header", put32(0x48, 0x40), layouts.ErrFormat, "header size", false},
		{"entry-past-eof", func(b []byte) []byte {
			off := binary.LittleEndian.Uint32(b[0x154:])
			binary.LittleEndian.PutUint32(b[off+4:], 0x7ffffff0)
			return b
		}, layouts.ErrFormat, "points past end of file", true},
		{"file-truncated", func(b []byte) []byte { return b[:len(b)/2] }, layouts.ErrFormat, "past end of file", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.vdi")
			os.WriteFile(p, tc.mutate(append([]byte(nil), good...)), 0o644)
			var err error
			if tc.readErr {
				d := openPath(t, p)
				buf := make([]byte, d.Size())
				_, err = d.ReadAt(buf, 0)
				if err == nil || err == io.EOF {
					_, err = d.Extents(0, d.Size())
				}
			} else {
				err = openErr(p)
			}
			if err == nil || !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want %v mentioning %q", err, tc.sentinel, tc.msg)
			}
		})
	}
}
