package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/vmfs/vmfs/layouts"
)

const (
	testSize = 3*1024*1024 + 7*512 // not a multiple of any cluster size
)

// builder makes a test image in dir and returns its path.
type builder func(t testing.TB, dir string) string

// convertFrom makes a qcow2 from a fresh random raw image.
func convertFrom(size int64, seed int64, opts ...string) builder {
	return func(t testing.TB, dir string) string {
		src := filepath.Join(dir, "src.raw")
		makeRaw(t, src, size, seed)
		dst := filepath.Join(dir, "img.qcow2")
		qemuImg(t, append(append([]string{"convert", "-f", "raw", "-O", "qcow2"}, opts...), src, dst)...)
		return dst
	}
}

// withIO runs qemu-io commands on the image b builds.
func withIO(b builder, cmds ...string) builder {
	return func(t testing.TB, dir string) string {
		p := b(t, dir)
		qemuIO(t, "qcow2", p, cmds...)
		return p
	}
}

// overlay makes an image over the one b builds, holding the clusters where
// a new random raw image of size differs from the backing file.
func overlay(b builder, bfmt string, size int64, seed int64, opts ...string) builder {
	return func(t testing.TB, dir string) string {
		base := b(t, dir)
		sub := dir
		src := filepath.Join(sub, fmt.Sprintf("src%d.raw", seed))
		makeRaw(t, src, size, seed)
		dst := filepath.Join(sub, fmt.Sprintf("layer%d.qcow2", seed))
		rel := filepath.Base(base)
		args := []string{"create", "-f", "qcow2", "-b", rel, "-F", bfmt}
		args = append(args, opts...)
		qemuImg(t, append(args, dst, fmt.Sprint(size))...)
		// Copy every fourth 64 KiB piece of src over the backing file, so
		// that the overlay holds some clusters and not others.
		data, _ := os.ReadFile(src)
		var cmds []string
		for off := int64(0); off < size; off += 4 << 16 {
			n := min(int64(1)<<16, size-off)
			chunk := filepath.Join(sub, fmt.Sprintf("c%d-%d", seed, off))
			os.WriteFile(chunk, data[off:off+n], 0o644)
			cmds = append(cmds, fmt.Sprintf("write -s %s %d %d", chunk, off, n))
		}
		qemuIO(t, "qcow2", dst, cmds...)
		return dst
	}
}

func rawBase(size int64, seed int64) builder {
	return func(t testing.TB, dir string) string {
		p := filepath.Join(dir, "base.raw")
		makeRaw(t, p, size, seed)
		return p
	}
}

func vdiBase(size int64, seed int64) builder {
	return func(t testing.TB, dir string) string {
		src := filepath.Join(dir, "vdisrc.raw")
		makeRaw(t, src, size, seed)
		p := filepath.Join(dir, "base.vdi")
		qemuImg(t, "convert", "-f", "raw", "-O", "vdi", src, p)
		return p
	}
}

func dataFile(raw bool) builder {
	return func(t testing.TB, dir string) string {
		src := filepath.Join(dir, "src.raw")
		makeRaw(t, src, testSize, 7)
		dst := filepath.Join(dir, "img.qcow2")
		o := "data_file=" + filepath.Join(dir, "img.data") + ",cluster_size=4096"
		if raw {
			o += ",data_file_raw=on"
		}
		qemuImg(t, "create", "-f", "qcow2", "-o", o, dst, fmt.Sprint(testSize))
		qemuImg(t, "convert", "-n", "-f", "raw", "-O", "qcow2", src, dst)
		return dst
	}
}

var zeroWrites = []string{"write -z 65536 131072", "write -z 1000448 4096", "discard 2097152 65536"}

