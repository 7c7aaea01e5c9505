package qcow2

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/blockmap"
	"github.com/vmfs/vmfs/layouts/internal/synthtest"
)

var (
	synthQemuImg     = synthtest.QemuImgErr
	synthNeedQemuImg = synthtest.NeedQemuImg
	synthMakeRaw     = synthtest.MakeRandomRaw
	synthOpenRaw     = synthtest.OpenRaw
	synthWriteOut    = synthtest.WriteSparse
)

// synthQemuVerify judges a written qcow2 image with qemu-img against its
// raw source: check (no errors, no leaks), compare, info and map. It
// returns the bytes qemu-img map reports as data.
func synthQemuVerify(t *testing.T, srcPath, imgPath string, wantSize int64) int64 {
	return synthQemuVerifyFmt(t, "raw", srcPath, imgPath, wantSize)
}

// synthQemuVerifyFmt is synthQemuVerify for a source of format srcFmt.
func synthQemuVerifyFmt(t *testing.T, srcFmt, srcPath, imgPath string, wantSize int64) int64 {
	t.Helper()
	out, err := synthQemuImg(t, "check", "-f", "qcow2", "--output=json", imgPath)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	var chk map[string]any
	if err := json.Unmarshal([]byte(out), &chk); err != nil {
		t.Fatalf("check output %q: %v", out, err)
	}
	for _, k := range []string{"check-errors", "corruptions", "leaks", "corruptions-fixed", "leaks-fixed"} {
		if v, ok := chk[k]; ok && v.(float64) != 0 {
			t.Errorf("qemu-img check: %s = %v", k, v)
		}
	}
	if _, err := synthQemuImg(t, "compare", "-f", srcFmt, "-F", "qcow2", srcPath, imgPath); err != nil {
		t.Errorf("compare: %v", err)
	}
	out, err = synthQemuImg(t, "info", "-f", "qcow2", "--output=json", imgPath)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	var info struct {
		VirtualSize int64  `json:"virtual-size"`
		Format      string `json:"format"`
		Data        struct {
			Compat string `json:"compat"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("info output %q: %v", out, err)
	}
	if info.VirtualSize != wantSize || info.Format != "qcow2" {
		t.Errorf("info: virtual size %d format %q, want %d qcow2", info.VirtualSize, info.Format, wantSize)
	}
	out, err = synthQemuImg(t, "map", "-f", "qcow2", "--output=json", imgPath)
	if err != nil {
		t.Fatalf("map: %v", err)
	}
	var exts []struct {
		Length int64 `json:"length"`
		Data   bool  `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &exts); err != nil {
		t.Fatalf("map output: %v", err)
	}
	var data int64
	for _, e := range exts {
		if e.Data {
			data += e.Length
		}
	}
	return data
}

// synthClusterData is the data qcow2 should hold for src: each cluster
// with any Data, clipped to size.
func synthClusterData(t testing.TB, src layouts.Disk, size int64) int64 {
	bm, err := blockmap.Build(src, synthClusterSize)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	bm.Runs(0, bm.Blocks(), func(r blockmap.Run) error {
		n += min(size, (r.First+r.Count)*synthClusterSize) - r.First*synthClusterSize
		return nil
	})
	return n
}

func synthReadAll(t testing.TB, d layouts.Disk) []byte {
	t.Helper()
	b := make([]byte, d.Size())
	if _, err := d.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

func TestSynthQemu(t *testing.T) {
	synthNeedQemuImg(t)
	const MiB = 1 << 20
	tests := []struct {
		name  string
		size  int64
		seed  int64
		holes bool
		// hole: leave [0, hole) sparse and write random data after it
		hole int64
	}{
		{name: "mixed", size: 5*MiB + 7*512, seed: 1, holes: true},
		{name: "dense", size: 2*MiB + 4096, seed: 2},
		{name: "unaligned-tail", size: 1*MiB + 1000, seed: 3, holes: true},
		{name: "one-sector", size: 512, seed: 4},
		{name: "all-hole", size: 3*MiB + 512, seed: 5, hole: 3*MiB + 512},
		{name: "empty", size: 0, seed: 6},
		{name: "second-l2", size: 512*MiB + 3*MiB + 512, seed: 7, holes: true, hole: 511 * MiB},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			srcPath := filepath.Join(dir, "src.raw")
			if tc.hole > 0 {
				synthMakeRaw(t, srcPath+".tail", tc.size-tc.hole, tc.seed, tc.holes)
				tail, err := os.ReadFile(srcPath + ".tail")
				if err != nil {
					t.Fatal(err)
				}
				f, err := os.Create(srcPath)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteAt(tail, tc.hole)
				f.Truncate(tc.size)
				f.Close()
			} else {
				synthMakeRaw(t, srcPath, tc.size, tc.seed, tc.holes)
			}
			src := synthOpenRaw(t, srcPath)
			img, err := Synthesize(src)
			if err != nil {
				t.Fatal(err)
			}
			imgPath := filepath.Join(dir, "out.qcow2")
			synthWriteOut(t, img, imgPath)
			if keep := os.Getenv("VMFS_SYNTH_KEEP"); keep != "" {
				// Keep the files for a look by hand.
				exec.Command("cp", "--sparse=always", srcPath, filepath.Join(keep, tc.name+".raw")).Run()
				exec.Command("cp", "--sparse=always", imgPath, filepath.Join(keep, tc.name+".qcow2")).Run()
			}
			vsize := (tc.size + 511) &^ 511
			got := synthQemuVerify(t, srcPath, imgPath, vsize)
			if want := synthClusterData(t, src, vsize); got != want {
				t.Errorf("qemu-img map: %d bytes of data, want %d", got, want)
			}
			alloc, err := layouts.Allocated(src)
			if err != nil {
				t.Fatal(err)
			}
			if got < min(alloc, vsize) {
				t.Errorf("qemu-img map: %d bytes of data, less than the source's %d", got, alloc)
			}

			// Same source, same bytes.
			img2, err := Synthesize(src)
			if err != nil {
				t.Fatal(err)
			}
			if img.Size() <= 64<<20 {
				content := synthReadAll(t, img)
				if !bytes.Equal(content, synthReadAll(t, img2)) {
					t.Error("two syntheses of one source differ")
				}
				written, err := os.ReadFile(imgPath)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(content, written) {
					t.Error("sparse copy (Data extents only) differs from a full read: holes are not zeros")
				}
				// iotest reads in small pieces: check the start, which
				// holds every kind of segment, to keep the test quick.
				head := min(img.Size(), 1<<20)
				if err := iotest.TestReader(io.NewSectionReader(img, 0, head), content[:head]); err != nil {
					t.Error(err)
				}
				synthtest.RaggedReads(t, img, content)
			}
		})
	}
}

