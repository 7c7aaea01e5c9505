package vhd

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

// ---- a decoder of what the synthesizers write, to check it without qemu ----

// synthDecoded reads the virtual disk of a synthesized VHD through its own
// footer, dynamic header and BAT.
type synthDecoded struct {
	img       io.ReaderAt
	size      int64
	vsize     int64
	fixed     bool
	batOff    int64
	entries   int64
	blockSize int64
}

func synthVerifyChecksum(b []byte, at int) error {
	sum := binary.BigEndian.Uint32(b[at:])
	c := bytes.Clone(b)
	binary.BigEndian.PutUint32(c[at:], 0)
	if synthChecksum(c) != sum {
		return fmt.Errorf("checksum %08x, computed %08x", sum, synthChecksum(c))
	}
	return nil
}

func synthDecode(img io.ReaderAt, size int64) (*synthDecoded, error) {
	d := &synthDecoded{img: img, size: size}
	read := func(p []byte, off int64) error {
		if off < 0 || off+int64(len(p)) > size {
			return fmt.Errorf("read [%d,+%d) outside the file of %d", off, len(p), size)
		}
		_, err := img.ReadAt(p, off)
		if err == io.EOF {
			err = nil
		}
		return err
	}
	footer := make([]byte, 512)
	if err := read(footer, size-512); err != nil {
		return nil, err
	}
	if string(footer[:8]) != "conectix" || string(footer[28:32]) != "win " {
		return nil, errors.New("no footer")
	}
	if err := synthVerifyChecksum(footer, 64); err != nil {
		return nil, fmt.Errorf("footer: %v", err)
	}
	d.vsize = int64(binary.BigEndian.Uint64(footer[48:]))
	switch binary.BigEndian.Uint32(footer[60:]) {
	case synthTypeFixed:
		if d.vsize != size-512 {
			return nil, errors.New("fixed: size")
		}
		d.fixed = true
		return d, nil
	case synthTypeDynamic:
	default:
		return nil, errors.New("disk type")
	}
	head := make([]byte, 512)
	if err := read(head, 0); err != nil {
		return nil, err
	}
	if !bytes.Equal(head, footer) {
		return nil, errors.New("footer copy differs")
	}
	dyn := make([]byte, 1024)
	if err := read(dyn, int64(binary.BigEndian.Uint64(footer[16:]))); err != nil {
		return nil, err
	}
	if string(dyn[:8]) != "cxsparse" {
		return nil, errors.New("no dynamic header")
	}
	if err := synthVerifyChecksum(dyn, 36); err != nil {
		return nil, fmt.Errorf("dynamic header: %v", err)
	}
	d.batOff = int64(binary.BigEndian.Uint64(dyn[16:]))
	d.entries = int64(binary.BigEndian.Uint32(dyn[28:]))
	d.blockSize = int64(binary.BigEndian.Uint32(dyn[32:]))
	if d.blockSize != 2<<20 || d.entries*d.blockSize < d.vsize || d.batOff+d.entries*4 > size {
		return nil, errors.New("dynamic header: block size, entries or bat")
	}
	return d, nil
}

