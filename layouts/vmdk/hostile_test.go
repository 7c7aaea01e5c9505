package vmdk

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// sparseInfo locates the first data grain table entry of a hosted sparse
// file: the byte offset of the entry and of its grain.
func sparseInfo(t testing.TB, b []byte) (h kdmvHeader, gteOff, grainOff int64) {
	t.Helper()
	h = parseKDMV(b)
	gd := int64(h.gdOffset)
	if h.gdOffset == gdAtEnd {
		h = parseKDMV(b[len(b)-1024:])
		gd = int64(h.gdOffset)
	}
	le := binary.LittleEndian
	gt := int64(le.Uint32(b[gd*512:])) * 512
	for j := int64(0); j < int64(h.perGT); j++ {
		if e := le.Uint32(b[gt+j*4:]); e > 1 {
			return h, gt + j*4, int64(e) * 512
		}
	}
	t.Fatal("no data grain")
	return
}

// TestHostile opens damaged and hostile files: each must fail with a one
// line error (at open or at read), never panic, hang or return bytes.
func TestHostile(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	src := join(dir, "src.raw")
	makeRaw(t, src, 1<<20+512, 5)
	sparse := join(dir, "sparse.vmdk")
	qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", src, sparse)
	stream := join(dir, "stream.vmdk")
	qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", src, stream)
	sb, tb := mustRead(t, sparse), mustRead(t, stream)
	le := binary.LittleEndian
	put64 := func(b []byte, off int, v uint64) []byte {
		b = bytes.Clone(b)
		le.PutUint64(b[off:], v)
		return b
	}
	put32 := func(b []byte, off int64, v uint32) []byte {
		b = bytes.Clone(b)
		le.PutUint32(b[off:], v)
		return b
	}
	_, sGTE, _ := sparseInfo(t, sb)
	_, tGTE, tGrain := sparseInfo(t, tb)
	bomb := func() []byte {
		var z bytes.Buffer
		w := zlib.NewWriter(&z)
		w.Write(make([]byte, 1<<20))
		w.Close()
		b := bytes.Clone(tb)
		le.PutUint32(b[tGrain+8:], uint32(z.Len()))
		copy(b[tGrain+12:], z.Bytes())
		return b
	}
	garble := func() []byte {
		b := bytes.Clone(tb)
		for i := tGrain + 20; i < tGrain+60; i++ {
			b[i] ^= 0x5a
		}
		return b
	}
	fb := withFooter(tb)
	footerless := func() []byte {
		b := bytes.Clone(fb)
		clear(b[len(b)-1536 : len(b)-1024])
		return b
	}
	cases := []struct {
		name     string
		data     []byte
		want     string
		atRead   bool // Open succeeds, reads fail
		sentinel error
	}{
		{"truncated-header", sb[:300], "header truncated", false, layouts.ErrFormat},
		{"truncated-grain-table", sb[:sGTE-100], "grain table 0 points past end of file", false, layouts.ErrFormat},
		{"truncated-grains", sb[:len(sb)-70000], "points past end of file", true, layouts.ErrFormat},
		{"absurd-capacity", put64(sb, 12, 1<<50), "grain directory", false, layouts.ErrFormat},
		{"overflowing-capacity", put64(sb, 12, 1<<63+5), "overflows", false, layouts.ErrFormat},
		{"zero-grain-size", put64(sb, 20, 0), "grain size", false, layouts.ErrFormat},
		{"huge-grain-size", put64(sb, 20, 1<<40), "grain size", false, layouts.ErrFormat},
		{"huge-gt", put32(sb, 44, 0xffffffff), "entries per grain table", false, layouts.ErrFormat},
		{"gd-past-eof", put64(sb, 56, 1<<40), "grain directory", false, layouts.ErrFormat},
		{"gd-overflow", put64(sb, 56, 1<<62), "grain directory", false, layouts.ErrFormat},
		{"desc-past-eof", put64(sb, 28, 1<<40), "descriptor", false, layouts.ErrFormat},
		{"gte-past-eof", put32(sb, sGTE, 0x7fffff00), "grain table 0 entry", true, layouts.ErrFormat},
		{"gte-overflow", put32(sb, sGTE, 0xffffffff), "grain table 0 entry", true, layouts.ErrFormat},
		{"newline-damaged", func() []byte { b := bytes.Clone(sb); b[75] = '\n'; return b }(), "newline", false, layouts.ErrFormat},
		{"version-9", put32(sb, 4, 9), "version 9", false, layouts.ErrUnsupported},
		{"compress-algorithm", func() []byte {
			b := bytes.Clone(tb)
			le.PutUint16(b[77:], 7)
			le.PutUint16(b[len(b)-1024+77:], 7)
			return b
		}(), "compression algorithm 7", false, layouts.ErrUnsupported},
		{"zip-bomb", bomb(), "inflates beyond the grain size", true, layouts.ErrFormat},
		{"garbled-deflate", garble(), "compressed grain", true, layouts.ErrFormat},
		{"grain-size-field-huge", put32(tb, tGrain+8, 0xffffffff), "runs past end of file", true, layouts.ErrFormat},
		{"grain-lba-mismatch", put64(tb, int(tGrain), 12345), "marked for sector 12345", true, layouts.ErrFormat},
		{"stream-gte-past-eof", put32(tb, tGTE, 0x7fffff00), "points past end of file", true, layouts.ErrFormat},
		{"stream-truncated", fb[:len(fb)-512], "truncated", false, layouts.ErrFormat},
		{"stream-footer-damaged", footerless(), "footer", false, layouts.ErrFormat},
		{"cowd-huge-gd", func() []byte {
			p := join(dir, "c.vmdk")
			buildCOWD(t, p, 2048, 8, 1)
			return put32(mustRead(t, p), 24, 0x7fffffff)
		}(), "grain directory", false, layouts.ErrFormat},
		{"cowd-short-gd", func() []byte {
			p := join(dir, "c.vmdk")
			buildCOWD(t, p, 2048, 8, 1)
			return put32(mustRead(t, p), 16, 0)
		}(), "grain size", false, layouts.ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := join(dir, c.name+".vmdk")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := layouts.OpenFile(p)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Open(f, testEnv())
			if err == nil {
				defer d.Close()
				if !c.atRead {
					t.Fatal("opened")
				}
				_, err = io.Copy(io.Discard, io.NewSectionReader(d, 0, d.Size()))
				if err == nil {
					t.Fatal("read the whole disk without error")
				}
			} else {
				f.Close()
			}
			if errors.Is(err, layouts.ErrWrongType) {
				t.Errorf("ErrWrongType for a VMDK: %v", err)
			}
			if c.sentinel != nil && !errors.Is(err, c.sentinel) {
				t.Errorf("error %v does not wrap %v", err, c.sentinel)
			}
			checkOneLine(t, err, c.want)
		})
	}
}