// synthSparseFile makes a 1 TiB sparse raw file with chunks of random data
// (total about data bytes) at scattered offsets, not cluster aligned.
func synthSparseFile(t testing.TB, path string, size, data int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(42))
	const chunk = 2<<20 + 4096
	buf := make([]byte, chunk)
	for n := int64(0); n < data; n += chunk {
		off := rng.Int63n(size-chunk) &^ 4095
		rng.Read(buf)
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSynthSources synthesizes from sources that are not raw: qcow2 images
// made by qemu-img, one of them over a raw backing file.
func TestSynthSources(t *testing.T) {
	synthNeedQemuImg(t)
	tests := []struct {
		name string
		// make builds the source from base.raw in dir and returns its path.
		make func(t *testing.T, dir string) string
	}{
		{"qcow2", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "src.qcow2")
			if _, err := synthQemuImg(t, "convert", "-f", "raw", "-O", "qcow2", filepath.Join(dir, "base.raw"), p); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"qcow2-compressed-4k", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "src.qcow2")
			if _, err := synthQemuImg(t, "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", filepath.Join(dir, "base.raw"), p); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"qcow2-over-raw", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "top.qcow2")
			if _, err := synthQemuImg(t, "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", p); err != nil {
				t.Fatal(err)
			}
			// New data over a hole and over data; zeros over data.
			for _, c := range []string{"write -P 0x5a 1M 100k", "write -P 0x33 2044k 8k", "write -z 3M 256k"} {
				if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", c, p).CombinedOutput(); err != nil {
					t.Fatalf("qemu-io %s: %v: %s", c, err, out)
				}
			}
			return p
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			synthMakeRaw(t, filepath.Join(dir, "base.raw"), 4<<20+3*512, 11, true)
			path := tc.make(t, dir)
			f, err := layouts.OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			src, err := Open(f, nil)
			if err != nil {
				f.Close()
				t.Fatal(err)
			}
			defer src.Close()
			img, err := Synthesize(src)
			if err != nil {
				t.Fatal(err)
			}
			imgPath := filepath.Join(dir, "out.qcow2")
			synthWriteOut(t, img, imgPath)
			got := synthQemuVerifyFmt(t, "qcow2", path, imgPath, src.Size())
			if want := synthClusterData(t, src, src.Size()); got != want {
				t.Errorf("qemu-img map: %d bytes of data, want %d", got, want)
			}
		})
	}
}

