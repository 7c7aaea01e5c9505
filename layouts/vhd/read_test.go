package vhd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/internal/readtest"
)

var corpus = readtest.Corpus

// --- helpers ---------------------------------------------------------------

var (
	needQemu      = readtest.NeedQemu
	qemuImg       = readtest.QemuImg
	content       = readtest.Content
	writeRaw      = readtest.WriteRaw
	dump          = readtest.Dump
	checkMap      = readtest.CheckMap
	checkExtents  = readtest.CheckExtents
	virtualSizeOf = readtest.VirtualSizeOf
	gunzip        = readtest.Gunzip
	testReader    = readtest.TestReader
)

func openPath(path string, env *layouts.Env) (layouts.Disk, error) {
	f, err := layouts.OpenFile(path)
	if err != nil {
		return nil, err
	}
	d, err := Open(f, env)
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

func testEnv() *layouts.Env { return &layouts.Env{OpenDisk: openPath} }

// --- a test-side writer for what qemu-img cannot make ------------------------

// spec describes a dynamic or differencing VHD to write.
type spec struct {
	data      []byte // virtual content, a multiple of 512 bytes
	blockSize int64
	diskType  uint32
	present   func(sector int64) bool // nil: sectors of non-zero blocks
	uniqueID  [16]byte
	parentID  [16]byte
	parentRel string // W2ru
	parentAbs string // W2ku
	parentURL string // MacX
}

func putFooter(b []byte, size int64, diskType uint32, dataOff uint64, id [16]byte) {
	copy(b, "conectix")
	binary.BigEndian.PutUint32(b[8:], 2)
	binary.BigEndian.PutUint32(b[12:], 0x10000)
	binary.BigEndian.PutUint64(b[16:], dataOff)
	copy(b[28:], "qem2")
	copy(b[36:], "Wi2k")
	binary.BigEndian.PutUint64(b[40:], uint64(size))
	binary.BigEndian.PutUint64(b[48:], uint64(size))
	binary.BigEndian.PutUint16(b[56:], 1000)
	b[58], b[59] = 16, 63
	binary.BigEndian.PutUint32(b[60:], diskType)
	copy(b[68:], id[:])
	binary.BigEndian.PutUint32(b[64:], checksum(b[:512], 64))
}

func utf16Bytes(s string, order binary.ByteOrder) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		order.PutUint16(b[2*i:], c)
	}
	return b
}

