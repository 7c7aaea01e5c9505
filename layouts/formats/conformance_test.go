package formats_test

// The conformance suite: every format of the registry, and every variant
// it synthesizes, goes through the same checks, with qemu-img as the
// oracle. What is particular to a format (its structures, hostile
// headers, chains, options qemu-img takes) stays in its package's tests.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/formats"
	"github.com/vmfs/vmfs/layouts/internal/readtest"
	"github.com/vmfs/vmfs/layouts/internal/synthtest"
	"github.com/vmfs/vmfs/layouts/probe"
)

// variant is a format with one of its subformats: "" for the default, or
// one it names (qemu-img takes the same names, as -o subformat=).
type variant struct {
	f   layouts.Format
	sub string
}

func (v variant) String() string {
	if v.sub == "" {
		return v.f.Name
	}
	return v.f.Name + "/" + v.sub
}

// build synthesizes src in v; base names the files.
func (v variant) build(src layouts.Disk, base string) ([]layouts.TargetFile, error) {
	return v.f.Build(src, base, layouts.SynthOptions{Subformat: v.sub})
}

// variants lists every format of the registry with each of its
// subformats; written keeps the formats vmfs synthesizes only.
func variants(written bool) []variant {
	var out []variant
	for _, f := range formats.All() {
		if written && f.Synthesize == nil {
			continue
		}
		for _, sub := range append([]string{""}, f.Subformats...) {
			out = append(out, variant{f, sub})
		}
	}
	return out
}

// inexactMap lists the images whose allocation qemu-img map reports
// coarser than vmfs: qemu-img calls all of a flat extent or a fixed
// payload data, vmfs reports the file's holes. There the suite checks that
// what vmfs calls data qemu-img calls data too; CheckExtents checks that
// the rest reads as zeros.
var inexactMap = map[string]bool{
	"vmdk/monolithicFlat": true,
	"vhd/fixed":           true,
}

// qemuCannotProbe lists the images qemu-img info does not recognize
// without -f: a fixed VHD has a footer only, which qemu does not probe.
var qemuCannotProbe = map[string]bool{
	"vhd/fixed": true,
}

func openWith(t *testing.T, f layouts.Format, path string) layouts.Disk {
	t.Helper()
	file, err := layouts.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.Open(file, formats.Env(nil, probe.Open))
	if err != nil {
		file.Close()
		t.Fatalf("%s.Open %s: %v", f.Name, path, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestConformanceRead reads an image qemu-img made of each format and
// variant through the format's own Open and through probing, and checks it
// against qemu-img and the source: size (qemu-img info), bytes (qemu-img
// convert -O raw, and the source's), allocation (qemu-img map, and no more
// than the files hold), and the reader contract (Extents, iotest, parallel
// reads, the ranges MapFile hands out).
func TestConformanceRead(t *testing.T) {
	readtest.NeedQemu(t)
	t.Parallel()
	for i, v := range variants(false) {
		f, sub := v.f, v.sub
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			data, holes := readtest.Content(5_000_000, int64(i+1))
			src := filepath.Join(dir, "src.bin")
			readtest.WriteRaw(t, src, data, holes)
			img := filepath.Join(dir, "img"+suffix(f))
			args := []string{"convert", "-f", "raw", "-O", f.QEMUName()}
			if sub != "" {
				args = append(args, "-o", "subformat="+sub)
			}
			readtest.QemuImg(t, append(args, src, img)...)
			want := filepath.Join(dir, "want.bin")
			readtest.QemuImg(t, "convert", "-f", f.QEMUName(), "-O", "raw", img, want)
			wantBytes, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}

			d := openWith(t, f, img)
			if d.Format() != f.Name {
				t.Errorf("Format() = %q, want %q", d.Format(), f.Name)
			}
			if vs := readtest.VirtualSizeOf(t, img, f.QEMUName()); d.Size() != vs {
				t.Fatalf("size %d, qemu-img info says %d", d.Size(), vs)
			}
			got := readtest.Dump(t, d, "")
			if !bytes.Equal(got, wantBytes) {
				t.Fatal("bytes differ from qemu-img convert -O raw")
			}
			if !bytes.Equal(got[:min(len(got), len(data))], data[:min(len(got), len(data))]) || len(got) < len(data) || !allZero(got[len(data):]) {
				t.Fatal("bytes differ from the source's (padded with zeros to the virtual size)")
			}
			readtest.CheckExtents(t, d, got)
			extentsContract(t, d)
			if alloc, err := layouts.Allocated(d); err != nil {
				t.Fatal(err)
			} else if files := filesSize(t, dir, "img"); alloc > files {
				t.Errorf("allocated %d bytes, more than the %d of the image's files", alloc, files)
			}
			if inexactMap[v.String()] {
				dataWithin(t, d, img, f.QEMUName())
			} else {
				readtest.CheckMap(t, d, img, f.QEMUName())
			}
			readtest.TestReader(t, d, got)
			off := max(0, d.Size()-300_000)
			if err := iotest.TestReader(io.NewSectionReader(d, off, d.Size()-off), got[off:]); err != nil {
				t.Fatal(err)
			}
			synthtest.ParallelReads(t, d)
			// Images qemu-img writes store data plainly: some of it
			// maps to a file range, which must hold the disk's bytes.
			for _, step := range []int64{4096, 128<<10 + 512, 3 << 20} {
				if readtest.CheckMapFile(t, d, got, step) == 0 {
					t.Errorf("MapFile in pieces of %d: nothing mapped", step)
				}
			}

			p, err := probe.Open(img, nil)
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			defer p.Close()
			if p.Format() != f.Name {
				t.Errorf("probing found %q, want %q", p.Format(), f.Name)
			}
		})
	}
}