var readCases = []struct {
	name  string
	build builder
}{
	{"v2-64k", convertFrom(testSize, 1, "-o", "compat=0.10")},
	{"v2-4k-zeros", withIO(convertFrom(testSize, 2, "-o", "compat=0.10,cluster_size=4096"), zeroWrites...)},
	{"v3-512", convertFrom(1<<20+512, 3, "-o", "compat=1.1,cluster_size=512")},
	{"v3-4k", convertFrom(testSize, 4, "-o", "cluster_size=4096")},
	{"v3-64k-zeros", withIO(convertFrom(testSize, 5, "-o", "compat=1.1"), zeroWrites...)},
	{"v3-2M", convertFrom(testSize, 6, "-o", "cluster_size=2M")},
	{"v3-odd-size", convertFrom(1_000_001, 7)},
	{"zlib", convertFrom(testSize, 8, "-c")},
	{"zlib-4k", convertFrom(testSize, 9, "-c", "-o", "cluster_size=4096")},
	{"zlib-v2", convertFrom(testSize, 10, "-c", "-o", "compat=0.10")},
	{"zstd", convertFrom(testSize, 11, "-c", "-o", "compression_type=zstd")},
	{"zstd-2M", convertFrom(testSize, 12, "-c", "-o", "compression_type=zstd,cluster_size=2M")},
	{"extended-l2", withIO(convertFrom(testSize, 13, "-o", "extended_l2=on"), "write -z 4096 8192", "write -P 0x5a 1050624 3072", "discard 2097152 65536")},
	{"extended-l2-over-qcow2", withIO(overlay(convertFrom(testSize, 14), "qcow2", testSize, 15, "-o", "extended_l2=on,cluster_size=64k"),
		"write -P 0x11 2048 2048", "write -z 8192 2048", "write -P 0x22 200000 5000", "discard 262144 65536")},
	{"extended-l2-zlib", convertFrom(testSize, 32, "-c", "-o", "extended_l2=on")},
	{"data-file", dataFile(false)},
	{"data-file-raw", dataFile(true)},
	{"qcow2-qcow2-qcow2", withIO(overlay(overlay(convertFrom(testSize, 16), "qcow2", testSize, 17), "qcow2", testSize, 18),
		"write -z 131072 65536", "write -z 300000 1000")},
	{"backing-smaller", overlay(overlay(convertFrom(1<<20, 19), "qcow2", 2<<20, 20), "qcow2", testSize, 21)},
	{"backing-larger", overlay(convertFrom(testSize, 22), "qcow2", 1<<20+4096, 23)},
	{"over-raw", overlay(rawBase(testSize, 24), "raw", testSize, 25)},
	{"over-vdi", overlay(vdiBase(testSize, 26), "vdi", testSize+65536, 27, "-o", "cluster_size=4096")},
	{"v2-over-v3", overlay(convertFrom(testSize, 28), "qcow2", testSize, 29, "-o", "compat=0.10")},
	{"compressed-over-plain", overlay(convertFrom(testSize, 30, "-c"), "qcow2", testSize, 31)},
}

func TestRead(t *testing.T) {
	t.Parallel()
	for _, tc := range readCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.build(t, t.TempDir())
			d := openPath(t, p)
			want := checkAgainstQemu(t, p, "qcow2", d)
			// io.ReaderAt contract, on a window that ends at the disk's end.
			off := max(0, d.Size()-300_000)
			if err := iotest.TestReader(sectionOf(d, off), want[off:]); err != nil {
				t.Fatal(err)
			}
			parallelReads(t, d, want)
		})
	}
}

// sectionOf reads d from off on through the io.Reader interface.
func sectionOf(d layouts.Disk, off int64) *sectionReader {
	return &sectionReader{d: d, off: off, base: off}
}

type sectionReader struct {
	d         layouts.Disk
	off, base int64
}

func (s *sectionReader) Read(p []byte) (int, error) {
	n, err := s.d.ReadAt(p, s.off)
	s.off += int64(n)
	return n, err
}

func (s *sectionReader) ReadAt(p []byte, off int64) (int, error) {
	return s.d.ReadAt(p, s.base+off)
}

func (s *sectionReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case 0:
		s.off = s.base + off
	case 1:
		s.off += off
	case 2:
		s.off = s.d.Size() + off
	}
	if s.off < s.base {
		return 0, errors.New("negative position")
	}
	return s.off - s.base, nil
}

