package vhdx

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"syscall"
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

// synthDecoded reads the virtual disk of a synthesized VHDX through its
// own headers, region table, metadata and BAT.
type synthDecoded struct {
	img        io.ReaderAt
	size       int64
	vsize      int64
	blockSize  int64
	chunkRatio int64
	batOff     int64
	batLen     int64
}

func synthDecode(img io.ReaderAt, size int64) (*synthDecoded, error) {
	d := &synthDecoded{img: img, size: size}
	buf := make([]byte, 64<<10)
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
	if err := read(buf[:8], 0); err != nil || string(buf[:8]) != "vhdxfile" {
		return nil, fmt.Errorf("no file identifier (%v)", err)
	}
	for _, off := range []int64{64 << 10, 128 << 10} {
		h := buf[:4096]
		if err := read(h, off); err != nil {
			return nil, err
		}
		sum := binary.LittleEndian.Uint32(h[4:])
		binary.LittleEndian.PutUint32(h[4:], 0)
		if string(h[:4]) != "head" || crc32.Checksum(h, castagnoli) != sum {
			return nil, fmt.Errorf("header at %d: bad signature or checksum", off)
		}
		if binary.LittleEndian.Uint16(h[66:]) != 1 || !bytes.Equal(h[48:64], make([]byte, 16)) {
			return nil, fmt.Errorf("header at %d: version or log guid", off)
		}
	}
	var metaOff int64
	for _, off := range []int64{192 << 10, 256 << 10} {
		if err := read(buf, off); err != nil {
			return nil, err
		}
		sum := binary.LittleEndian.Uint32(buf[4:])
		binary.LittleEndian.PutUint32(buf[4:], 0)
		if string(buf[:4]) != "regi" || crc32.Checksum(buf, castagnoli) != sum {
			return nil, fmt.Errorf("region table at %d: bad signature or checksum", off)
		}
		for i := 0; i < int(binary.LittleEndian.Uint32(buf[8:])); i++ {
			e := buf[16+32*i:]
			o, n := int64(binary.LittleEndian.Uint64(e[16:])), int64(binary.LittleEndian.Uint32(e[24:]))
			if o%synthMiB != 0 || n%synthMiB != 0 {
				return nil, fmt.Errorf("region %d not MiB aligned", i)
			}
			switch [16]byte(e[:16]) {
			case regionBAT:
				d.batOff, d.batLen = o, n
			case regionMetadata:
				metaOff = o
			}
		}
	}
	if err := read(buf[:32+32*5], metaOff); err != nil {
		return nil, err
	}
	if string(buf[:8]) != "metadata" {
		return nil, errors.New("no metadata table")
	}
	items := map[[16]byte][]byte{}
	for i := 0; i < int(binary.LittleEndian.Uint16(buf[10:])); i++ {
		e := buf[32+32*i:]
		v := make([]byte, binary.LittleEndian.Uint32(e[20:]))
		if err := read(v, metaOff+int64(binary.LittleEndian.Uint32(e[16:]))); err != nil {
			return nil, err
		}
		items[[16]byte(e[:16])] = v
	}
	for _, g := range [][16]byte{metaFileParams, metaDiskSize, metaPage83, metaLogicalSect, metaPhysicalSect} {
		if items[g] == nil {
			return nil, fmt.Errorf("metadata item %x missing", g)
		}
	}
	d.blockSize = int64(binary.LittleEndian.Uint32(items[metaFileParams]))
	d.vsize = int64(binary.LittleEndian.Uint64(items[metaDiskSize]))
	if d.blockSize < synthMiB || d.blockSize&(d.blockSize-1) != 0 {
		return nil, fmt.Errorf("block size %d", d.blockSize)
	}
	d.chunkRatio = (1 << 23) * 512 / d.blockSize
	blocks := (d.vsize + d.blockSize - 1) / d.blockSize
	if entries := blocks + (blocks-1)/d.chunkRatio; entries*8 > d.batLen {
		return nil, fmt.Errorf("bat of %d bytes holds fewer than %d entries", d.batLen, entries)
	}
	return d, nil
}

