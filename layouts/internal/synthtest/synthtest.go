// Package synthtest holds the harness shared by the tests of the target
// synthesizers (vdi, vhd, vhdx; qcow2, vmdk): sparse raw sources of known
// content, in-memory fake sources, qemu-img as an oracle, and writing a
// synthesized image out sparse.
package synthtest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/raw"
)

// Piece is a run of the test source: random data, written zeros, or
// (the default for what no piece covers) a hole.
type Piece struct {
	Off, N int64
	Zero   bool
}

// MakeRaw writes a sparse raw file of the given size with the pieces.
func MakeRaw(t testing.TB, path string, size int64, seed uint64, pieces []Piece) {
	t.Helper()
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "raw", path, fmt.Sprint(size)).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(seed, 7))
	for _, p := range pieces {
		buf := make([]byte, p.N)
		if !p.Zero {
			for i := range buf {
				buf[i] = byte(r.Uint32())
			}
		}
		if _, err := f.WriteAt(buf, p.Off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// OpenRaw opens path as a raw source disk, closed when t ends.
func OpenRaw(t testing.TB, path string) layouts.Disk {
	t.Helper()
	f, err := layouts.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := raw.New(f)
	t.Cleanup(func() { d.Close() })
	return d
}

// WriteSparse writes the Data extents of img to path, leaving holes.
func WriteSparse(t testing.TB, img layouts.Disk, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(img.Size()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	err = layouts.Walk(img, 0, img.Size(), func(e layouts.Extent) error {
		if e.Kind != layouts.Data {
			return nil
		}
		for pos := e.Off; pos < e.End(); {
			n := min(int64(len(buf)), e.End()-pos)
			if _, err := img.ReadAt(buf[:n], pos); err != nil && err != io.EOF {
				return err
			}
			if _, err := f.WriteAt(buf[:n], pos); err != nil {
				return err
			}
			pos += n
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// QemuImg runs qemu-img and returns its stdout; failing fails t.
func QemuImg(t testing.TB, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("qemu-img", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("qemu-img %v: %v: %s%s", args, err, out, stderr.Bytes())
	}
	return out
}

// MapEntry is a range of qemu-img map --output=json.
type MapEntry struct {
	Start, Length int64
	Data, Zero    bool
}

// DataRanges returns the ranges qemu-img map reports as data.
func DataRanges(t testing.TB, path, format string) []MapEntry {
	t.Helper()
	var all, data []MapEntry
	if err := json.Unmarshal(QemuImg(t, "map", "--output=json", "-f", format, path), &all); err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.Data && !e.Zero {
			data = append(data, e)
		}
	}
	return data
}

// Covered reports whether every range of inner lies inside outer.
func Covered(inner, outer []MapEntry) error {
	for _, in := range inner {
		pos := in.Start
		for _, o := range outer {
			if o.Start <= pos && pos < o.Start+o.Length {
				pos = o.Start + o.Length
			}
		}
		if pos < in.Start+in.Length {
			return fmt.Errorf("source data at %d not data in the target", pos)
		}
	}
	return nil
}

// Sum is the total length of es.
func Sum(es []MapEntry) int64 {
	var n int64
	for _, e := range es {
		n += e.Length
	}
	return n
}

// Fake is an in-memory sparse disk: Data extents hold bytes computed
// from the offset, the rest is holes.
type Fake struct {
	Length int64
	Data   []layouts.Extent // sorted, disjoint, Kind Data
}

// FakeByte is the byte a Fake holds at off in its Data extents.
func FakeByte(off int64) byte {
	x := uint64(off/8)*0x9e3779b97f4a7c15 + 1
	return byte(x>>56) | 1 // never 0: data is never mistaken for a hole
}

func (d *Fake) Size() int64    { return d.Length }
func (d *Fake) Format() string { return "fake" }
func (d *Fake) Close() error   { return nil }

func (d *Fake) ReadAt(p []byte, off int64) (int, error) {
	n, eof := layouts.CheckRead(d.Length, p, off)
	if n == 0 {
		return 0, eof
	}
	clear(p[:n])
	end := off + int64(n)
	i := sort.Search(len(d.Data), func(i int) bool { return d.Data[i].End() > off })
	for ; i < len(d.Data) && d.Data[i].Off < end; i++ {
		for o := max(off, d.Data[i].Off); o < min(end, d.Data[i].End()); o++ {
			p[o-off] = FakeByte(o)
		}
	}
	return n, eof
}

func (d *Fake) Extents(off, n int64) ([]layouts.Extent, error) {
	off, n, ok := layouts.Clip(d.Length, off, n)
	if !ok {
		return nil, nil
	}
	end := off + n
	var b layouts.Builder
	pos := off
	i := sort.Search(len(d.Data), func(i int) bool { return d.Data[i].End() > off })
	for ; i < len(d.Data) && d.Data[i].Off < end; i++ {
		s, e := max(pos, d.Data[i].Off), min(end, d.Data[i].End())
		b.Add(pos, s-pos, layouts.Hole)
		b.Add(s, e-s, layouts.Data)
		pos = e
	}
	b.Add(pos, end-pos, layouts.Hole)
	return b.Extents(), nil
}

// FakeFromBytes makes a small fake disk from fuzz input.
func FakeFromBytes(in []byte) *Fake {
	if len(in) < 3 {
		return nil
	}
	size := int64(binary.LittleEndian.Uint16(in))<<6 | int64(in[2]&63) // < 4 MiB
	if size == 0 {
		return nil
	}
	d := &Fake{Length: size}
	var pos int64
	for in = in[3:]; len(in) >= 4 && pos < size; in = in[4:] {
		gap := int64(binary.LittleEndian.Uint16(in)) << 6
		n := int64(binary.LittleEndian.Uint16(in[2:]))<<6 + 1
		pos += gap
		if pos >= size {
			break
		}
		n = min(n, size-pos)
		d.Data = append(d.Data, layouts.Extent{Off: pos, Len: n, Kind: layouts.Data})
		pos += n + 1
	}
	return d
}

// FakeScattered makes a sparse fake disk of size with count data runs
// of n bytes at pseudo-random places.
func FakeScattered(size int64, count int, n int64) *Fake {
	r := rand.New(rand.NewPCG(1, 2))
	d := &Fake{Length: size}
	stride := size / int64(count)
	for i := 0; i < count; i++ {
		off := int64(i)*stride + r.Int64N(stride-n)
		d.Data = append(d.Data, layouts.Extent{Off: off, Len: n, Kind: layouts.Data})
	}
	return d
}

// ---- the harness of the qcow2 and vmdk synth tests ----

// QemuImgErr runs qemu-img and returns its stdout, with stderr in the
// error; it logs how long qemu-img took.
func QemuImgErr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("qemu-img", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	defer func() { t.Logf("qemu-img %s: %v", args[0], time.Since(start).Round(time.Millisecond)) }()
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("qemu-img %s: %v: %s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// NeedQemuImg skips t when qemu-img is not installed.
func NeedQemuImg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
}

// MakeRandomRaw writes a raw image of size bytes in 4 KiB..200 KiB pieces
// that are random data, written zeros or holes, from seed.
func MakeRandomRaw(t testing.TB, path string, size int64, seed int64, holes bool) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := mrand.New(mrand.NewSource(seed))
	buf := make([]byte, 200<<10)
	for pos := int64(0); pos < size; {
		n := min(int64(4096*(1+rng.Intn(50))), size-pos)
		switch k := rng.Intn(3); {
		case k == 0 && holes:
			// hole
		case k == 1:
			clear(buf[:n])
			if _, err := f.WriteAt(buf[:n], pos); err != nil {
				t.Fatal(err)
			}
		default:
			rng.Read(buf[:n])
			if _, err := f.WriteAt(buf[:n], pos); err != nil {
				t.Fatal(err)
			}
		}
		pos += n
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// Pattern is an in-memory disk of extents whose Data reads as a
// pattern of the offset; Zero and Hole read as zeros.
type Pattern struct {
	Length int64
	Exts   []layouts.Extent
}

// patternTab repeats with a prime period, so data moved by any
// multiple of a sector or cluster reads wrong; it holds no zero byte, so
// lost data shows.
var patternTab = func() []byte {
	const period = 4099
	b := make([]byte, 2*period)
	for i := range b {
		b[i] = byte(uint64(i%period)*0x9e3779b97f4a7c15>>56) | 1
	}
	return b
}()

// fillPattern fills p with the pattern from offset o.
func fillPattern(p []byte, o int64) {
	for len(p) > 0 {
		n := copy(p, patternTab[o%4099:])
		p = p[n:]
		o += int64(n)
	}
}

func (d *Pattern) Size() int64    { return d.Length }
func (d *Pattern) Format() string { return "fake" }
func (d *Pattern) Close() error   { return nil }
func (d *Pattern) ReadAt(p []byte, off int64) (int, error) {
	n, eof := layouts.CheckRead(d.Length, p, off)
	clear(p[:n])
	for _, e := range d.Exts {
		if e.Kind != layouts.Data || e.End() <= off || e.Off >= off+int64(n) {
			continue
		}
		s, t := max(e.Off, off), min(e.End(), off+int64(n))
		fillPattern(p[s-off:t-off], s)
	}
	return n, eof
}
func (d *Pattern) Extents(off, n int64) ([]layouts.Extent, error) {
	off, n, ok := layouts.Clip(d.Length, off, n)
	if !ok {
		return nil, nil
	}
	var b layouts.Builder
	pos := off
	for _, e := range d.Exts {
		s, t := max(e.Off, off), min(e.End(), off+n)
		if s >= t {
			continue
		}
		b.Add(pos, s-pos, layouts.Hole)
		b.Add(s, t-s, e.Kind)
		pos = t
	}
	b.Add(pos, off+n-pos, layouts.Hole)
	return b.Extents(), nil
}

// PatternFromBytes decodes fuzz input into a disk: 4 bytes of size, then
// triples (kind, gap, length) in 512-byte units, data capped.
func PatternFromBytes(b []byte) *Pattern {
	if len(b) < 4 {
		return &Pattern{}
	}
	d := &Pattern{Length: int64(binary.LittleEndian.Uint32(b)) % (3 << 30)}
	b = b[4:]
	pos, data := int64(0), int64(0)
	for len(b) >= 3 && pos < d.Length {
		kind := layouts.Kind(b[0] % 3)
		gap := int64(b[1]) * int64(b[0]>>2) * 4096
		n := int64(b[2])*512 + int64(b[0]>>2)
		b = b[3:]
		pos += gap
		if kind == layouts.Data {
			n = min(n, 8<<20-data)
			data += n
		}
		n = min(n, d.Length-pos)
		if n <= 0 || pos >= d.Length {
			break
		}
		d.Exts = append(d.Exts, layouts.Extent{Off: pos, Len: n, Kind: kind})
		pos += n
	}
	return d
}

// PatternByte is the byte a Pattern disk's Data holds at off.
func PatternByte(off int64) byte { return patternTab[off%4099] }

// ---- checks every image synthesizer runs ----

// GenChunks reads each generated segment of img in pieces of odd sizes at
// odd offsets and compares them with one whole read.
func GenChunks(t *testing.T, img *layouts.Image) {
	t.Helper()
	for i, s := range img.Segments() {
		if s.Kind != layouts.SegGen {
			continue
		}
		whole := make([]byte, s.Len)
		if err := s.Gen(whole, 0); err != nil {
			t.Fatal(err)
		}
		for _, chunk := range []int64{1, 3, 7, 8, 13, 4096, 5000} {
			t.Run(fmt.Sprintf("seg%d/chunk%d", i, chunk), func(t *testing.T) {
				got := make([]byte, s.Len)
				for off := int64(0); off < s.Len; off += chunk {
					if err := s.Gen(got[off:min(off+chunk, s.Len)], off); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(got, whole) {
					t.Error("chunked reads differ from the whole read")
				}
			})
		}
	}
}

// ParallelReads reads img from four goroutines at once and compares with
// one sequential read (run with -race).
func ParallelReads(t *testing.T, img layouts.Disk) {
	t.Helper()
	whole := make([]byte, img.Size())
	if _, err := img.ReadAt(whole, 0); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			buf := make([]byte, 1<<20)
			for range 100 {
				off := r.Int64N(img.Size())
				n := min(r.Int64N(int64(len(buf)))+1, img.Size()-off)
				if _, err := img.ReadAt(buf[:n], off); err != nil && err != io.EOF {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:n], whole[off:off+n]) {
					errs <- fmt.Errorf("bytes differ at [%d,+%d)", off, n)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// BenchReadAt reads a fully allocated 64 MiB source sequentially in 1 MiB
// pieces through the image synth makes of it (sub-benchmark name: the
// image's last 64 MiB, where the payload ends) and through the raw view.
func BenchReadAt(b *testing.B, name string, synth func(layouts.Disk) (*layouts.Image, error)) {
	const size = 64 << 20
	path := filepath.Join(b.TempDir(), "src.raw")
	MakeRaw(b, path, size, 1, []Piece{{Off: 0, N: size}})
	src := OpenRaw(b, path)
	img, err := synth(src)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		d    layouts.Disk
		off  int64
	}{
		{name, img, img.Size() - size},
		{"raw", layouts.Section("raw", src), 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 1<<20)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				for off := int64(0); off < size; off += int64(len(buf)) {
					if _, err := bc.d.ReadAt(buf, bc.off+off); err != nil && err != io.EOF {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// RaggedReads reads d at odd offsets and lengths, in parallel, and
// compares with content.
func RaggedReads(t *testing.T, d layouts.Disk, content []byte) {
	t.Helper()
	done := make(chan error, 4)
	for w := range 4 {
		go func() {
			rng := mrand.New(mrand.NewSource(int64(w)))
			buf := make([]byte, 300<<10)
			for range 300 {
				off := rng.Int63n(int64(len(content)) + 1)
				n := rng.Intn(len(buf))
				switch rng.Intn(3) {
				case 0:
					n = rng.Intn(20)
				case 1:
					off &^= 7
				}
				got, err := d.ReadAt(buf[:n], off)
				want := min(int64(n), int64(len(content))-off)
				if int64(got) != want || (err != nil && err != io.EOF) || (err == io.EOF) != (int64(n) > int64(len(content))-off) {
					done <- fmt.Errorf("ReadAt(%d, %d) = %d, %v", n, off, got, err)
					return
				}
				if !bytes.Equal(buf[:got], content[off:off+int64(got)]) {
					done <- fmt.Errorf("ReadAt(%d, %d): wrong bytes", n, off)
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