func writeSpec(t testing.TB, path string, s spec) {
	t.Helper()
	size := int64(len(s.data))
	nblocks := (size + s.blockSize - 1) / s.blockSize
	bmSize := ((s.blockSize/512/8 + 511) &^ 511)
	if bmSize == 0 {
		bmSize = 512
	}
	batOff := int64(1536)
	batLen := (nblocks*4 + 511) &^ 511
	pos := batOff + batLen
	present := s.present
	if present == nil {
		nonzero := make([]bool, nblocks)
		for b := range nonzero {
			blk := s.data[int64(b)*s.blockSize : min(int64(b+1)*s.blockSize, size)]
			nonzero[b] = !bytes.Equal(blk, make([]byte, len(blk)))
		}
		present = func(sec int64) bool { return nonzero[sec*512/s.blockSize] }
	}
	var file bytes.Buffer
	file.Write(make([]byte, pos))
	bat := make([]byte, batLen)
	for i := range bat {
		bat[i] = 0xFF
	}
	for b := int64(0); b < nblocks; b++ {
		bm := make([]byte, bmSize)
		blk := make([]byte, s.blockSize)
		for i := range blk {
			blk[i] = 0xEE // garbage where sectors are absent
		}
		any := false
		for sec := int64(0); sec < s.blockSize/512 && b*s.blockSize+sec*512 < size; sec++ {
			if present(b*s.blockSize/512 + sec) {
				any = true
				bm[sec/8] |= 0x80 >> (sec % 8)
				copy(blk[sec*512:(sec+1)*512], s.data[b*s.blockSize+sec*512:])
			}
		}
		if !any {
			continue
		}
		binary.BigEndian.PutUint32(bat[4*b:], uint32(pos/512))
		file.Write(bm)
		file.Write(blk)
		pos += bmSize + s.blockSize
	}
	hd := make([]byte, 1024)
	copy(hd, "cxsparse")
	binary.BigEndian.PutUint64(hd[8:], ^uint64(0))
	binary.BigEndian.PutUint64(hd[16:], uint64(batOff))
	binary.BigEndian.PutUint32(hd[24:], 0x10000)
	binary.BigEndian.PutUint32(hd[28:], uint32(nblocks))
	binary.BigEndian.PutUint32(hd[32:], uint32(s.blockSize))
	copy(hd[40:], s.parentID[:])
	name := s.parentRel
	if name == "" {
		name = s.parentAbs
	}
	copy(hd[64:576], utf16Bytes(name, binary.BigEndian))
	li := 0
	addLoc := func(code uint32, data []byte) {
		if len(data) == 0 {
			return
		}
		e := hd[576+24*li:]
		li++
		binary.BigEndian.PutUint32(e[0:], code)
		binary.BigEndian.PutUint32(e[4:], 512)
		binary.BigEndian.PutUint32(e[8:], uint32(len(data)))
		binary.BigEndian.PutUint64(e[16:], uint64(pos))
		pad := make([]byte, 512)
		copy(pad, data)
		file.Write(pad)
		pos += 512
	}
	addLoc(platW2ru, utf16Bytes(s.parentRel, binary.LittleEndian))
	addLoc(platW2ku, utf16Bytes(s.parentAbs, binary.LittleEndian))
	addLoc(platMacX, []byte(s.parentURL))
	binary.BigEndian.PutUint32(hd[36:], checksum(hd, 36))
	ft := make([]byte, 512)
	putFooter(ft, size, s.diskType, 512, s.uniqueID)
	file.Write(ft)
	out := file.Bytes()
	copy(out[0:], ft)
	copy(out[512:], hd)
	copy(out[batOff:], bat)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// --- tests -------------------------------------------------------------------

func TestQemuImages(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	cases := []struct {
		name string
		size int64
		opts string
	}{
		{"dynamic-force-size", 7_340_032 + 1536, "subformat=dynamic,force_size=on"},
		{"fixed-force-size", 3_000_000 - 1024 + 512, "subformat=fixed,force_size=on"},
		{"dynamic-big-holes", 9_437_184 + 4096, "subformat=dynamic"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, holes := content(c.size, int64(i+1))
			src := filepath.Join(dir, c.name+".raw")
			writeRaw(t, src, data, holes)
			img := filepath.Join(dir, c.name+".vhd")
			qemuImg(t, "convert", "-f", "raw", "-O", "vpc", "-o", c.opts, src, img)
			d, err := openPath(img, testEnv())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if want := virtualSizeOf(t, img, "vpc"); d.Size() != want {
				t.Fatalf("size %d, qemu-img says %d", d.Size(), want)
			}
			out := filepath.Join(dir, c.name+".out")
			got := dump(t, d, out)
			qemuImg(t, "compare", "-f", "raw", "-F", "vpc", out, img)
			checkExtents(t, d, got)
			if !strings.Contains(c.opts, "fixed") {
				checkMap(t, d, img, "vpc")
			}
			testReader(t, d, got)
		})
	}
}