// parallelReads checks random reads made from several goroutines at once.
func parallelReads(t testing.TB, d layouts.Disk, want []byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			buf := make([]byte, 70_000)
			for range 200 {
				n := rng.Intn(len(buf)) + 1
				off := rng.Int63n(d.Size())
				m, err := d.ReadAt(buf[:n], off)
				exp := want[off:min(off+int64(n), d.Size())]
				if m != len(exp) || (err != nil && m == n) || string(buf[:m]) != string(exp) {
					errs <- fmt.Errorf("ReadAt(%d, %d) = %d, %v: wrong bytes", n, off, m, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestBackingFormat checks that backing_fmt is honoured.
func TestBackingFormat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A raw backing file that starts with a qcow2 header: with
	// backing_fmt=raw it must be read as raw, not probed.
	inner := filepath.Join(dir, "inner.qcow2")
	qemuImg(t, "create", "-f", "qcow2", inner, "1M")
	top := filepath.Join(dir, "top.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-b", "inner.qcow2", "-F", "raw", top, "1M")
	d := openPath(t, top)
	checkAgainstQemu(t, top, "qcow2", d)

	// A version 2 header with the backing file name right after it and
	// no extensions (as old qemu wrote them).
	makeRaw(t, filepath.Join(dir, "base.raw"), 1<<20, 60)
	old := filepath.Join(dir, "old.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-o", "compat=0.10", old, "1M")
	b, err := os.ReadFile(old)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[72:], "base.raw\x00\x00\x00\x00\x00\x00\x00\x00")
	binary.BigEndian.PutUint64(b[8:], 72)
	binary.BigEndian.PutUint32(b[16:], uint32(len("base.raw")))
	os.WriteFile(old, b, 0o644)
	d = openPath(t, old)
	checkAgainstQemu(t, old, "qcow2", d)

	// The header says vdi but the file is qcow2.
	bad := filepath.Join(dir, "bad.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-u", "-b", "inner.qcow2", "-F", "vdi", bad, "1M")
	_, err = testOpen(bad, testEnv())
	mustErr(t, err, layouts.ErrFormat, "header says vdi")
}

// TestHostile checks that broken and hostile images fail with a one-line
// error and never panic.
func TestHostile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := convertFrom(testSize, 40, "-o", "cluster_size=4096")(t, dir)
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	l1Off := binary.BigEndian.Uint64(goodBytes[40:])
	l2Off := binary.BigEndian.Uint64(goodBytes[l1Off:]) & offsetMask
	mutate := func(fn func(b []byte) []byte) func(t *testing.T) string {
		return func(t *testing.T) string {
			b := fn(append([]byte(nil), goodBytes...))
			p := filepath.Join(t.TempDir(), "x.qcow2")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint32(b[off:], v); return b }
	}
	put64 := func(off int, v uint64) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint64(b[off:], v); return b }
	}
	cases := []struct {
		name     string
		make     func(t *testing.T) string
		sentinel error
		msg      string
		readErr  bool // opening works, reading must fail
	}{
		{"truncated-header", mutate(func(b []byte) []byte { return b[:60] }), layouts.ErrFormat, "header truncated", false},
		{"truncated-before-l1", mutate(func(b []byte) []byte { return b[:l1Off+4] }), layouts.ErrFormat, "L1 table", false},
		{"l1-past-eof", mutate(put64(40, 1<<40)), layouts.ErrFormat, "points past end of file", false},
		{"l1-size-absurd", mutate(put32(36, 0xffffffff)), layouts.ErrFormat, "too large", false},
		{"l1-too-small", mutate(put32(36, 0)), layouts.ErrFormat, "L1 table has 0 entries", false},
		{"size-absurd", mutate(put64(24, 1<<63)), layouts.ErrFormat, "virtual size", false},
		{"size-huge-l1", mutate(put64(24, 1<<50)), layouts.ErrFormat, "L1 table", false},
		{"cluster-bits", mutate(put32(20, 31)), layouts.ErrFormat, "cluster_bits 31", false},
		{"encrypted-aes", mutate(put32(32, 1)), layouts.ErrUnsupported, "encrypted image (aes)", false},
		{"encrypted-luks", mutate(put32(32, 2)), layouts.ErrUnsupported, "encrypted image (luks)", false},
		{"version-1", mutate(put32(4, 1)), layouts.ErrUnsupported, "qcow version 1", false},
		{"version-4", mutate(put32(4, 4)), layouts.ErrUnsupported, "version 4", false},
		{"unknown-feature", mutate(put64(72, 1<<40)), layouts.ErrUnsupported, "incompatible feature", false},
		{"header-length", mutate(put32(100, 1<<30)), layouts.ErrFormat, "header_length", false},
		{"backing-name-past-eof", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[8:], uint64(len(b)-2))
			binary.BigEndian.PutUint32(b[16:], 100)
			return b
		}), layouts.ErrFormat, "backing file name", false},
		{"l2-past-eof", mutate(put64(int(l1Off), 1<<40|1<<63)), layouts.ErrFormat, "points past end of file", true},
		{"l2-unaligned", mutate(put64(int(l1Off), l2Off+512)), layouts.ErrFormat, "not cluster aligned", true},
		{"data-past-eof", mutate(func(b []byte) []byte {
			for i := range 8 {
				e := binary.BigEndian.Uint64(b[l2Off+uint64(i)*8:])
				if e != 0 {
					binary.BigEndian.PutUint64(b[l2Off+uint64(i)*8:], 1<<63|1<<45)
				}
			}
			return b
		}), layouts.ErrFormat, "points past end of", true},
		{"file-truncated", mutate(func(b []byte) []byte { return b[:len(b)/2] }), layouts.ErrFormat, "past end of", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.make(t)
			d, err := testOpen(p, testEnv())
			if tc.readErr {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				defer d.Close()
				buf := make([]byte, 1<<20)
				var rerr error
				for off := int64(0); off < d.Size() && rerr == nil; off += int64(len(buf)) {
					_, rerr = d.ReadAt(buf, off)
					if rerr == io.EOF {
						rerr = nil
					}
				}
				if rerr == nil {
					_, rerr = d.Extents(0, d.Size())
				}
				err = rerr
			}
			mustErr(t, err, tc.sentinel, tc.msg)
		})
	}
}