// extentsContract checks what Extents itself answers: contiguous extents
// in order, neighbours of different kinds, trimmed to the range asked.
func extentsContract(t *testing.T, d layouts.Disk) {
	t.Helper()
	size := d.Size()
	for _, r := range [][2]int64{{0, size}, {size/3 + 1, size / 3}, {size - 1000, 5000}} {
		exts, err := d.Extents(r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		pos, end := r[0], min(r[0]+r[1], size)
		for i, e := range exts {
			if e.Off != pos || e.Len <= 0 || (i > 0 && exts[i-1].Kind == e.Kind) {
				t.Fatalf("Extents(%d, %d): extent %d %+v breaks the contract (at %d)", r[0], r[1], i, e, pos)
			}
			pos = e.End()
		}
		if pos != end {
			t.Fatalf("Extents(%d, %d) ends at %d, want %d", r[0], r[1], pos, end)
		}
	}
}

// filesSize sums the sizes of the files in dir whose names start with
// prefix.
func filesSize(t *testing.T, dir, prefix string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			st, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			sum += st.Size()
		}
	}
	return sum
}

// dataWithin checks that every Data extent of d lies in a range qemu-img
// map reports as data.
func dataWithin(t *testing.T, d layouts.Disk, img, format string) {
	t.Helper()
	var qm []synthtest.MapEntry
	if err := json.Unmarshal([]byte(readtest.QemuImg(t, "map", "--output=json", "-f", format, img)), &qm); err != nil {
		t.Fatal(err)
	}
	for _, m := range qm {
		if m.Data {
			continue
		}
		exts, err := d.Extents(m.Start, m.Length)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range exts {
			if e.Kind == layouts.Data {
				t.Errorf("extent %+v is data, qemu-img map says no data for [%d,+%d)", e, m.Start, m.Length)
			}
		}
	}
}

// suffix is the first name ending that claims f, or "."+name.
func suffix(f layouts.Format) string {
	if len(f.Suffixes) > 0 {
		return f.Suffixes[0]
	}
	return "." + f.Name
}

