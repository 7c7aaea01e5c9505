package vhdx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

func TestQemuImages(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	cases := []struct {
		name string
		size int64
		opts string
	}{
		{"dynamic-1M", 5_000_000, "subformat=dynamic,block_size=1M"},
		{"dynamic-8M", 9_000_000 + 512, "subformat=dynamic,block_size=8M,log_size=1M"},
		{"dynamic-32M", 3_000_000, "subformat=dynamic,block_size=32M"},
		{"fixed-1M", 4_000_000, "subformat=fixed,block_size=1M,log_size=1M"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, holes := content(c.size, int64(i+1))
			src := filepath.Join(dir, c.name+".raw")
			writeRaw(t, src, data, holes)
			img := filepath.Join(dir, c.name+".vhdx")
			qemuImg(t, "convert", "-f", "raw", "-O", "vhdx", "-o", c.opts, src, img)
			d, err := openPath(img, testEnv())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if want := virtualSizeOf(t, img, "vhdx"); d.Size() != want {
				t.Fatalf("size %d, qemu-img says %d", d.Size(), want)
			}
			out := filepath.Join(dir, c.name+".out")
			got := dump(t, d, out)
			qemuImg(t, "compare", "-f", "raw", "-F", "vhdx", out, img)
			qemuImg(t, "compare", "-f", "raw", "-F", "raw", out, src)
			checkExtents(t, d, got)
			testReader(t, d, got)
			alloc, err := layouts.Allocated(d)
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := os.Stat(img); alloc > st.Size() {
				t.Fatalf("allocated %d > file size %d", alloc, st.Size())
			}
		})
	}
}

// chain content shared by the differencing tests.
type chain struct {
	size               int64
	parent, child, exp []byte
	mask               []bool
}

func makeChain(size int64) *chain {
	c := &chain{size: size}
	c.parent, _ = content(size, 42)
	c.child, _ = content(size, 43)
	r := rand.New(rand.NewSource(7))
	c.mask = make([]bool, size/512)
	for i := 0; i < len(c.mask); {
		n := r.Intn(300) + 1
		v := r.Intn(2) == 0
		for j := i; j < min(i+n, len(c.mask)); j++ {
			c.mask[j] = v
		}
		i += n
	}
	return c
}

func TestWriterImages(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	data, _ := content(5<<20+3*512, 77)
	cases := []struct {
		name    string
		s       xspec
		zeroBlk map[int64]bool
	}{
		{"plain-1M", xspec{blockSize: mib}, nil},
		{"plain-2M", xspec{blockSize: 2 * mib}, nil},
		{"logical-4096", xspec{blockSize: mib, logical: 4096}, nil},
		{"zero-states", xspec{blockSize: mib, state: func(b int64) uint64 {
			return []uint64{stFullyPresent, stZero, stUnmapped, stUndefined, stNotPresent, stFullyPresent}[b]
		}}, map[int64]bool{1: true, 2: true, 3: true, 4: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.s
			s.data = data
			if s.logical == 4096 {
				s.data = data[:len(data)/4096*4096]
			}
			img := filepath.Join(dir, c.name+".vhdx")
			writeX(t, img, s)
			d, err := openPath(img, testEnv())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			out := filepath.Join(dir, c.name+".out")
			got := dump(t, d, out)
			want := append([]byte(nil), s.data...)
			for b := range c.zeroBlk {
				clear(want[b*mib : (b+1)*mib])
			}
			if !bytes.Equal(got, want) {
				t.Fatal("content differs")
			}
			if s.logical == 512 { // qemu reads 512-byte sectors only
				qemuImg(t, "compare", "-f", "raw", "-F", "vhdx", out, img)
			}
			checkExtents(t, d, got)
			if c.zeroBlk != nil {
				exts, err := d.Extents(0, d.Size())
				if err != nil {
					t.Fatal(err)
				}
				wantExts := []layouts.Extent{
					{Off: 0, Len: mib, Kind: layouts.Data},
					{Off: mib, Len: 3 * mib, Kind: layouts.Zero},
					{Off: 4 * mib, Len: mib, Kind: layouts.Hole},
					{Off: 5 * mib, Len: d.Size() - 5*mib, Kind: layouts.Data},
				}
				if len(exts) != len(wantExts) {
					t.Fatalf("extents %v, want %v", exts, wantExts)
				}
				for i := range exts {
					if exts[i] != wantExts[i] {
						t.Fatalf("extents %v, want %v", exts, wantExts)
					}
				}
			}
		})
	}
}