// TestChainPolicy checks loops and references outside the allowed
// directories.
func TestChainPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := filepath.Join(dir, "a.qcow2")
	b := filepath.Join(dir, "b.qcow2")
	qemuImg(t, "create", "-f", "qcow2", b, "1M")
	qemuImg(t, "create", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", a, "1M")
	qemuImg(t, "rebase", "-u", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", b)
	_, err := testOpen(a, testEnv())
	mustErr(t, err, layouts.ErrFormat, "loops back")

	self := filepath.Join(dir, "self.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-u", "-b", "self.qcow2", "-F", "qcow2", self, "1M")
	_, err = testOpen(self, testEnv())
	mustErr(t, err, layouts.ErrFormat, "loops back")

	rel, err := filepath.Rel(dir, "/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{rel, "/etc/shadow"} {
		p := filepath.Join(t.TempDir(), "evil.qcow2")
		qemuImg(t, "create", "-f", "qcow2", "-u", "-b", ref, "-F", "raw", p, "1M")
		_, err = testOpen(p, testEnv())
		mustErr(t, err, layouts.ErrRefused, "leads outside")
		// Without a format name the reference goes through OpenParent.
		dropBackingFormat(t, p)
		_, err = testOpen(p, testEnv())
		mustErr(t, err, layouts.ErrRefused, "leads outside")
	}

	proto := filepath.Join(dir, "proto.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-u", "-b", "nbd://example.com/disk", "-F", "raw", proto, "1M")
	_, err = testOpen(proto, testEnv())
	mustErr(t, err, layouts.ErrUnsupported, "protocol")

	missing := filepath.Join(dir, "missing.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-u", "-b", "nowhere.qcow2", "-F", "qcow2", missing, "1M")
	_, err = testOpen(missing, testEnv())
	mustErr(t, err, nil, "missing")
}

// dropBackingFormat turns the backing format header extension of the
// image at p into an unknown (ignored) one.
func dropBackingFormat(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b[:4096], []byte{0xe2, 0x79, 0x2a, 0xca})
	if i < 0 {
		t.Fatal("no backing format extension")
	}
	copy(b[i:], "\x00\x00\x00\x01")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHostileCompressed checks compressed cluster descriptors that point
// outside the file, and compressed data that does not decompress.
func TestHostileCompressed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good, err := os.ReadFile(convertFrom(256<<10, 50, "-c", "-o", "cluster_size=4096")(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	l1Off := binary.BigEndian.Uint64(good[40:])
	l2Off := binary.BigEndian.Uint64(good[l1Off:]) & offsetMask
	// Find the first compressed entry.
	idx := -1
	for i := range 512 {
		if binary.BigEndian.Uint64(good[l2Off+uint64(i)*8:])&flagCompressed != 0 {
			idx = i
			break
		}
	}
	if idx < 0 {
		t.Fatal("no compressed cluster in test image")
	}
	entryAt := l2Off + uint64(idx)*8
	e := binary.BigEndian.Uint64(good[entryAt:])
	hostMask := uint64(1)<<(62-(12-8)) - 1
	cases := []struct {
		name string
		fn   func(b []byte)
		msg  string
	}{
		{"past-eof", func(b []byte) {
			binary.BigEndian.PutUint64(b[entryAt:], e&^hostMask|uint64(len(b))+512)
		}, "points past end of file"},
		{"garbage", func(b []byte) {
			host := e & hostMask
			for i := range 64 {
				b[host+uint64(i)] = 0xff
			}
		}, "compressed cluster"},
		{"empty-stream", func(b []byte) {
			host := e & hostMask
			b[host] = 0x03 // a final empty fixed-Huffman block
			b[host+1] = 0x00
		}, "compressed cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), good...)
			tc.fn(b)
			p := filepath.Join(t.TempDir(), "x.qcow2")
			os.WriteFile(p, b, 0o644)
			d := openPath(t, p)
			buf := make([]byte, 4096)
			_, err := d.ReadAt(buf, int64(idx)*4096)
			mustErr(t, err, layouts.ErrFormat, tc.msg)
		})
	}
}
