package vmdk

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/blockmap"
	"github.com/vmfs/vmfs/layouts/internal/synthtest"
	"github.com/vmfs/vmfs/layouts/raw"
)

var (
	synthQemuImg     = synthtest.QemuImgErr
	synthNeedQemuImg = synthtest.NeedQemuImg
	synthMakeRaw     = synthtest.MakeRandomRaw
	synthOpenRaw     = synthtest.OpenRaw
	synthWriteOut    = synthtest.WriteSparse
)

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

func synthReadAll(t testing.TB, d layouts.Disk) []byte {
	t.Helper()
	b := make([]byte, d.Size())
	if _, err := d.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

// synthGrainData is the data a sparse VMDK should hold for src: each
// grain with any Data, clipped to size.
func synthGrainData(t testing.TB, src layouts.Disk, size int64) int64 {
	bm, err := blockmap.Build(src, synthGrainSize)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	bm.Runs(0, bm.Blocks(), func(r blockmap.Run) error {
		n += min(size, (r.First+r.Count)*synthGrainSize) - r.First*synthGrainSize
		return nil
	})
	return n
}

// synthQemuVerify judges a written VMDK with qemu-img against its raw
// source: check, compare, info and map. It returns the bytes qemu-img map
// reports as data.
func synthQemuVerify(t *testing.T, srcPath, imgPath string, wantSize int64, createType, adapter string) int64 {
	return synthQemuVerifyOpt(t, srcPath, imgPath, wantSize, createType, adapter, true)
}

// synthQemuVerifyOpt is synthQemuVerify, with qemu-img compare optional:
// qemu asks a VMDK's block status grain by grain, which takes half a
// minute on a 1 TiB disk.
func synthQemuVerifyOpt(t *testing.T, srcPath, imgPath string, wantSize int64, createType, adapter string, compare bool) int64 {
	return synthQemuVerifyFmt(t, "raw", srcPath, imgPath, wantSize, createType, adapter, compare)
}

// synthQemuVerifyFmt is synthQemuVerifyOpt for a source of format srcFmt.
func synthQemuVerifyFmt(t *testing.T, srcFmt, srcPath, imgPath string, wantSize int64, createType, adapter string, compare bool) int64 {
	t.Helper()
	if out, err := synthQemuImg(t, "check", "-f", "vmdk", imgPath); err != nil {
		t.Errorf("check: %v", err)
	} else if !strings.Contains(out, "No errors were found") {
		t.Errorf("check: %s", out)
	}
	if !compare {
		t.Log("qemu-img compare skipped (set VMFS_SLOW_TESTS=1 to run it)")
	} else if _, err := synthQemuImg(t, "compare", "-f", srcFmt, "-F", "vmdk", srcPath, imgPath); err != nil {
		t.Errorf("compare: %v", err)
	}
	out, err := synthQemuImg(t, "info", "-f", "vmdk", "--output=json", imgPath)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	var info struct {
		VirtualSize int64  `json:"virtual-size"`
		Format      string `json:"format"`
		Specific    struct {
			Data struct {
				CreateType string `json:"create-type"`
				CID        int64  `json:"cid"`
				ParentCID  int64  `json:"parent-cid"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("info output %q: %v", out, err)
	}
	if info.VirtualSize != wantSize || info.Format != "vmdk" || info.Specific.Data.CreateType != createType || info.Specific.Data.ParentCID != 0xffffffff {
		t.Errorf("info: %s", out)
	}
	desc := synthDescText(t, imgPath)
	if !strings.Contains(desc, fmt.Sprintf("ddb.adapterType = %q\n", adapter)) {
		t.Errorf("descriptor lacks adapter type %q:\n%s", adapter, desc)
	}
	out, err = synthQemuImg(t, "map", "-f", "vmdk", "--output=json", imgPath)
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

// synthDescText returns the descriptor of a VMDK file: the file itself or
// the one embedded in a sparse extent.
func synthDescText(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) >= 512 && string(b[:4]) == "KDMV" {
		off := binary.LittleEndian.Uint64(b[28:]) * 512
		n := binary.LittleEndian.Uint64(b[36:]) * 512
		b = b[off : off+n]
	}
	return string(bytes.TrimRight(b, "\x00"))
}

func TestSynthQemu(t *testing.T) {
	synthNeedQemuImg(t)
	const MiB = 1 << 20
	tests := []struct {
		name    string
		size    int64
		seed    int64
		holes   bool
		hole    int64 // leave [0, hole) sparse and write random data after it
		adapter string
	}{
		{name: "mixed", size: 5*MiB + 7*512, seed: 1, holes: true, adapter: "lsilogic"},
		{name: "dense", size: 2*MiB + 4096, seed: 2, adapter: "ide"},
		{name: "unaligned-tail", size: 1*MiB + 1000, seed: 3, holes: true, adapter: "buslogic"},
		{name: "one-sector", size: 512, seed: 4, adapter: "legacyESX"},
		{name: "all-hole", size: 3*MiB + 512, seed: 5, hole: 3*MiB + 512, adapter: "pvscsi"},
		{name: "default-adapter", size: 700 * 1024, seed: 6, holes: true},
		{name: "gt-boundary", size: 70*MiB + 512, seed: 7, holes: true, hole: 30 * MiB},
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
			wantAdapter := tc.adapter
			if wantAdapter == "" {
				wantAdapter = "ide"
			}
			capacity := (tc.size + 511) &^ 511
			alloc, err := layouts.Allocated(src)
			if err != nil {
				t.Fatal(err)
			}

			t.Run("monolithicSparse", func(t *testing.T) {
				img, err := SynthesizeSparseNamed(src, tc.adapter, "out.vmdk")
				if err != nil {
					t.Fatal(err)
				}
				imgPath := filepath.Join(dir, "out.vmdk")
				synthWriteOut(t, img, imgPath)
				got := synthQemuVerify(t, srcPath, imgPath, capacity, "monolithicSparse", wantAdapter)
				if want := synthGrainData(t, src, capacity); got != want || got < min(alloc, capacity) {
					t.Errorf("qemu-img map: %d bytes of data, want %d (source has %d)", got, want, alloc)
				}
				if !strings.Contains(synthDescText(t, imgPath), fmt.Sprintf("RW %d SPARSE \"out.vmdk\"\n", capacity/512)) {
					t.Errorf("extent line wrong:\n%s", synthDescText(t, imgPath))
				}
				img2, err := SynthesizeSparseNamed(src, tc.adapter, "out.vmdk")
				if err != nil {
					t.Fatal(err)
				}
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
				// iotest reads in small pieces: check the start, which holds
				// every kind of segment, to keep the test quick.
				head := min(img.Size(), 1<<20)
				if err := iotest.TestReader(io.NewSectionReader(img, 0, head), content[:head]); err != nil {
					t.Error(err)
				}
				synthtest.RaggedReads(t, img, content)
			})

			t.Run("monolithicFlat", func(t *testing.T) {
				desc, flat, err := SynthesizeFlat(src, tc.adapter, "out-flat.vmdk")
				if err != nil {
					t.Fatal(err)
				}
				fdir := filepath.Join(dir, "flat")
				os.Mkdir(fdir, 0o755)
				descPath := filepath.Join(fdir, "out.vmdk")
				synthWriteOut(t, desc, descPath)
				synthWriteOut(t, flat, filepath.Join(fdir, "out-flat.vmdk"))
				if flat.Size() != capacity {
					t.Errorf("flat extent of %d bytes, want %d", flat.Size(), capacity)
				}
				got := synthQemuVerify(t, srcPath, descPath, capacity, "monolithicFlat", wantAdapter)
				if got != capacity {
					t.Errorf("qemu-img map: %d bytes of data, want all %d (flat)", got, capacity)
				}
				text := synthDescText(t, descPath)
				if !strings.Contains(text, fmt.Sprintf("RW %d FLAT \"out-flat.vmdk\" 0\n", capacity/512)) {
					t.Errorf("extent line wrong:\n%s", text)
				}
				desc2, _, err := SynthesizeFlat(src, tc.adapter, "out-flat.vmdk")
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(synthReadAll(t, desc), synthReadAll(t, desc2)) {
					t.Error("two syntheses of one source differ")
				}
			})
		})
	}
}

func TestSynthDescriptor(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.raw")
	synthMakeRaw(t, a, 1<<20, 1, true)
	b := filepath.Join(dir, "b.raw")
	synthMakeRaw(t, b, 1<<20, 2, true)
	cid := regexp.MustCompile(`(?m)^CID=([0-9a-f]{8})$`)
	var cids []string
	for _, p := range []string{a, b} {
		desc, _, err := SynthesizeFlat(synthOpenRaw(t, p), "lsilogic", "x-flat.vmdk")
		if err != nil {
			t.Fatal(err)
		}
		m := cid.FindStringSubmatch(string(synthReadAll(t, desc)))
		if m == nil || m[1] == "ffffffff" {
			t.Fatalf("no CID in\n%s", synthReadAll(t, desc))
		}
		cids = append(cids, m[1])
	}
	if cids[0] == cids[1] {
		t.Errorf("two different sources got one CID %s", cids[0])
	}

	// qemu cannot open a VMDK of 0 sectors: refuse to make one.
	empty := layouts.Bytes("raw", nil)
	if _, err := SynthesizeSparse(empty, ""); !errors.Is(err, layouts.ErrUnsupported) {
		t.Errorf("sparse of an empty disk: %v", err)
	}
	if _, _, err := SynthesizeFlat(empty, "", "e-flat.vmdk"); !errors.Is(err, layouts.ErrUnsupported) {
		t.Errorf("flat of an empty disk: %v", err)
	}

	tests := []struct {
		name, adapter, flat string
		ok, sparseOK        bool // sparse is named after flat less "-flat"
	}{
		{"ide", "ide", "x-flat.vmdk", true, true},
		{"pvscsi", "pvscsi", "x-flat.vmdk", true, true},
		{"unknown-adapter", "virtio", "x-flat.vmdk", false, false},
		{"quote-in-name", "ide", "x\"-flat.vmdk", false, false},
		{"empty-name", "ide", "", false, true},
		{"newline-in-name", "ide", "x\n-flat.vmdk", false, false},
		{"unicode-name", "ide", "disque é-flat.vmdk", true, true},
	}
	src := synthOpenRaw(t, a)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := SynthesizeFlat(src, tc.adapter, tc.flat)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
			if err != nil && !errors.Is(err, layouts.ErrUnsupported) {
				t.Errorf("error %v does not wrap ErrUnsupported", err)
			}
			img, err := SynthesizeSparseNamed(src, tc.adapter, strings.TrimSuffix(tc.flat, "-flat.vmdk")+".vmdk")
			if (err == nil) != tc.sparseOK {
				t.Fatalf("sparse: err = %v", err)
			}
			if err == nil {
				want := fmt.Sprintf("\nRW 2048 SPARSE \"%s.vmdk\"\n", strings.TrimSuffix(tc.flat, "-flat.vmdk"))
				if b := synthReadAll(t, img); !bytes.Contains(b, []byte(want)) {
					t.Errorf("no %q in the embedded descriptor", want)
				}
			}
		})
	}
}

// TestSynthSources synthesizes from sources that are not raw: VMDKs made
// by qemu-img.
func TestSynthSources(t *testing.T) {
	synthNeedQemuImg(t)
	tests := []struct {
		name, subformat string
	}{
		{"monolithicSparse", "monolithicSparse"},
		{"streamOptimized", "streamOptimized"},
		{"twoGbMaxExtentSparse", "twoGbMaxExtentSparse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			base := filepath.Join(dir, "base.raw")
			synthMakeRaw(t, base, 4<<20+3*512, 11, true)
			path := filepath.Join(dir, "src.vmdk")
			if _, err := synthQemuImg(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+tc.subformat, base, path); err != nil {
				t.Fatal(err)
			}
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
			img, err := SynthesizeSparseNamed(src, "lsilogic", "out.vmdk")
			if err != nil {
				t.Fatal(err)
			}
			imgPath := filepath.Join(dir, "out.vmdk")
			synthWriteOut(t, img, imgPath)
			got := synthQemuVerifyFmt(t, "vmdk", path, imgPath, src.Size(), "monolithicSparse", "lsilogic", true)
			if want := synthGrainData(t, src, src.Size()); got != want {
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
	img, err := SynthesizeSparseNamed(src, "lsilogic", "big.vmdk")
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
	imgPath := filepath.Join(dir, "big.vmdk")
	synthWriteOut(t, img, imgPath)
	got := synthQemuVerifyOpt(t, srcPath, imgPath, size, "monolithicSparse", "lsilogic", os.Getenv("VMFS_SLOW_TESTS") != "")
	t.Logf("qemu-img map: %d MiB of data", got>>20)
	// Every data extent of the source, read through both grain
	// directories of the written file, by this test's own decoder.
	f, err := layouts.OpenFile(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	written := raw.New(f)
	defer written.Close()
	buf, want := make([]byte, 1<<20), make([]byte, 1<<20)
	err = layouts.Walk(src, 0, size, func(e layouts.Extent) error {
		if e.Kind != layouts.Data {
			return nil
		}
		for pos := e.Off; pos < e.End(); pos += int64(len(buf)) {
			n := min(int64(len(buf)), e.End()-pos)
			if _, err := src.ReadAt(want[:n], pos); err != nil {
				return err
			}
			for _, rgd := range []bool{false, true} {
				if err := synthDecode(written, buf[:n], pos, rgd); err != nil {
					return err
				}
				if !bytes.Equal(buf[:n], want[:n]) {
					return fmt.Errorf("guest [%d,+%d) (redundant %v): wrong bytes", pos, n, rgd)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if want := synthGrainData(t, src, size); got != want || got < data || got > data+data/10 {
		t.Errorf("qemu-img map: %d bytes of data, want %d (about %d)", got, want, int64(data))
	}
}

// synthDecode reads guest range [off, off+len(p)) of a sparse VMDK the way
// the specification says, independently of the generator, through the
// grain directory (rgd false) or the redundant one (rgd true).
func synthDecode(img layouts.Disk, p []byte, off int64, rgd bool) error {
	var h [512]byte
	if _, err := img.ReadAt(h[:], 0); err != nil {
		return err
	}
	le := binary.LittleEndian
	if string(h[:4]) != "KDMV" || le.Uint32(h[4:]) != 1 || le.Uint32(h[8:]) != 3 || le.Uint64(h[20:]) != 128 || le.Uint32(h[44:]) != 512 ||
		h[73] != '\n' || h[74] != ' ' || h[75] != '\r' || h[76] != '\n' {
		return fmt.Errorf("bad header % x", h[:80])
	}
	capacity := int64(le.Uint64(h[12:])) * 512
	gd := int64(le.Uint64(h[56:])) * 512
	if rgd {
		gd = int64(le.Uint64(h[48:])) * 512
	}
	over := int64(le.Uint64(h[64:])) * 512
	const grain = 64 << 10
	var e [4]byte
	for pos := off; pos < off+int64(len(p)); {
		g := pos / grain
		in := pos % grain
		n := min(grain-in, off+int64(len(p))-pos)
		buf := p[pos-off : pos-off+n]
		clear(buf)
		if pos >= capacity {
			return fmt.Errorf("read past capacity")
		}
		if _, err := img.ReadAt(e[:], gd+g/512*4); err != nil {
			return err
		}
		gt := int64(le.Uint32(e[:])) * 512
		if gt == 0 || gt >= over {
			return fmt.Errorf("grain table of grain %d at %d", g, gt)
		}
		if _, err := img.ReadAt(e[:], gt+g%512*4); err != nil {
			return err
		}
		if sec := int64(le.Uint32(e[:])); sec != 0 {
			host := sec * 512
			if host < over || host+grain > img.Size() || (host-over)%grain != 0 {
				return fmt.Errorf("grain %d at %d outside the grain area", g, host)
			}
			if _, err := img.ReadAt(buf, host+in); err != nil {
				return err
			}
		}
		pos += n
	}
	return nil
}

func FuzzSynthesizeSparse(f *testing.F) {
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
	f.Fuzz(func(t *testing.T, b []byte) {
		src := synthtest.PatternFromBytes(b)
		img, err := SynthesizeSparse(src, "lsilogic")
		if src.Length == 0 && errors.Is(err, layouts.ErrUnsupported) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 0, 1<<20)
		want := make([]byte, 0, 1<<20)
		for _, e := range src.Exts {
			lo := max(0, e.Off-4096)
			hi := min(src.Length, e.End()+4096)
			for pos := lo; pos < hi; pos += int64(cap(buf)) {
				n := min(int64(cap(buf)), hi-pos)
				src.ReadAt(want[:n], pos)
				for _, rgd := range []bool{false, true} {
					if err := synthDecode(img, buf[:n], pos, rgd); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(buf[:n], want[:n]) {
						t.Fatalf("guest [%d,+%d) (redundant %v): wrong bytes", pos, n, rgd)
					}
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
	})
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
	const unit = synthGrainSize
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
			img, err := SynthesizeSparse(src, "ide")
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
	tests := []struct {
		name       string
		size       int64
		ok, flatOK bool
	}{
		{"negative", -1, false, false},
		{"zero", 0, false, false},
		{"max-int64", 1<<63 - 1, false, false},
		{"max-sectors", 1<<63 - 512, false, true},
		{"2TiB", 2 << 40, false, true},
		{"2TiB-less-a-sector", 2<<40 - 512, true, true},
		{"1-byte", 1, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &synthtest.Pattern{Length: tc.size}
			if tc.size > 0 {
				d.Exts = []layouts.Extent{{Off: tc.size - 1, Len: 1, Kind: layouts.Data}}
			}
			img, err := SynthesizeSparse(d, "")
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
			_, _, ferr := SynthesizeFlat(d, "", "x-flat.vmdk")
			if (ferr == nil) != tc.flatOK {
				t.Errorf("flat: err = %v", ferr)
			}
			if err != nil {
				if !errors.Is(err, layouts.ErrUnsupported) {
					t.Errorf("%v does not wrap ErrUnsupported", err)
				}
				return
			}
			for _, rgd := range []bool{false, true} {
				var b [1]byte
				if err := synthDecode(img, b[:], tc.size-1, rgd); err != nil || b[0] != synthtest.PatternByte(tc.size-1) {
					t.Errorf("last byte: %v, %#x", err, b[0])
				}
			}
		})
	}
}

func BenchmarkSynthesizeSparse1TiB(b *testing.B) {
	d := &synthtest.Pattern{Length: 1 << 40}
	rng := rand.New(rand.NewSource(1))
	for i := int64(0); i < 50; i++ {
		d.Exts = append(d.Exts, layouts.Extent{Off: i*(20<<30) + rng.Int63n(1<<30), Len: 2 << 20, Kind: layouts.Data})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SynthesizeSparse(d, "ide"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSynthGenGT(b *testing.B) {
	d := &synthtest.Pattern{Length: 1 << 30}
	for i := int64(0); i < 1<<30; i += 3 * synthGrainSize {
		d.Exts = append(d.Exts, layouts.Extent{Off: i, Len: synthGrainSize, Kind: layouts.Data})
	}
	img, err := SynthesizeSparse(d, "ide")
	if err != nil {
		b.Fatal(err)
	}
	gt := img.Segments()[2] // first grain tables of the redundant copy
	buf := make([]byte, min(gt.Len, 64<<10))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := img.ReadAt(buf, gt.Off); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSynthReadSeq reads a dense 64 MiB source sequentially in 1 MiB
// pieces through the sparse VMDK and through the raw view.
func BenchmarkSynthReadSeq(b *testing.B) {
	path := filepath.Join(b.TempDir(), "src.raw")
	synthMakeRaw(b, path, 64<<20, 9, false)
	src := synthOpenRaw(b, path)
	img, err := SynthesizeSparse(src, "ide")
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		d    layouts.Disk
	}{{"vmdk", img}, {"raw", layouts.Section("raw", src)}} {
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