// TestConformanceSynth synthesizes each format and variant from a sparse
// raw source, writes the files out and has qemu-img judge them: check,
// compare with the source, info's size, map (every byte of source data is
// data in the image); the format's own Open reads the image back to the
// source's bytes, and Identity, where the format has one, reads it.
func TestConformanceSynth(t *testing.T) {
	synthtest.NeedQemuImg(t)
	t.Parallel()
	for _, v := range variants(true) {
		f := v.f
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			const size = 6<<20 + 3*512
			srcPath := filepath.Join(dir, "src.bin")
			synthtest.MakeRaw(t, srcPath, size, 5, []synthtest.Piece{
				{Off: 0, N: 70000}, {Off: 1 << 20, N: 4096, Zero: true}, {Off: 2<<20 - 512, N: 1 << 20},
				{Off: 5 << 20, N: 100}, {Off: size - 512, N: 512},
			})
			src := synthtest.OpenRaw(t, srcPath)
			base := filepath.Join(dir, "disk")
			files, err := v.build(src, base)
			if err != nil {
				t.Fatal(err)
			}
			primary := ""
			for _, tf := range files {
				p := base + tf.Suffix
				synthtest.WriteSparse(t, tf.Content, p)
				if tf.Primary {
					if primary != "" {
						t.Fatal("two primary files")
					}
					primary = p
				}
			}
			if primary == "" {
				t.Fatal("no primary file")
			}
			q := f.QEMUName()
			if got := qemuInfoFormat(t, primary); got != q && !qemuCannotProbe[v.String()] {
				t.Errorf("qemu-img info probes the image as %q, want %q", got, q)
			}
			if out, err := synthtest.QemuImgErr(t, "check", "-f", q, primary); err != nil && !strings.Contains(err.Error(), "does not support checks") {
				t.Errorf("qemu-img check: %v", err)
			} else if err == nil && !strings.Contains(out, "No errors were found") {
				t.Errorf("qemu-img check: %s", out)
			}
			if _, err := synthtest.QemuImgErr(t, "compare", "-f", "raw", "-F", q, srcPath, primary); err != nil {
				t.Errorf("qemu-img compare: %v", err)
			}
			if vs := readtest.VirtualSizeOf(t, primary, q); vs != size {
				t.Errorf("qemu-img info: virtual size %d, want %d", vs, size)
			}
			if err := synthtest.Covered(synthtest.DataRanges(t, srcPath, "raw"), synthtest.DataRanges(t, primary, q)); err != nil {
				t.Errorf("qemu-img map: %v", err)
			}

			back := openWith(t, f, primary)
			want := readtest.Dump(t, src, "")
			if got := readtest.Dump(t, back, ""); !bytes.Equal(got, want) {
				t.Error("the image read back differs from the source")
			}
			if f.Identity != nil {
				id, ok := f.Identity(files[0].Content)
				if !ok || id == "" {
					t.Error("Identity finds nothing in a synthesized image")
				}
				if id2, _ := f.Identity(synthtest.OpenRaw(t, primary)); id2 != id {
					t.Errorf("Identity %q of the written file, %q of the image", id2, id)
				}
			}

			// The same source gives the same bytes.
			again, err := v.build(src, base)
			if err != nil {
				t.Fatal(err)
			}
			for i := range files {
				if digest(t, files[i].Content) != digest(t, again[i].Content) {
					t.Errorf("file %s: the same source gave different bytes", files[i].Suffix)
				}
			}
		})
	}
}

func digest(t *testing.T, d layouts.Disk) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(d, 0, d.Size())); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// TestConformanceImage checks the reader contract of every synthesized
// file, from in-memory sources: iotest over a small image whole, reads of
// its generated segments in odd pieces over a 4 GiB sparse source, and
// parallel reads.
func TestConformanceImage(t *testing.T) {
	t.Parallel()
	for _, v := range variants(true) {
		build := func(t *testing.T, src layouts.Disk) []layouts.TargetFile {
			t.Helper()
			files, err := v.build(src, "disk")
			if err != nil {
				t.Fatal(err)
			}
			return files
		}
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			small := &synthtest.Fake{Length: 3<<20 + 512, Data: []layouts.Extent{
				{Off: 1000, Len: 70000, Kind: layouts.Data},
				{Off: 2<<20 - 4096, Len: 8192, Kind: layouts.Data},
				{Off: 3 << 20, Len: 512, Kind: layouts.Data},
			}}
			for _, tf := range build(t, small) {
				content := make([]byte, tf.Content.Size())
				if _, err := tf.Content.ReadAt(content, 0); err != nil {
					t.Fatal(err)
				}
				if err := iotest.TestReader(io.NewSectionReader(tf.Content, 0, tf.Content.Size()), content); err != nil {
					t.Errorf("%s: %v", tf.Suffix, err)
				}
			}
			for _, tf := range build(t, synthtest.FakeScattered(4<<30+512, 300, 3<<20)) {
				if img, ok := tf.Content.(*layouts.Image); ok {
					synthtest.GenChunks(t, img)
				}
			}
			for _, tf := range build(t, synthtest.FakeScattered(16<<20+512, 12, 300000)) {
				synthtest.ParallelReads(t, tf.Content)
			}
		})
	}
}