func TestDifferencing(t *testing.T) {
	dir := t.TempDir()
	for _, logical := range []int64{512, 4096} {
		for _, bs := range []int64{mib, 2 * mib} {
			name := "ls" + itoa(logical) + "-bs" + itoa(bs)
			t.Run(name, func(t *testing.T) {
				c := makeChain(3*mib + 8*kib)
				sub := filepath.Join(dir, name)
				os.MkdirAll(sub, 0o755)
				pguid := guid{1, 2, 3, 4}
				writeX(t, filepath.Join(sub, "base.vhdx"), xspec{data: c.parent, blockSize: bs, logical: logical, dataWrite: pguid})
				sectorMask := func(s int64) bool { return c.mask[s*logical/512] }
				nb := (c.size + bs - 1) / bs
				states := make([]uint64, nb)
				for b := range states {
					states[b] = []uint64{stPartiallyPresent, stNotPresent, stFullyPresent, stZero}[b%4]
				}
				states[nb-1] = stPartiallyPresent
				writeX(t, filepath.Join(sub, "child.avhdx"), xspec{data: c.child, blockSize: bs, logical: logical,
					state: func(b int64) uint64 { return states[b] }, present: sectorMask,
					hasParent: true, dataWrite: guid{9}, linkage: "{" + pguid.String() + "}",
					relPath: `.\base.vhdx`, absPath: `C:\Hyper-V\base.vhdx`})
				want := make([]byte, c.size)
				for off := int64(0); off < c.size; off += logical {
					b := off / bs
					src := c.parent
					switch states[b] {
					case stFullyPresent:
						src = c.child
					case stZero:
						src = make([]byte, c.size)
					case stPartiallyPresent:
						if sectorMask(off / logical) {
							src = c.child
						}
					}
					copy(want[off:off+logical], src[off:])
				}
				d, err := openPath(filepath.Join(sub, "child.avhdx"), testEnv())
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				got := dump(t, d, "")
				for off := int64(0); off < c.size; off += logical {
					if !bytes.Equal(got[off:off+logical], want[off:off+logical]) {
						t.Fatalf("sector at %d differs (block state %d)", off, states[off/bs])
					}
				}
				testReader(t, d, got)
				checkExtents(t, d, got)
			})
		}
	}
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestParentLocator(t *testing.T) {
	dir := t.TempDir()
	c := makeChain(mib)
	vms := filepath.Join(dir, "vms")
	outside := filepath.Join(dir, "outside")
	os.MkdirAll(vms, 0o755)
	os.MkdirAll(outside, 0o755)
	pguid := guid{5, 5, 5}
	writeX(t, filepath.Join(vms, "base.vhdx"), xspec{data: c.parent, blockSize: mib, dataWrite: pguid})
	writeX(t, filepath.Join(outside, "base.vhdx"), xspec{data: c.parent, blockSize: mib, dataWrite: pguid})
	link := "{" + pguid.String() + "}"
	cases := []struct {
		name    string
		s       xspec
		wantErr string
		is      error
	}{
		{"relative", xspec{relPath: `.\base.vhdx`}, "", nil},
		{"absolute-basename", xspec{absPath: `E:\vm\base.vhdx`}, "", nil},
		{"linkage-mismatch", xspec{relPath: `base.vhdx`, linkage: "{00000000-0000-0000-0000-000000000001}"}, "data write guid", layouts.ErrFormat},
		{"linkage-garbage", xspec{relPath: `base.vhdx`, linkage: "not a guid"}, "not a GUID", layouts.ErrFormat},
		{"outside-dir", xspec{relPath: `..\outside\base.vhdx`}, "outside", layouts.ErrRefused},
		{"missing", xspec{relPath: `gone.vhdx`}, "not found", nil},
		{"loop", xspec{relPath: `loop.avhdx`, linkage: "{" + (guid{7}).String() + "}"}, "loops", layouts.ErrFormat},
		{"no-path", xspec{}, "no path", layouts.ErrFormat},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			s := cs.s
			s.data, s.blockSize, s.hasParent, s.dataWrite = c.child, mib, true, guid{7}
			s.state = func(int64) uint64 { return stPartiallyPresent }
			s.present = func(sec int64) bool { return c.mask[sec] }
			if s.linkage == "" {
				s.linkage = link
			}
			p := filepath.Join(vms, cs.name+".avhdx")
			writeX(t, p, s)
			d, err := openPath(p, testEnv())
			if cs.wantErr != "" {
				if err == nil {
					d.Close()
					t.Fatal("opened")
				}
				if !strings.Contains(err.Error(), cs.wantErr) || (cs.is != nil && !errors.Is(err, cs.is)) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %q, want %q (%v)", err, cs.wantErr, cs.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			got := dump(t, d, "")
			for sec := range c.mask {
				src := c.parent
				if c.mask[sec] {
					src = c.child
				}
				if !bytes.Equal(got[sec*512:sec*512+512], src[sec*512:sec*512+512]) {
					t.Fatalf("sector %d differs", sec)
				}
			}
		})
	}
}