func TestSynthSparse1TiB(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MiB")
	}
	synthNeedQemuImg(t)
	dir := t.TempDir()
	srcPath := filepath.Join(dir, "big.raw")
	const size, data = 1 << 40, 100 << 20
	synthSparseFile(t, srcPath, size, data)
	src := synthOpenRaw(t, srcPath)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	img, err := Synthesize(src)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	allocs := after.TotalAlloc - before.TotalAlloc
	t.Logf("synthesize 1 TiB with %d MiB of data: %v, %d KiB allocated, %d segments, image %d MiB", data>>20, elapsed, allocs>>10, len(img.Segments()), img.Size()>>20)
	if elapsed > time.Second {
		t.Errorf("synthesize took %v", elapsed)
	}
	if allocs > 1<<20 {
		t.Errorf("synthesize allocated %d bytes", allocs)
	}
	imgPath := filepath.Join(dir, "big.qcow2")
	synthWriteOut(t, img, imgPath)
	got := synthQemuVerify(t, srcPath, imgPath, size)
	t.Logf("qemu-img map: %d MiB of data", got>>20)
	if want := synthClusterData(t, src, size); got != want || got < data || got > data+data/10 {
		t.Errorf("qemu-img map: %d bytes of data, want %d (about %d)", got, want, int64(data))
	}
}

// synthDecode reads guest range [off, off+len(p)) of a qcow2 image the way
// the specification says, independently of the generator.
func synthDecode(img layouts.Disk, p []byte, off int64) error {
	var h [112]byte
	if _, err := img.ReadAt(h[:], 0); err != nil {
		return err
	}
	be := binary.BigEndian
	if be.Uint32(h[0:]) != 0x514649fb || be.Uint32(h[4:]) != 3 || be.Uint32(h[20:]) != 16 || be.Uint32(h[96:]) != 4 || be.Uint32(h[100:]) != 112 {
		return fmt.Errorf("bad header % x", h)
	}
	l1Off := int64(be.Uint64(h[40:]))
	l1Size := int64(be.Uint32(h[36:]))
	var e [8]byte
	for pos := off; pos < off+int64(len(p)); {
		c := pos / synthClusterSize
		in := pos % synthClusterSize
		n := min(synthClusterSize-in, off+int64(len(p))-pos)
		buf := p[pos-off : pos-off+n]
		clear(buf)
		if c/synthL2Entries >= l1Size {
			return fmt.Errorf("cluster %d past L1", c)
		}
		if _, err := img.ReadAt(e[:], l1Off+c/synthL2Entries*8); err != nil {
			return err
		}
		l2 := int64(be.Uint64(e[:]) &^ synthCopied)
		if l2 != 0 {
			if _, err := img.ReadAt(e[:], l2+c%synthL2Entries*8); err != nil {
				return err
			}
			host := int64(be.Uint64(e[:]) &^ synthCopied)
			if host != 0 {
				if host+synthClusterSize > img.Size() {
					return fmt.Errorf("cluster %d at %d past the end", c, host)
				}
				if _, err := img.ReadAt(buf, host+in); err != nil {
					return err
				}
			}
		}
		pos += n
	}
	return nil
}

// synthCheckRefcounts checks that every cluster of img has refcount 1 and
// nothing past it is counted.
func synthCheckRefcounts(img layouts.Disk) error {
	var h [112]byte
	if _, err := img.ReadAt(h[:], 0); err != nil {
		return err
	}
	be := binary.BigEndian
	rtOff := int64(be.Uint64(h[48:]))
	rtClusters := int64(be.Uint32(h[56:]))
	clusters := img.Size() / synthClusterSize
	if img.Size()%synthClusterSize != 0 {
		return fmt.Errorf("image size %d not whole clusters", img.Size())
	}
	rt := make([]byte, rtClusters*synthClusterSize)
	if _, err := img.ReadAt(rt, rtOff); err != nil {
		return err
	}
	rb := make([]byte, synthClusterSize)
	for i := int64(0); i < rtClusters*synthRTEntries; i++ {
		off := int64(be.Uint64(rt[i*8:]))
		first := i * synthRBEntries
		if off == 0 {
			if first < clusters {
				return fmt.Errorf("no refcount block for cluster %d", first)
			}
			continue
		}
		if _, err := img.ReadAt(rb, off); err != nil {
			return err
		}
		for j := int64(0); j < synthRBEntries; j++ {
			want := uint16(0)
			if first+j < clusters {
				want = 1
			}
			if got := be.Uint16(rb[j*2:]); got != want {
				return fmt.Errorf("cluster %d: refcount %d, want %d", first+j, got, want)
			}
		}
	}
	return nil
}