// withFooter turns a stream-optimized file whose header holds the grain
// directory offset into one that keeps it in a footer, as VMware writes
// them: the header says GD_AT_END and a footer marker, a copy of the header
// and an end-of-stream marker end the file.
func withFooter(b []byte) []byte {
	le := binary.LittleEndian
	out := bytes.Clone(b)
	le.PutUint64(out[56:], gdAtEnd)
	marker := make([]byte, 512)
	le.PutUint64(marker, 1)
	le.PutUint32(marker[12:], markerFooter)
	out = append(out, marker...)
	out = append(out, b[:512]...)
	return append(out, make([]byte, 512)...)
}

// TestStreamFooter reads a stream-optimized file whose grain directory is
// found through the footer, with qemu-img as the oracle.
func TestStreamFooter(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	src := join(dir, "src.raw")
	makeRaw(t, src, testSize, 77)
	stream := join(dir, "stream.vmdk")
	qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", src, stream)
	footer := join(dir, "footer.vmdk")
	if err := os.WriteFile(footer, withFooter(mustRead(t, stream)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := openPath(t, footer)
	ours := join(dir, "ours.raw")
	dumpRaw(t, d, ours)
	compareQemu(t, ours, footer, "vmdk")
	compareQemu(t, ours, src, "raw")
	checkMap(t, d, footer, false)
}
