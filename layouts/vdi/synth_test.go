package vdi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/internal/synthtest"
)

// ---- helpers shared by the synth tests of this package ----

type (
	synthPiece    = synthtest.Piece
	synthMapEntry = synthtest.MapEntry
	synthFake     = synthtest.Fake
)

var (
	synthMakeRaw       = synthtest.MakeRaw
	synthOpenRaw       = synthtest.OpenRaw
	synthWriteSparse   = synthtest.WriteSparse
	synthQemuImg       = synthtest.QemuImg
	synthDataRanges    = synthtest.DataRanges
	synthCovered       = synthtest.Covered
	synthSum           = synthtest.Sum
	synthByte          = synthtest.FakeByte
	synthFakeFromBytes = synthtest.FakeFromBytes
	synthFakeScattered = synthtest.FakeScattered
)

// ---- a decoder of what Synthesize writes, to check it without qemu ----

// synthDecoded reads the virtual disk of a synthesized VDI through its own
// header and block map.
type synthDecoded struct {
	img       io.ReaderAt
	size      int64
	vsize     int64
	blocks    int64
	mapOff    int64
	dataOff   int64
	allocated int64
}

func synthDecode(img io.ReaderAt, size int64) (*synthDecoded, error) {
	d := &synthDecoded{img: img, size: size}
	h := make([]byte, 0x200)
	if size < int64(len(h)) {
		return nil, errors.New("short file")
	}
	if _, err := img.ReadAt(h, 0); err != nil {
		return nil, err
	}
	le32 := func(at int) int64 { return int64(binary.LittleEndian.Uint32(h[at:])) }
	if le32(0x40) != 0xbeda107f || le32(0x44) != 0x00010001 || le32(0x48) != 0x190 || le32(0x4c) != 1 {
		return nil, errors.New("signature, version, header size or type")
	}
	if le32(0x168) != 512 || le32(0x178) != 1<<20 || le32(0x17c) != 0 || le32(0x1d4) != 512 {
		return nil, errors.New("sector or block size")
	}
	if !bytes.Equal(h[0x1a8:0x1c8], make([]byte, 32)) || bytes.Equal(h[0x188:0x198], make([]byte, 16)) {
		return nil, errors.New("uuids")
	}
	d.mapOff, d.dataOff = le32(0x154), le32(0x158)
	d.vsize = int64(binary.LittleEndian.Uint64(h[0x170:]))
	d.blocks, d.allocated = le32(0x180), le32(0x184)
	if d.mapOff%(1<<20) != 0 || d.dataOff%(1<<20) != 0 || d.dataOff < d.mapOff+d.blocks*4 || d.blocks<<20 < d.vsize {
		return nil, errors.New("offsets or blocks")
	}
	if d.dataOff+d.allocated<<20 != size {
		return nil, fmt.Errorf("file of %d bytes for %d allocated blocks", size, d.allocated)
	}
	return d, nil
}

// readAt reads the virtual disk, checking every block map entry it meets.
func (d *synthDecoded) readAt(p []byte, off int64) error {
	for len(p) > 0 {
		b := off >> 20
		in := off % (1 << 20)
		n := min(int64(len(p)), 1<<20-in)
		var e [4]byte
		if _, err := d.img.ReadAt(e[:], d.mapOff+b*4); err != nil {
			return err
		}
		if v := binary.LittleEndian.Uint32(e[:]); v == synthUnalloc {
			clear(p[:n])
		} else {
			if int64(v) >= d.allocated {
				return fmt.Errorf("block %d: index %d of %d allocated", b, v, d.allocated)
			}
			if _, err := d.img.ReadAt(p[:n], d.dataOff+int64(v)<<20+in); err != nil && err != io.EOF {
				return err
			}
		}
		p, off = p[n:], off+n
	}
	return nil
}