func FuzzSynthesize(f *testing.F) {
	f.Add([]byte{0, 0, 0x50, 0, 2, 3, 40, 1, 0, 0, 2, 9, 200})
	f.Add([]byte{0, 0, 0, 0x30, 6, 200, 255, 2, 255, 255, 1, 1, 1, 2, 1, 128})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 2, 0, 255, 254, 255, 255})
	// The extent map of a test image: data, zeros and holes in 4 KiB units.
	seed := []byte{0x00, 0x08, 0x52, 0x00}
	rng := rand.New(rand.NewSource(1))
	for range 40 {
		seed = append(seed, byte(rng.Intn(256)), byte(rng.Intn(3)), byte(8*(1+rng.Intn(50))))
	}
	f.Add(seed)
	f.Fuzz(synthFuzzBody)
}

// synthFuzzBody synthesizes the disk b describes and reads it back through
// an independent decoder.
func synthFuzzBody(t *testing.T, b []byte) {
	{
		src := synthtest.PatternFromBytes(b)
		img, err := Synthesize(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := synthCheckRefcounts(img); err != nil {
			t.Fatal(err)
		}
		// Every Data extent of the source, and a little around it, must
		// read back through the tables; the rest must be zero.
		buf := make([]byte, 0, 1<<20)
		want := make([]byte, 0, 1<<20)
		for _, e := range src.Exts {
			lo := max(0, e.Off-4096)
			hi := min(src.Length, e.End()+4096)
			for pos := lo; pos < hi; pos += int64(cap(buf)) {
				n := min(int64(cap(buf)), hi-pos)
				if err := synthDecode(img, buf[:n], pos); err != nil {
					t.Fatal(err)
				}
				src.ReadAt(want[:n], pos)
				if !bytes.Equal(buf[:n], want[:n]) {
					t.Fatalf("guest [%d,+%d): wrong bytes", pos, n)
				}
			}
		}
		// Reads at odd offsets agree with one whole read of the start.
		head := make([]byte, min(img.Size(), 1<<20))
		if _, err := img.ReadAt(head, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		piece := make([]byte, 4099)
		for off := int64(0); off < int64(len(head)); off += 8191 {
			n, err := img.ReadAt(piece, off)
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if m := min(n, len(head)-int(off)); !bytes.Equal(piece[:m], head[off:off+int64(m)]) {
				t.Fatalf("ReadAt(%d, %d): wrong bytes", len(piece), off)
			}
		}
	}
}

func TestSynthDecodeFake(t *testing.T) {
	// A few hand-made maps through the fuzz body's invariants, with
	// runs that touch L2 and refcount boundaries.
	const c = synthClusterSize
	tests := []struct {
		name string
		d    *synthtest.Pattern
	}{
		{"l2-boundary", &synthtest.Pattern{Length: 3 << 30, Exts: []layouts.Extent{{Off: 512<<20 - c - 100, Len: 2*c + 200, Kind: layouts.Data}, {Off: 1 << 30, Len: 5000, Kind: layouts.Zero}, {Off: 3<<30 - 700, Len: 700, Kind: layouts.Data}}}},
		{"many-runs", func() *synthtest.Pattern {
			d := &synthtest.Pattern{Length: 2<<30 + 4096}
			for i := int64(0); i < 40000; i++ {
				d.Exts = append(d.Exts, layouts.Extent{Off: i * 2 * c, Len: 512, Kind: layouts.Data})
			}
			return d
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Synthesize(tc.d)
			if err != nil {
				t.Fatal(err)
			}
			if err := synthCheckRefcounts(img); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4*c)
			want := make([]byte, 4*c)
			for _, e := range tc.d.Exts[:min(len(tc.d.Exts), 300)] {
				pos := max(0, e.Off-c)
				n := min(int64(len(buf)), tc.d.Length-pos)
				if err := synthDecode(img, buf[:n], pos); err != nil {
					t.Fatal(err)
				}
				tc.d.ReadAt(want[:n], pos)
				if !bytes.Equal(buf[:n], want[:n]) {
					t.Fatalf("guest [%d,+%d): wrong bytes", pos, n)
				}
			}
		})
	}
}

// synthCountingDisk counts ReadAt calls on the disk it wraps.
type synthCountingDisk struct {
	layouts.Disk
	calls atomic.Int64
}

func (d *synthCountingDisk) ReadAt(p []byte, off int64) (int, error) {
	d.calls.Add(1)
	return d.Disk.ReadAt(p, off)
}

// TestSynthReadCalls checks that a large read of packed data costs one
// source read per run of allocated clusters, not one per cluster.
func TestSynthReadCalls(t *testing.T) {
	const unit = synthClusterSize
	tests := []struct {
		name string
		exts []layouts.Extent
		runs int64 // source runs a whole read of the data area meets
	}{
		{"dense", []layouts.Extent{{Off: 0, Len: 64 << 20, Kind: layouts.Data}}, 1},
		{"three-runs", []layouts.Extent{{Off: 0, Len: 10 * unit, Kind: layouts.Data}, {Off: 20*unit + 5, Len: 3 * unit, Kind: layouts.Data}, {Off: 40 * unit, Len: 1, Kind: layouts.Data}}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &synthtest.Pattern{Length: 64<<20 + 512, Exts: tc.exts}
			src := &synthCountingDisk{Disk: fake}
			img, err := Synthesize(src)
			if err != nil {
				t.Fatal(err)
			}
			src.calls.Store(0)
			var first int64 = -1
			for _, s := range img.Segments() {
				if s.Kind == layouts.SegSource && first < 0 {
					first = s.Off
				}
			}
			buf := make([]byte, img.Size()-first)
			if _, err := img.ReadAt(buf, first); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if got := src.calls.Load(); got != tc.runs {
				t.Errorf("%d source reads, want %d", got, tc.runs)
			}
		})
	}
}