func TestBlockSizesAndDifferencing(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	const size = 3*1024*1024 + 7*512
	parentData, _ := content(size, 42)
	childData, _ := content(size, 43)
	pid := [16]byte{1, 2, 3}
	cid := [16]byte{4, 5, 6}
	r := rand.New(rand.NewSource(7))
	mask := make([]bool, size/512)
	for i := 0; i < len(mask); {
		n := r.Intn(300) + 1
		v := r.Intn(2) == 0
		for j := i; j < min(i+n, len(mask)); j++ {
			mask[j] = v
		}
		i += n
	}
	// child sectors absent anywhere in the third 1 MiB: whole blocks missing
	for s := 2 * 2048; s < 3*2048; s++ {
		mask[s] = false
	}
	expect := make([]byte, size)
	for s := range mask {
		src := parentData
		if mask[s] {
			src = childData
		}
		copy(expect[s*512:(s+1)*512], src[s*512:])
	}
	for _, bs := range []int64{4096, 64 << 10, 1 << 20, 2 << 20, 4 << 20} {
		name := "bs" + itoa(bs)
		t.Run("dynamic-"+name, func(t *testing.T) {
			img := filepath.Join(dir, name+".vhd")
			writeSpec(t, img, spec{data: parentData, blockSize: bs, diskType: diskDynamic, uniqueID: pid})
			d, err := openPath(img, testEnv())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			out := filepath.Join(dir, name+".out")
			got := dump(t, d, out)
			if !bytes.Equal(got, parentData) {
				t.Fatal("content differs from the source")
			}
			qemuImg(t, "compare", "-f", "raw", "-F", "vpc", out, img)
			checkExtents(t, d, got)
		})
		t.Run("partial-bitmap-"+name, func(t *testing.T) {
			// a dynamic disk whose clear bitmap bits hide garbage: zeros
			img := filepath.Join(dir, name+"-partial.vhd")
			writeSpec(t, img, spec{data: childData, blockSize: bs, diskType: diskDynamic, uniqueID: cid,
				present: func(s int64) bool { return mask[s] }})
			d, err := openPath(img, testEnv())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			got := dump(t, d, "")
			for s := range mask {
				want := make([]byte, 512)
				if mask[s] {
					want = childData[s*512 : (s+1)*512]
				}
				if !bytes.Equal(got[s*512:(s+1)*512], want) {
					t.Fatalf("sector %d differs", s)
				}
			}
			checkExtents(t, d, got)
		})
		t.Run("differencing-"+name, func(t *testing.T) {
			sub := filepath.Join(dir, name+"-chain")
			os.MkdirAll(sub, 0o755)
			parent := filepath.Join(sub, "parent.vhd")
			writeSpec(t, parent, spec{data: parentData, blockSize: 2 << 20, diskType: diskDynamic, uniqueID: pid})
			child := filepath.Join(sub, "child.vhd")
			writeSpec(t, child, spec{data: childData, blockSize: bs, diskType: diskDiff, uniqueID: cid,
				present: func(s int64) bool { return mask[s] }, parentID: pid,
				parentRel: `.\parent.vhd`, parentAbs: `C:\vms\parent.vhd`})
			d, err := openPath(child, testEnv())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			out := child + ".out"
			got := dump(t, d, out)
			if !bytes.Equal(got, expect) {
				for s := range mask {
					if !bytes.Equal(got[s*512:(s+1)*512], expect[s*512:(s+1)*512]) {
						t.Fatalf("sector %d differs (child present %v)", s, mask[s])
					}
				}
			}
			testReader(t, d, got)
			checkExtents(t, d, got)
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestParentLocators(t *testing.T) {
	dir := t.TempDir()
	const size = 1 << 20
	pdata, _ := content(size, 9)
	cdata, _ := content(size, 10)
	pid, cid := [16]byte{9}, [16]byte{10}
	vms := filepath.Join(dir, "vms")
	os.MkdirAll(vms, 0o755)
	writeSpec(t, filepath.Join(vms, "base.vhd"), spec{data: pdata, blockSize: 1 << 20, diskType: diskDynamic, uniqueID: pid})
	outside := filepath.Join(dir, "outside")
	os.MkdirAll(outside, 0o755)
	writeSpec(t, filepath.Join(outside, "other.vhd"), spec{data: pdata, blockSize: 1 << 20, diskType: diskDynamic, uniqueID: pid})
	half := func(s int64) bool { return s%2 == 0 }
	cases := []struct {
		name    string
		s       spec
		wantErr string
		is      error
	}{
		{"w2ru", spec{parentRel: `.\base.vhd`}, "", nil},
		{"w2ku-basename", spec{parentAbs: `D:\Hyper-V\base.vhd`}, "", nil},
		{"macx", spec{parentURL: "file://localhost" + filepath.Join(vms, "base.vhd")}, "", nil},
		{"uuid-mismatch", spec{parentRel: `base.vhd`, parentID: [16]byte{99}}, "unique id", layouts.ErrFormat},
		{"outside-dir", spec{parentRel: `..\outside\other.vhd`}, "outside", layouts.ErrRefused},
		{"outside-then-local", spec{parentRel: `..\outside\other.vhd`, parentAbs: `C:\x\base.vhd`}, "", nil},
		{"missing", spec{parentRel: `nothere.vhd`}, "not found", nil},
		{"loop", spec{parentRel: `loop.vhd`, parentID: [16]byte{10}}, "loops", layouts.ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.s
			s.data, s.blockSize, s.diskType, s.uniqueID, s.present = cdata, 1<<20, diskDiff, cid, half
			if s.parentID == ([16]byte{}) {
				s.parentID = pid
			}
			name := filepath.Join(vms, c.name+".vhd")
			if c.name == "loop" {
				name = filepath.Join(vms, "loop.vhd")
			}
			writeSpec(t, name, s)
			d, err := openPath(name, testEnv())
			if c.wantErr != "" {
				if err == nil {
					d.Close()
					t.Fatal("opened")
				}
				if !strings.Contains(err.Error(), c.wantErr) || (c.is != nil && !errors.Is(err, c.is)) {
					t.Fatalf("error %q, want %q (%v)", err, c.wantErr, c.is)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("multi-line error %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			got := dump(t, d, "")
			for sec := int64(0); sec < size/512; sec++ {
				want := pdata[sec*512 : sec*512+512]
				if half(sec) {
					want = cdata[sec*512 : sec*512+512]
				}
				if !bytes.Equal(got[sec*512:sec*512+512], want) {
					t.Fatalf("sector %d differs", sec)
				}
			}
		})
	}
}

func TestCorpus(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	cases := []struct {
		file    string
		gz      bool
		wantErr string
	}{
		{"fox-it__dissect.hypervisor__dynamic.vhd.gz", true, ""},
		{"fox-it__dissect.hypervisor__fixed.vhd.gz", true, ""},
		{"log2timeline__dfvfs__ext2.vhd", false, ""},
		{"log2timeline__dfvfs__fat-differential.vhd", false, "parent disk not found"},
		{"log2timeline__dfvfs__image.vhd", false, "checksum"},
		{"log2timeline__dfvfs__image-differential.vhd", false, "checksum"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			src := filepath.Join(corpus, c.file)
			img := filepath.Join(dir, strings.TrimSuffix(c.file, ".gz"))
			if c.gz {
				gunzip(t, src, img)
			} else {
				img = src
			}
			if _, err := os.Stat(img); err != nil {
				t.Skip(err)
			}
			d, err := openPath(img, testEnv())
			if c.wantErr != "" {
				if err == nil {
					d.Close()
					t.Fatal("opened")
				}
				if !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %q, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if want := virtualSizeOf(t, img, "vpc"); d.Size() != want {
				t.Fatalf("size %d, qemu-img says %d", d.Size(), want)
			}
			out := filepath.Join(dir, filepath.Base(img)+".out")
			got := dump(t, d, out)
			qemuImg(t, "compare", "-f", "raw", "-F", "vpc", out, img)
			checkExtents(t, d, got)
		})
	}
}

func TestWrongType(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", []byte("conectix")},
		{"zeros", make([]byte, 4096)},
		{"vhdx", append([]byte("vhdxfile"), make([]byte, 4096)...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			os.WriteFile(p, c.data, 0o644)
			d, err := openPath(p, testEnv())
			if err == nil {
				d.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, layouts.ErrWrongType) {
				t.Fatalf("error %v, want ErrWrongType", err)
			}
		})
	}
}

// hostile edits a valid dynamic image and expects a clear error.
func TestHostile(t *testing.T) {
	dir := t.TempDir()
	data, _ := content(3<<20, 5)
	base := filepath.Join(dir, "base.vhd")
	writeSpec(t, base, spec{data: data, blockSize: 1 << 20, diskType: diskDynamic, uniqueID: [16]byte{1}})
	good, _ := os.ReadFile(base)
	fixFooters := func(b []byte) {
		binary.BigEndian.PutUint32(b[64:], checksum(b[:512], 64))
		copy(b[len(b)-512:], b[:512])
	}
	fixHeader := func(b []byte) {
		binary.BigEndian.PutUint32(b[512+36:], checksum(b[512:1536], 36))
	}
	cases := []struct {
		name    string
		edit    func([]byte) []byte
		wantErr string
		onRead  bool
	}{
		{"truncated-tail", func(b []byte) []byte { return b[:len(b)-4096] }, "past end of file", true},
		{"bad-footer-checksums", func(b []byte) []byte {
			b[64] ^= 1
			b[len(b)-512+64] ^= 1
			return b
		}, "checksum", false},
		{"bad-header-checksum", func(b []byte) []byte { b[512+40] ^= 1; return b }, "checksum", false},
		{"bat-past-eof", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[512+16:], uint64(len(b)-4))
			fixHeader(b)
			return b
		}, "past end of file", false},
		{"block-past-eof", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[1536:], uint32(len(b)/512-2))
			return b
		}, "past end of file", true},
		{"absurd-size", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[48:], 1<<62)
			fixFooters(b)
			return b
		}, "absurd", false},
		{"small-table", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[48:], 1<<40)
			fixFooters(b)
			return b
		}, "too small", false},
		{"block-size-not-pow2", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[512+32:], 3<<20)
			fixHeader(b)
			return b
		}, "power of two", false},
		{"block-size-512", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[512+32:], 512)
			fixHeader(b)
			return b
		}, "below 4096", false},
		{"block-size-huge", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[512+32:], 1<<31)
			fixHeader(b)
			return b
		}, "power of two", false},
		{"header-past-eof", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[16:], 1<<60)
			fixFooters(b)
			return b
		}, "past end of file", false},
		{"unknown-type", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[60:], 7)
			fixFooters(b)
			return b
		}, "disk type 7", false},
		{"fixed-too-short", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[60:], diskFixed)
			binary.BigEndian.PutUint64(b[48:], 1<<30)
			fixFooters(b)
			return b
		}, "fixed disk", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.edit(append([]byte(nil), good...))
			p := filepath.Join(dir, c.name+".vhd")
			os.WriteFile(p, b, 0o644)
			d, err := openPath(p, testEnv())
			if err == nil {
				defer d.Close()
				if !c.onRead {
					t.Fatal("opened")
				}
				_, err = d.ReadAt(make([]byte, d.Size()), 0)
				if err == nil {
					t.Fatal("read without error")
				}
			}
			if !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want %q", err, c.wantErr)
			}
			if errors.Is(err, layouts.ErrWrongType) {
				t.Fatalf("error %q is ErrWrongType", err)
			}
		})
	}
	t.Run("footer-511", func(t *testing.T) {
		b := make([]byte, 8192+511)
		putFooter(b[8192-1:], 8192, diskFixed, ^uint64(0), [16]byte{})
		copy(b[8192:], b[8191:8191+511])
		p := filepath.Join(dir, "old.vhd")
		os.WriteFile(p, b, 0o644)
		_, err := openPath(p, testEnv())
		if !errors.Is(err, layouts.ErrUnsupported) || !strings.Contains(err.Error(), "511-byte") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("footer-copy-used", func(t *testing.T) {
		b := append([]byte(nil), good...)
		b[len(b)-512+64] ^= 1 // end footer corrupt, start copy fine
		p := filepath.Join(dir, "copy.vhd")
		os.WriteFile(p, b, 0o644)
		d, err := openPath(p, testEnv())
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if got := dump(t, d, ""); !bytes.Equal(got, data) {
			t.Fatal("content differs")
		}
	})
}

func TestParallelReads(t *testing.T) {
	dir := t.TempDir()
	data, _ := content(6<<20, 11)
	p := filepath.Join(dir, "p.vhd")
	writeSpec(t, p, spec{data: data, blockSize: 512 << 10, diskType: diskDynamic,
		present: func(s int64) bool { return s%3 != 0 }})
	d, err := openPath(p, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			buf := make([]byte, 70000)
			for i := 0; i < 200; i++ {
				off := r.Int63n(int64(len(data)) - int64(len(buf)))
				if _, err := d.ReadAt(buf, off); err != nil {
					t.Error(err)
					return
				}
				for j := range buf {
					s := (off + int64(j)) / 512
					want := byte(0)
					if s%3 != 0 {
						want = data[off+int64(j)]
					}
					if buf[j] != want {
						t.Errorf("byte %d differs", off+int64(j))
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
}

func BenchmarkReadAt4K(b *testing.B) {
	dir := b.TempDir()
	data, _ := content(32<<20, 3)
	p := filepath.Join(dir, "b.vhd")
	writeSpec(b, p, spec{data: data, blockSize: 2 << 20, diskType: diskDynamic})
	d, err := openPath(p, testEnv())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, 4096)
	r := rand.New(rand.NewSource(1))
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := r.Int63n(int64(len(data))/4096) * 4096
		if _, err := d.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenLarge opens a 2000 GiB dynamic VHD (a 4 MiB BAT) and reads
// 4 KiB at its end.
func BenchmarkOpenLarge(b *testing.B) {
	needQemu(b)
	p := filepath.Join(b.TempDir(), "big.vhd")
	qemuImg(b, "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", p, "2000G")
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d, err := openPath(p, testEnv())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.ReadAt(buf, d.Size()-4096); err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

// BenchmarkExtentsLarge walks the extents of a 2000 GiB dynamic VHD.
func BenchmarkExtentsLarge(b *testing.B) {
	needQemu(b)
	p := filepath.Join(b.TempDir(), "big.vhd")
	qemuImg(b, "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", p, "2000G")
	d, err := openPath(p, testEnv())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := layouts.Allocated(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadSeq1M reads a 32 MiB disk sequentially in 1 MiB pieces.
func BenchmarkReadSeq1M(b *testing.B) {
	data, _ := content(32<<20, 3)
	p := filepath.Join(b.TempDir(), "b.vhd")
	writeSpec(b, p, spec{data: data, blockSize: 2 << 20, diskType: diskDynamic})
	d, err := openPath(p, testEnv())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for off := int64(0); off < int64(len(data)); off += 1 << 20 {
			if _, err := d.ReadAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}