// synthCheck decodes img and compares its whole virtual disk with src.
func synthCheck(src layouts.Disk, img *layouts.Image) error {
	d, err := synthDecode(img, img.Size())
	if err != nil {
		return err
	}
	if want := (src.Size() + 511) / 512 * 512; d.vsize != want {
		return fmt.Errorf("virtual size %d, want %d", d.vsize, want)
	}
	got, want := make([]byte, 256<<10), make([]byte, 256<<10)
	for off := int64(0); off < d.vsize; off += int64(len(got)) {
		n := min(int64(len(got)), d.vsize-off)
		if err := d.readAt(got[:n], off); err != nil {
			return err
		}
		clear(want)
		if _, err := src.ReadAt(want[:min(n, max(0, src.Size()-off))], off); err != nil && err != io.EOF {
			return err
		}
		if !bytes.Equal(got[:n], want[:n]) {
			return fmt.Errorf("virtual bytes differ in [%d,+%d)", off, n)
		}
	}
	return nil
}

// ---- tests ----

func TestSynthQemu(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	const MiB = 1 << 20
	cases := []struct {
		name   string
		size   int64
		pieces []synthPiece
	}{
		{"mixed", 5*MiB + 3*512, []synthPiece{
			{Off: 0, N: 300 << 10},
			{Off: 300 << 10, N: 200 << 10, Zero: true},
			{Off: 2*MiB - 4096, N: 8192},
			{Off: 3*MiB + 777, N: 5000},
			{Off: 5*MiB + 512, N: 1024},
		}},
		{"odd-size", 3*MiB + 1000, []synthPiece{
			{Off: 100, N: 1 << 20},
			{Off: 3 * MiB, N: 1000},
		}},
		{"all-holes", 7*MiB + 512, nil},
		{"all-data", 4*MiB + 4096, []synthPiece{{Off: 0, N: 4*MiB + 4096}}},
		{"zeros-only", 2 * MiB, []synthPiece{{Off: 0, N: 2 * MiB, Zero: true}}},
	}
	// A sparse 1 TiB source with about 100 MiB of data scattered in 64 KiB
	// and 2 MiB pieces.
	var pieces []synthPiece
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 40; i++ {
		pieces = append(pieces, synthPiece{Off: int64(i)*(25<<30) + r.Int64N(20<<30)&^4095, N: 2 * MiB})
	}
	for i := 0; i < 300; i++ {
		pieces = append(pieces, synthPiece{Off: int64(i)*(3<<30) + r.Int64N(2<<30)&^511, N: 64 << 10})
	}
	cases = append(cases, struct {
		name   string
		size   int64
		pieces []synthPiece
	}{"sparse-1TiB", 1 << 40, pieces})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			srcPath := filepath.Join(dir, "src.raw")
			synthMakeRaw(t, srcPath, tc.size, 1, tc.pieces)
			src := synthOpenRaw(t, srcPath)
			start := time.Now()
			img, err := Synthesize(src)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("synthesized %d-byte source in %v: %d segments, file of %d bytes", tc.size, time.Since(start), len(img.Segments()), img.Size())
			out := filepath.Join(dir, "out.vdi")
			synthWriteSparse(t, img, out)

			synthQemuImg(t, "check", "-f", "vdi", out)
			synthQemuImg(t, "compare", "-f", "raw", "-F", "vdi", srcPath, out)
			var info struct {
				Format      string `json:"format"`
				VirtualSize int64  `json:"virtual-size"`
			}
			if err := json.Unmarshal(synthQemuImg(t, "info", "--output=json", "-f", "vdi", out), &info); err != nil {
				t.Fatal(err)
			}
			if want := (tc.size + 511) / 512 * 512; info.Format != "vdi" || info.VirtualSize != want {
				t.Errorf("qemu-img info: format %q size %d, want vdi %d", info.Format, info.VirtualSize, want)
			}
			srcData := synthDataRanges(t, srcPath, "raw")
			dstData := synthDataRanges(t, out, "vdi")
			if err := synthCovered(srcData, dstData); err != nil {
				t.Error(err)
			}
			// Target data is the source data rounded out to whole blocks.
			if got, limit := synthSum(dstData), synthSum(srcData)+int64(2*len(srcData))*synthBlockSize; got > limit {
				t.Errorf("target maps %d bytes of data, source %d", got, synthSum(srcData))
			}
			t.Logf("source data %d bytes, target data %d", synthSum(srcData), synthSum(dstData))
			if tc.size < 1<<30 {
				if err := synthCheck(src, img); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestSynthReader decodes the image of a small source and compares it
// with the source (the reader contract of the image, iotest included, is
// checked for every format by layouts/formats' conformance suite).
func TestSynthReader(t *testing.T) {
	src := &synthFake{Length: 3<<20 + 512, Data: []layouts.Extent{
		{Off: 1000, Len: 70000, Kind: layouts.Data},
		{Off: 2<<20 - 4096, Len: 8192, Kind: layouts.Data},
		{Off: 3 << 20, Len: 512, Kind: layouts.Data},
	}}
	img, err := Synthesize(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := synthCheck(src, img); err != nil {
		t.Error(err)
	}
}

func TestSynthDeterministic(t *testing.T) {
	mk := func(size int64) []byte {
		img, err := Synthesize(synthFakeScattered(size, 10, 4096))
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 2<<20)
		if _, err := img.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := mk(64<<20), mk(64<<20), mk(64<<20+512)
	if !bytes.Equal(a, b) {
		t.Error("the same source gave different metadata")
	}
	if bytes.Equal(a[0x188:0x1a8], c[0x188:0x1a8]) {
		t.Error("different sources gave the same uuids")
	}
}

func TestSynthErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
	}{
		{"empty", 0},
		{"too-large", (synthMaxBlocks + 1) << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Synthesize(&synthFake{Length: tc.size})
			if !errors.Is(err, layouts.ErrUnsupported) {
				t.Errorf("err %v, want ErrUnsupported", err)
			}
		})
	}
}