// TestSynthSizes feeds sizes at and past the limits: each gives an image
// or a clear error, quickly, never a panic.
func TestSynthSizes(t *testing.T) {
	const maxSize = synthMaxL1 * synthL2Entries * synthClusterSize
	tests := []struct {
		name string
		size int64
		ok   bool
	}{
		{"negative", -1, false},
		{"max-int64", 1<<63 - 1, false},
		{"past-l1-limit", maxSize + 1, false},
		{"at-l1-limit", maxSize, true},
		{"1-byte", 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &synthtest.Pattern{Length: tc.size}
			if tc.size > 0 {
				d.Exts = []layouts.Extent{{Off: tc.size - 1, Len: 1, Kind: layouts.Data}}
			}
			img, err := Synthesize(d)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				if !errors.Is(err, layouts.ErrUnsupported) {
					t.Errorf("%v does not wrap ErrUnsupported", err)
				}
				return
			}
			if err := synthCheckRefcounts(img); err != nil {
				t.Error(err)
			}
			var b [1]byte
			if err := synthDecode(img, b[:], tc.size-1); err != nil || b[0] != synthtest.PatternByte(tc.size-1) {
				t.Errorf("last byte: %v, %#x", err, b[0])
			}
		})
	}
}

func BenchmarkSynthesize1TiB(b *testing.B) {
	d := &synthtest.Pattern{Length: 1 << 40}
	rng := rand.New(rand.NewSource(1))
	for i := int64(0); i < 50; i++ {
		// 50 chunks of 2 MiB, one per 20 GiB.
		d.Exts = append(d.Exts, layouts.Extent{Off: i*(20<<30) + rng.Int63n(1<<30), Len: 2 << 20, Kind: layouts.Data})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Synthesize(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSynthGenL2(b *testing.B) {
	d := &synthtest.Pattern{Length: 4 << 30}
	for i := int64(0); i < 4<<30; i += 3 * synthClusterSize {
		d.Exts = append(d.Exts, layouts.Extent{Off: i, Len: synthClusterSize, Kind: layouts.Data})
	}
	img, err := Synthesize(d)
	if err != nil {
		b.Fatal(err)
	}
	var l2 layouts.Segment
	for _, s := range img.Segments() {
		if s.Kind == layouts.SegGen && s.Len >= synthClusterSize && s.Off > 3*synthClusterSize {
			l2 = s
			break
		}
	}
	buf := make([]byte, synthClusterSize)
	b.SetBytes(synthClusterSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := img.ReadAt(buf, l2.Off); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSynthReadSeq reads a dense 64 MiB source sequentially in 1 MiB
// pieces through the qcow2 image and through the raw view.
func BenchmarkSynthReadSeq(b *testing.B) {
	path := filepath.Join(b.TempDir(), "src.raw")
	synthMakeRaw(b, path, 64<<20, 9, false)
	src := synthOpenRaw(b, path)
	img, err := Synthesize(src)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		d    layouts.Disk
	}{{"qcow2", img}, {"raw", layouts.Section("raw", src)}} {
		b.Run(v.name, func(b *testing.B) {
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			var off int64
			for b.Loop() {
				if off >= v.d.Size() {
					off = 0
				}
				if _, err := v.d.ReadAt(buf, off); err != nil && err != io.EOF {
					b.Fatal(err)
				}
				off += int64(len(buf))
			}
		})
	}
}