func TestLog(t *testing.T) {
	dir := t.TempDir()
	data, _ := content(2*mib, 3)
	lg := guid{0xAB, 1}
	cases := []struct {
		name    string
		s       xspec
		wantErr bool
	}{
		{"clean", xspec{}, false},
		{"guid-no-entries", xspec{logGUID: lg}, false},
		{"pending-entry", xspec{logGUID: lg, logEntry: true}, true},
		{"entry-bad-crc", xspec{logGUID: lg, logEntry: true, badCRC: true}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.s
			s.data, s.blockSize = data, mib
			p := filepath.Join(dir, c.name+".vhdx")
			writeX(t, p, s)
			d, err := openPath(p, testEnv())
			if c.wantErr {
				if err == nil {
					d.Close()
					t.Fatal("opened")
				}
				if !errors.Is(err, layouts.ErrUnsupported) || !strings.Contains(err.Error(), "replayed") {
					t.Fatalf("error %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if got := dump(t, d, ""); !bytes.Equal(got, data) {
				t.Fatal("content differs")
			}
		})
	}
}

func TestCorpus(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	cases := []struct {
		file    string
		wantErr string
	}{
		{"fox-it__dissect.hypervisor__fixed.vhdx.gz", ""},
		{"fox-it__dissect.hypervisor__dynamic.vhdx.gz", ""},
		{"fox-it__dissect.hypervisor__differencing.avhdx.gz", "parent disk not found"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			img := filepath.Join(dir, strings.TrimSuffix(c.file, ".gz"))
			gunzip(t, filepath.Join(corpus, c.file), img)
			d, err := openPath(img, testEnv())
			if c.wantErr != "" {
				if err == nil {
					d.Close()
					t.Fatal("opened")
				}
				if !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %q, want %q", err, c.wantErr)
				}
				// the top layer alone still reads
				f, err := layouts.OpenFile(img)
				if err != nil {
					t.Fatal(err)
				}
				top, err := openTop(f)
				if err != nil {
					f.Close()
					t.Fatal(err)
				}
				defer top.Close()
				readData(t, top, f.Size())
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if want := virtualSizeOf(t, img, "vhdx"); d.Size() != want {
				t.Fatalf("size %d, qemu-img says %d", d.Size(), want)
			}
			out := img + ".out"
			got := dump(t, d, out)
			qemuImg(t, "compare", "-f", "raw", "-F", "vhdx", out, img)
			checkExtents(t, d, got)
		})
	}
}