// TestSynthHuge checks that a sparse 64 TiB source is ready fast, with
// segments in proportion to its data, and that its block map reads right at
// both ends.
func TestSynthHuge(t *testing.T) {
	const size = 64 << 40
	src := synthFakeScattered(size, 1000, 100<<10)
	start := time.Now()
	img, err := Synthesize(src)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("synthesize took %v", el)
	}
	if n := len(img.Segments()); n > 2+2*1000 {
		t.Errorf("%d segments for 1000 data runs", n)
	}
	d, err := synthDecode(img, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []layouts.Extent{src.Data[0], src.Data[len(src.Data)-1], {Off: size - 4096, Len: 4096}} {
		got, want := make([]byte, e.Len), make([]byte, e.Len)
		if err := d.readAt(got, e.Off); err != nil {
			t.Fatal(err)
		}
		src.ReadAt(want, e.Off)
		if !bytes.Equal(got, want) {
			t.Errorf("bytes differ at %d", e.Off)
		}
	}
}

func FuzzSynth(f *testing.F) {
	f.Add([]byte{0x00, 0x50, 0x00, 1, 0, 10, 0})
	f.Add([]byte{0x10, 0x00, 0x07, 0, 0, 0, 1, 0x80, 0x10, 0, 4, 1, 1, 1, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0, 0x40, 0, 0x40, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		src := synthFakeFromBytes(in)
		if src == nil {
			return
		}
		img, err := Synthesize(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := synthCheck(src, img); err != nil {
			t.Fatal(err)
		}
	})
}

// ---- benchmarks ----

func BenchmarkSynthesize1TiB(b *testing.B) {
	src := synthFakeScattered(1<<40, 1600, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Synthesize(src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSynthReadAt reads a fully allocated 64 MiB source sequentially
// in 1 MiB pieces through the image and through the raw view.
func BenchmarkSynthReadAt(b *testing.B) {
	synthtest.BenchReadAt(b, "vdi", Synthesize)
}