// readAt reads the virtual disk, checking every BAT entry it meets.
func (d *synthDecoded) readAt(p []byte, off int64) error {
	for len(p) > 0 {
		b := off / d.blockSize
		in := off % d.blockSize
		n := min(int64(len(p)), d.blockSize-in)
		var e [8]byte
		if _, err := d.img.ReadAt(e[:], d.batOff+(b+b/d.chunkRatio)*8); err != nil {
			return err
		}
		v := binary.LittleEndian.Uint64(e[:])
		switch v & 7 {
		case 0:
			clear(p[:n])
		case synthFullyPresent:
			at := int64(v &^ (synthMiB - 1))
			if at%synthMiB != 0 || at < d.batOff+d.batLen || at+d.blockSize > d.size {
				return fmt.Errorf("block %d at %d outside the payload area", b, at)
			}
			if _, err := d.img.ReadAt(p[:n], at+in); err != nil && err != io.EOF {
				return err
			}
		default:
			return fmt.Errorf("block %d: state %d", b, v&7)
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
		big    bool
	}{
		{"mixed", 5*MiB + 3*512, []synthPiece{
			{Off: 0, N: 300 << 10},
			{Off: 300 << 10, N: 200 << 10, Zero: true},
			{Off: 2*MiB - 4096, N: 8192},
			{Off: 3*MiB + 777, N: 5000},
			{Off: 5*MiB + 512, N: 1024},
		}, false},
		{"odd-size", 3*MiB + 1000, []synthPiece{
			{Off: 100, N: 1 << 20},
			{Off: 3 * MiB, N: 1000},
		}, false},
		{"all-holes", 7*MiB + 512, nil, false},
		{"all-data", 4*MiB + 4096, []synthPiece{{Off: 0, N: 4*MiB + 4096}}, false},
		{"zeros-only", 2 * MiB, []synthPiece{{Off: 0, N: 2 * MiB, Zero: true}}, false},
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
		big    bool
	}{"sparse-1TiB", 1 << 40, pieces, true})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.big && testing.Short() {
				t.Skip("big image in -short mode")
			}
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
			out := filepath.Join(dir, "out.vhdx")
			synthWriteSparse(t, img, out)

			synthQemuImg(t, "check", "-f", "vhdx", out)
			if !tc.big {
				synthQemuImg(t, "compare", "-f", "raw", "-F", "vhdx", srcPath, out)
			} else {
				// qemu has no block status for VHDX: a whole compare would
				// read the full 1 TiB. Compare windows around the data and
				// at the end instead.
				wins := []synthPiece{{Off: tc.size - 3<<20, N: 3 << 20}}
				for i := 0; i < len(tc.pieces); i += 15 {
					p := tc.pieces[i]
					wins = append(wins, synthPiece{Off: max(0, p.Off-(1<<20)) &^ 511, N: p.N + 2<<20})
				}
				for _, w := range wins {
					opt := func(format, path string) string {
						return fmt.Sprintf("driver=raw,offset=%d,size=%d,file.driver=%s,file.file.filename=%s", w.Off, w.N, format, path)
					}
					synthQemuImg(t, "compare", "--image-opts", opt("raw", srcPath), opt("vhdx", out))
				}
			}
			var info struct {
				Format      string `json:"format"`
				VirtualSize int64  `json:"virtual-size"`
			}
			if err := json.Unmarshal(synthQemuImg(t, "info", "--output=json", "-f", "vhdx", out), &info); err != nil {
				t.Fatal(err)
			}
			if want := (tc.size + 511) / 512 * 512; info.Format != "vhdx" || info.VirtualSize != want {
				t.Errorf("qemu-img info: format %q size %d, want vhdx %d", info.Format, info.VirtualSize, want)
			}
			srcData := synthDataRanges(t, srcPath, "raw")
			dstData := synthDataRanges(t, out, "vhdx")
			if err := synthCovered(srcData, dstData); err != nil {
				t.Error(err)
			}
			// qemu has no block status for VHDX (its map says "all data"), so
			// the file's own allocation is measured: metadata plus the source
			// data rounded out to whole blocks.
			bs := synthBlockSize((tc.size + 511) / 512 * 512)
			var st syscall.Stat_t
			if err := syscall.Stat(out, &st); err != nil {
				t.Fatal(err)
			}
			d, err := synthDecode(img, img.Size())
			if err != nil {
				t.Fatal(err)
			}
			if got, limit := st.Blocks*512, d.batOff+d.batLen+synthSum(srcData)+int64(2*len(srcData))*bs; got > limit {
				t.Errorf("target file allocates %d bytes, source data %d (limit %d)", got, synthSum(srcData), limit)
			}
			t.Logf("source data %d bytes, target file allocates %d", synthSum(srcData), st.Blocks*512)
			if !tc.big {
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
		src := synthFakeScattered(size, 10, 4096)
		img, err := Synthesize(src)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 3<<20)
		if _, err := img.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := mk(64<<20), mk(64<<20), mk(64<<20+512)
	if !bytes.Equal(a, b) {
		t.Error("the same source gave different metadata")
	}
	if bytes.Equal(a[64<<10:64<<10+64], c[64<<10:64<<10+64]) {
		t.Error("different sources gave the same header GUIDs")
	}
}

func TestSynthErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
	}{
		{"empty", 0},
		{"too-large", 64<<40 + 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Synthesize(&synthFake{Length: tc.size})
			if !errors.Is(err, layouts.ErrUnsupported) {
				t.Errorf("err %v, want ErrUnsupported", err)
			}
		})
	}
}

func TestSynthBlockSize(t *testing.T) {
	for _, tc := range []struct {
		size, want int64
	}{
		{1, 1 << 20},
		{1 << 40, 1 << 20},
		{1<<40 + 512, 2 << 20},
		{64 << 40, 64 << 20},
	} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			if got := synthBlockSize(tc.size); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// TestSynthHuge checks that a sparse 64 TiB source is ready fast, with
// segments in proportion to its data, and that its BAT reads right at both
// ends.
func TestSynthHuge(t *testing.T) {
	for _, size := range []int64{1 << 40, 64 << 40} {
		t.Run(fmt.Sprintf("%dGiB", size>>30), func(t *testing.T) {
			src := synthFakeScattered(size, 1000, 100<<10)
			start := time.Now()
			img, err := Synthesize(src)
			if err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el > time.Second {
				t.Errorf("synthesize took %v", el)
			}
			if n := len(img.Segments()); n > 8+2*1000 {
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
		})
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
	synthtest.BenchReadAt(b, "vhdx", Synthesize)
}