// readData reads every Data extent of d (a disk too large to dump whole)
// and checks they fit in a file of fsize bytes.
func readData(t *testing.T, d layouts.Disk, fsize int64) {
	t.Helper()
	buf := make([]byte, mib)
	var data, parts int64
	err := layouts.Walk(d, 0, d.Size(), func(e layouts.Extent) error {
		parts++
		if e.Kind != layouts.Data {
			return nil
		}
		data += e.Len
		for off := e.Off; off < e.End(); off += mib {
			n := min(mib, e.End()-off)
			if _, err := d.ReadAt(buf[:n], off); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if data == 0 || data > fsize {
		t.Fatalf("%d bytes of data in a file of %d", data, fsize)
	}
	t.Logf("size %d, %d extents, %d bytes of data", d.Size(), parts, data)
}

func TestWrongType(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", []byte("vhdx")},
		{"zeros", make([]byte, 4096)},
		{"vhd", append(make([]byte, 4096), []byte("conectix")...)},
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

func TestHeaders(t *testing.T) {
	dir := t.TempDir()
	data, _ := content(2*mib, 4)
	good := buildX(xspec{data: data, blockSize: mib, dataWrite: guid{1}})
	setHeader := func(b []byte, i int, seq uint64, dw byte) {
		h := b[header1Off+int64(i)*64*kib:][:headerSize]
		binary.LittleEndian.PutUint64(h[8:], seq)
		h[32] = dw
		putCRC(h)
	}
	cases := []struct {
		name    string
		edit    func(b []byte)
		wantDW  byte
		wantErr string
	}{
		{"second-newer", func(b []byte) { setHeader(b, 0, 5, 0x11); setHeader(b, 1, 6, 0x22) }, 0x22, ""},
		{"first-newer", func(b []byte) { setHeader(b, 0, 9, 0x11); setHeader(b, 1, 6, 0x22) }, 0x11, ""},
		{"newer-corrupt", func(b []byte) {
			setHeader(b, 0, 5, 0x11)
			setHeader(b, 1, 6, 0x22)
			b[header2Off+100] ^= 1
		}, 0x11, ""},
		{"both-corrupt", func(b []byte) { b[header1Off+100] ^= 1; b[header2Off+100] ^= 1 }, 0, "neither header"},
		{"region1-corrupt", func(b []byte) { b[region1Off+100] ^= 1 }, 1, ""},
		{"regions-corrupt", func(b []byte) { b[region1Off+100] ^= 1; b[region2Off+100] ^= 1 }, 0, "region tables"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := append([]byte(nil), good...)
			c.edit(b)
			p := filepath.Join(dir, c.name+".vhdx")
			os.WriteFile(p, b, 0o644)
			d, err := openPath(p, testEnv())
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, layouts.ErrFormat) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if dw := d.(*Disk).DataWriteGUID(); dw[0] != c.wantDW {
				t.Fatalf("data write guid %x, want first byte %x", dw, c.wantDW)
			}
			if got := dump(t, d, ""); !bytes.Equal(got, data) {
				t.Fatal("content differs")
			}
		})
	}
}

func TestHostile(t *testing.T) {
	dir := t.TempDir()
	data, _ := content(3*mib, 5)
	good := buildX(xspec{data: data, blockSize: mib})
	const metaOff, batOff = 2 * mib, 3 * mib
	regions := func(b []byte, fn func(r []byte)) {
		for _, off := range []int64{region1Off, region2Off} {
			r := b[off : off+regionSize]
			fn(r)
			putCRC(r)
		}
	}
	metaItem := func(b []byte, i int) []byte { return b[metaOff+32+32*i:] }
	itemData := func(b []byte, i int) []byte {
		return b[metaOff+int64(binary.LittleEndian.Uint32(metaItem(b, i)[16:])):]
	}
	cases := []struct {
		name    string
		edit    func(b []byte) []byte
		wantErr string
		is      error
		onRead  bool
	}{
		{"truncated-header-section", func(b []byte) []byte { return b[:300*kib] }, "too short", layouts.ErrFormat, false},
		{"truncated-data", func(b []byte) []byte { return b[:len(b)-mib/2] }, "past end of file", layouts.ErrFormat, true},
		{"bat-region-past-eof", func(b []byte) []byte {
			regions(b, func(r []byte) { binary.LittleEndian.PutUint64(r[32:], 1<<40) })
			return b
		}, "outside the file", layouts.ErrFormat, false},
		{"region-count-absurd", func(b []byte) []byte {
			regions(b, func(r []byte) { binary.LittleEndian.PutUint32(r[8:], 1<<30) })
			return b
		}, "entries", layouts.ErrFormat, false},
		{"unknown-required-region", func(b []byte) []byte {
			regions(b, func(r []byte) {
				binary.LittleEndian.PutUint32(r[8:], 3)
				copy(r[80:], []byte("unknown-region!!"))
				binary.LittleEndian.PutUint64(r[96:], mib)
				binary.LittleEndian.PutUint32(r[104:], mib)
				binary.LittleEndian.PutUint32(r[108:], 1)
			})
			return b
		}, "unknown", layouts.ErrUnsupported, false},
		{"block-past-eof", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[batOff:], stFullyPresent|1<<40)
			return b
		}, "past end of file", layouts.ErrFormat, true},
		{"block-offset-zero", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[batOff:], stFullyPresent)
			return b
		}, "past end of file", layouts.ErrFormat, true},
		{"invalid-state", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[batOff+8:], 4)
			return b
		}, "invalid state", layouts.ErrFormat, true},
		{"partial-without-parent", func(b []byte) []byte {
			b[batOff] |= 7
			return b
		}, "without parent", layouts.ErrFormat, true},
		{"block-size-odd", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(itemData(b, 0), 3*mib)
			return b
		}, "block size", layouts.ErrFormat, false},
		{"block-size-huge", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(itemData(b, 0), 1<<31)
			return b
		}, "block size", layouts.ErrFormat, false},
		{"disk-size-absurd", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(itemData(b, 1), 1<<60)
			return b
		}, "64 TiB", layouts.ErrFormat, false},
		{"bat-too-small", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(itemData(b, 1), 60<<40)
			return b
		}, "too small", layouts.ErrFormat, false},
		{"logical-sector-odd", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(itemData(b, 3), 1000)
			return b
		}, "logical sector", layouts.ErrFormat, false},
		{"meta-item-outside", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(metaItem(b, 1)[16:], 1<<30)
			return b
		}, "outside the metadata region", layouts.ErrFormat, false},
		{"meta-count-absurd", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[metaOff+10:], 60000)
			return b
		}, "entries", layouts.ErrFormat, false},
		{"unknown-required-item", func(b []byte) []byte {
			copy(metaItem(b, 2), []byte("unknown-item...."))
			return b
		}, "unknown", layouts.ErrUnsupported, false},
		{"missing-size-item", func(b []byte) []byte {
			copy(metaItem(b, 1), []byte("unknown-item...."))
			binary.LittleEndian.PutUint32(metaItem(b, 1)[24:], 0)
			return b
		}, "virtual disk size", layouts.ErrFormat, false},
		{"log-misplaced", func(b []byte) []byte {
			for _, off := range []int64{header1Off, header2Off} {
				h := b[off : off+headerSize]
				h[48] = 1
				binary.LittleEndian.PutUint64(h[72:], 1<<40)
				putCRC(h)
			}
			return b
		}, "log", layouts.ErrFormat, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.edit(append([]byte(nil), good...))
			p := filepath.Join(dir, c.name+".vhdx")
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
				if _, err2 := d.Extents(0, d.Size()); err2 == nil {
					t.Fatal("extents without error")
				}
			}
			if !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, c.is) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want %q (%v)", err, c.wantErr, c.is)
			}
		})
	}
}