// readAt reads the virtual disk, checking every BAT entry it meets.
func (d *synthDecoded) readAt(p []byte, off int64) error {
	if d.fixed {
		_, err := d.img.ReadAt(p, off)
		return err
	}
	for len(p) > 0 {
		b := off / d.blockSize
		in := off % d.blockSize
		n := min(int64(len(p)), d.blockSize-in)
		var e [4]byte
		if _, err := d.img.ReadAt(e[:], d.batOff+b*4); err != nil {
			return err
		}
		if v := binary.BigEndian.Uint32(e[:]); v == 0xffffffff {
			clear(p[:n])
		} else {
			at := int64(v) * 512
			if at < d.batOff+d.entries*4 || at+512+d.blockSize > d.size-512 {
				return fmt.Errorf("block %d at %d outside the data area", b, at)
			}
			if (at+512)%4096 != 0 {
				return fmt.Errorf("block %d: data at %d not 4 KiB aligned", b, at+512)
			}
			var bm [512]byte
			if _, err := d.img.ReadAt(bm[:], at); err != nil {
				return err
			}
			if !bytes.Equal(bm[:], synthBitmap) {
				return fmt.Errorf("block %d: bitmap not all ones", b)
			}
			if _, err := d.img.ReadAt(p[:n], at+512+in); err != nil && err != io.EOF {
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

var synthKinds = []struct {
	name string
	fn   func(layouts.Disk) (*layouts.Image, error)
}{
	{"dynamic", SynthesizeDynamic},
	{"fixed", SynthesizeFixed},
}

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
			srcData := synthDataRanges(t, srcPath, "raw")
			for _, k := range synthKinds {
				t.Run(k.name, func(t *testing.T) {
					start := time.Now()
					img, err := k.fn(src)
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("synthesized %d-byte source in %v: %d segments, file of %d bytes", tc.size, time.Since(start), len(img.Segments()), img.Size())
					out := filepath.Join(dir, k.name+".vhd")
					synthWriteSparse(t, img, out)
					// qemu-img check does not support vpc: compare, info and
					// map are the oracles.
					synthQemuImg(t, "compare", "-f", "raw", "-F", "vpc", srcPath, out)
					var info struct {
						Format      string `json:"format"`
						VirtualSize int64  `json:"virtual-size"`
					}
					if err := json.Unmarshal(synthQemuImg(t, "info", "--output=json", "-f", "vpc", out), &info); err != nil {
						t.Fatal(err)
					}
					if want := (tc.size + 511) / 512 * 512; info.Format != "vpc" || info.VirtualSize != want {
						t.Errorf("qemu-img info: format %q size %d, want vpc %d", info.Format, info.VirtualSize, want)
					}
					dstData := synthDataRanges(t, out, "vpc")
					if err := synthCovered(srcData, dstData); err != nil {
						t.Error(err)
					}
					// Target data is the source data rounded out to whole
					// blocks.
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
	for _, k := range synthKinds {
		t.Run(k.name, func(t *testing.T) {
			img, err := k.fn(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := synthCheck(src, img); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSynthDeterministic(t *testing.T) {
	for _, k := range synthKinds {
		t.Run(k.name, func(t *testing.T) {
			mk := func(size int64) []byte {
				img, err := k.fn(synthFakeScattered(size, 10, 4096))
				if err != nil {
					t.Fatal(err)
				}
				b := make([]byte, img.Size())
				if _, err := img.ReadAt(b, 0); err != nil {
					t.Fatal(err)
				}
				return b[len(b)-512:]
			}
			a, b, c := mk(64<<20), mk(64<<20), mk(64<<20+512)
			if !bytes.Equal(a, b) {
				t.Error("the same source gave different footers")
			}
			if bytes.Equal(a[68:84], c[68:84]) {
				t.Error("different sources gave the same unique id")
			}
		})
	}
}

func TestSynthErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
	}{
		{"empty", 0},
		{"too-large", 0xff000000*512 + 1},
	} {
		for _, k := range synthKinds {
			t.Run(tc.name+"/"+k.name, func(t *testing.T) {
				_, err := k.fn(&synthFake{Length: tc.size})
				if !errors.Is(err, layouts.ErrUnsupported) {
					t.Errorf("err %v, want ErrUnsupported", err)
				}
			})
		}
	}
}

func TestSynthCHS(t *testing.T) {
	for _, tc := range []struct {
		sectors int64
		c       uint16
		h, s    uint8
	}{
		{8192, 120, 4, 17},                 // 4 MiB
		{2097152, 2080, 16, 63},            // 1 GiB
		{65535 * 16 * 255, 65535, 16, 255}, // the maximum
		{0xff000000, 65535, 16, 255},       // clipped to the maximum
	} {
		t.Run(fmt.Sprint(tc.sectors), func(t *testing.T) {
			c, h, s := synthCHS(tc.sectors)
			if c != tc.c || h != tc.h || s != tc.s {
				t.Errorf("got %d/%d/%d, want %d/%d/%d", c, h, s, tc.c, tc.h, tc.s)
			}
		})
	}
}

// TestSynthHuge checks that a sparse 2000 GiB source is ready fast, with
// segments in proportion to its data, and that its BAT reads right at both
// ends.
func TestSynthHuge(t *testing.T) {
	const size = 2000 << 30
	src := synthFakeScattered(size, 1000, 100<<10)
	start := time.Now()
	img, err := SynthesizeDynamic(src)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("synthesize took %v", el)
	}
	if n := len(img.Segments()); n > 4+4*1000 {
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
		for _, k := range synthKinds {
			img, err := k.fn(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := synthCheck(src, img); err != nil {
				t.Fatalf("%s: %v", k.name, err)
			}
		}
	})
}

// ---- benchmarks ----

func BenchmarkSynthesize1TiB(b *testing.B) {
	src := synthFakeScattered(1<<40, 1600, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SynthesizeDynamic(src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSynthReadAt reads a fully allocated 64 MiB source sequentially
// in 1 MiB pieces through the image and through the raw view.
func BenchmarkSynthReadAt(b *testing.B) {
	synthtest.BenchReadAt(b, "vhd-dynamic", SynthesizeDynamic)
}