// FuzzOpen probes arbitrary bytes with the registry's formats in order:
// whatever opens must report extents that cover it and read as they say,
// and what does not must fail with a one-line error. The seeds are an
// image of every format and variant synthesized from a small source.
func FuzzOpen(f *testing.F) {
	const maxSeed = 256 << 10
	src := &synthtest.Fake{Length: 64<<10 + 512, Data: []layouts.Extent{
		{Off: 4096, Len: 9000, Kind: layouts.Data}, {Off: 64 << 10, Len: 512, Kind: layouts.Data},
	}}
	for _, v := range variants(true) {
		files, err := v.build(src, "seed")
		if err != nil {
			f.Fatal(err)
		}
		// The fuzzer crawls over large inputs: the image's metadata, up
		// to maxSeed, still seeds its parser.
		b := make([]byte, min(files[0].Content.Size(), maxSeed))
		if _, err := files[0].Content.ReadAt(b, 0); err != nil && err != io.EOF {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file := &layouts.SectionFile{R: bytes.NewReader(b), N: int64(len(b)), Path: "/nonexistent/fuzz.img"}
		d, err := probe.OpenFile(file, nil)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			if !errors.Is(err, layouts.ErrWrongType) && !errors.Is(err, layouts.ErrFormat) && !errors.Is(err, layouts.ErrUnsupported) && !strings.Contains(err.Error(), "fuzz.img") {
				t.Fatalf("error %q names neither the file nor a category", err)
			}
			return
		}
		defer d.Close()
		if d.Size() > 1<<40 {
			return // a huge claimed size: reading it whole is not the point
		}
		buf := make([]byte, 64<<10)
		pos := int64(0)
		// The first 4 MiB: what a header can make of a small input.
		err = layouts.Walk(d, 0, min(d.Size(), 4<<20), func(e layouts.Extent) error {
			if e.Off != pos || e.Len <= 0 {
				t.Fatalf("extent %+v at %d", e, pos)
			}
			pos = e.End()
			if e.Kind == layouts.Data {
				_, err := d.ReadAt(buf[:min(int64(len(buf)), e.Len)], e.Off)
				if err != nil && strings.Contains(err.Error(), "\n") {
					t.Fatalf("multi-line error %q", err)
				}
				return nil
			}
			for o := e.Off; o < e.End(); o += int64(len(buf)) {
				n := min(int64(len(buf)), e.End()-o)
				if m, err := d.ReadAt(buf[:n], o); int64(m) != n && err != nil {
					return err
				}
				if !allZero(buf[:n]) {
					t.Fatalf("extent %+v is %v but reads non-zero", e, e.Kind)
				}
			}
			return nil
		})
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error %q", err)
		}
	})
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// qemuInfoFormat is the format qemu-img info names for path.
func qemuInfoFormat(t *testing.T, path string) string {
	t.Helper()
	var info struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal([]byte(readtest.QemuImg(t, "info", "--output=json", path)), &info); err != nil {
		t.Fatal(err)
	}
	return info.Format
}

// TestConformanceClaimedNames checks, for every suffix a format claims,
// that probing refuses a file of that name which holds none of the
// format's structures, naming the format and its signature, rather than
// serving it as raw.
func TestConformanceClaimedNames(t *testing.T) {
	dir := t.TempDir()
	junk := bytes.Repeat([]byte("not a disk image of any format\n"), 1000)
	for _, f := range formats.All() {
		for _, s := range f.Suffixes {
			t.Run(f.Name+s, func(t *testing.T) {
				p := filepath.Join(dir, "junk"+s)
				if err := os.WriteFile(p, junk, 0o644); err != nil {
					t.Fatal(err)
				}
				d, err := probe.Open(p, nil)
				if err == nil {
					d.Close()
					t.Fatalf("opened as %s", d.Format())
				}
				want := p + ": not a " + strings.ToUpper(f.Name) + " image (no " + f.Signature + " found)"
				if !strings.HasPrefix(err.Error(), want) || !errors.Is(err, layouts.ErrFormat) {
					t.Errorf("error %q, want %q wrapping ErrFormat", err, want)
				}
			})
		}
	}
}

// FuzzRoundTrip synthesizes every one-file format and variant from a small
// sparse source that the input describes and reads the image back through
// the format's own Open: it must hold the source's bytes (padded with zeros
// to its virtual size), and what the image calls a hole or zeros must read
// as zeros.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{0x00, 0x50, 0x00, 1, 0, 10, 0})
	f.Add([]byte{0x10, 0x00, 0x07, 0, 0, 0, 1, 0x80, 0x10, 0, 4, 1, 1, 1, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0, 0x40, 0, 0x40, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		src := synthtest.FakeFromBytes(in)
		if src == nil {
			return
		}
		want := make([]byte, src.Size())
		if _, err := src.ReadAt(want, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		for _, v := range variants(true) {
			files, err := v.build(src, "/nonexistent/rt")
			if err != nil {
				t.Fatalf("%s: %v", v, err)
			}
			if len(files) != 1 {
				continue // files that name each other: TestConformanceSynth writes them out
			}
			img := files[0].Content
			file := &layouts.SectionFile{R: img, N: img.Size(), Path: "/nonexistent/rt" + files[0].Suffix}
			d, err := v.f.Open(file, formats.Env(nil, probe.Open))
			if err != nil {
				t.Fatalf("%s: opening the synthesized image: %v", v, err)
			}
			got := make([]byte, d.Size())
			if n, err := d.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
				t.Fatalf("%s: ReadAt = %d, %v", v, n, err)
			}
			if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) || !allZero(got[len(want):]) {
				t.Fatalf("%s: %d bytes read back differ from the %d-byte source", v, len(got), len(want))
			}
			readtest.CheckExtents(t, d, got)
			d.Close()
		}
	})
}