func TestParallelReads(t *testing.T) {
	dir := t.TempDir()
	c := makeChain(6 * mib)
	pguid := guid{3}
	writeX(t, filepath.Join(dir, "base.vhdx"), xspec{data: c.parent, blockSize: mib, dataWrite: pguid})
	p := filepath.Join(dir, "child.avhdx")
	writeX(t, p, xspec{data: c.child, blockSize: mib, state: func(int64) uint64 { return stPartiallyPresent },
		present: func(s int64) bool { return c.mask[s] }, hasParent: true, linkage: pguid.String(), relPath: "base.vhdx"})
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
				off := r.Int63n(c.size - int64(len(buf)))
				if _, err := d.ReadAt(buf, off); err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				for j := range buf {
					s := (off + int64(j)) / 512
					want := c.parent[off+int64(j)]
					if c.mask[s] {
						want = c.child[off+int64(j)]
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
	data, _ := content(32*mib, 3)
	p := filepath.Join(b.TempDir(), "b.vhdx")
	writeX(b, p, xspec{data: data, blockSize: 2 * mib})
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

// BenchmarkOpen2TiB opens a 2 TiB dynamic VHDX with 1 MiB blocks (a 16 MiB
// BAT) holding a little data, and reads its first and last MiB.
func BenchmarkOpen2TiB(b *testing.B) {
	needQemu(b)
	p := filepath.Join(b.TempDir(), "big.vhdx")
	qemuImg(b, "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic,block_size=1M", p, "2T")
	if out, err := exec.Command("qemu-io", "-f", "vhdx", "-c", "write -P 0x5a 0 1M", "-c", "write -P 0xa5 2047G 1M", p).CombinedOutput(); err != nil {
		b.Fatalf("qemu-io: %v: %s", err, out)
	}
	buf := make([]byte, mib)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := openPath(p, testEnv())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.ReadAt(buf, 0); err != nil || buf[0] != 0x5a {
			b.Fatal(err, buf[0])
		}
		if _, err := d.ReadAt(buf, 2047<<30); err != nil || buf[0] != 0xa5 {
			b.Fatal(err, buf[0])
		}
		d.Close()
	}
}

// TestChain reads a three-image chain: base <- mid <- top.
func TestChain(t *testing.T) {
	dir := t.TempDir()
	const size = 3 * mib
	base, _ := content(size, 1)
	mid, _ := content(size, 2)
	top, _ := content(size, 3)
	gBase, gMid := guid{0xBA}, guid{0x3D}
	writeX(t, filepath.Join(dir, "base.vhdx"), xspec{data: base, blockSize: mib, dataWrite: gBase})
	inMid := func(s int64) bool { return s%7 < 3 }
	inTop := func(s int64) bool { return s%5 == 0 }
	writeX(t, filepath.Join(dir, "mid.avhdx"), xspec{data: mid, blockSize: mib, dataWrite: gMid,
		state: func(int64) uint64 { return stPartiallyPresent }, present: inMid,
		hasParent: true, linkage: "{" + gBase.String() + "}", relPath: "base.vhdx"})
	writeX(t, filepath.Join(dir, "top.avhdx"), xspec{data: top, blockSize: mib, dataWrite: guid{0x70},
		state: func(int64) uint64 { return stPartiallyPresent }, present: inTop,
		hasParent: true, linkage: "{" + gMid.String() + "}", relPath: "mid.avhdx"})
	d, err := openPath(filepath.Join(dir, "top.avhdx"), testEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := dump(t, d, "")
	for s := int64(0); s < size/512; s++ {
		want := base
		switch {
		case inTop(s):
			want = top
		case inMid(s):
			want = mid
		}
		if !bytes.Equal(got[s*512:s*512+512], want[s*512:s*512+512]) {
			t.Fatalf("sector %d differs", s)
		}
	}
	checkExtents(t, d, got)
}

// BenchmarkReadSeq1M reads a 32 MiB disk sequentially in 1 MiB pieces.
func BenchmarkReadSeq1M(b *testing.B) {
	data, _ := content(32*mib, 3)
	p := filepath.Join(b.TempDir(), "b.vhdx")
	writeX(b, p, xspec{data: data, blockSize: 2 * mib})
	d, err := openPath(p, testEnv())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, mib)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for off := int64(0); off < int64(len(data)); off += mib {
			if _, err := d.ReadAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}
