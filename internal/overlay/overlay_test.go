package overlay

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/vmfs/vmfs/layouts"
)

// testSeed varies the random tests: VMFS_OVERLAY_SEED=n (default 0).
var testSeed, _ = strconv.ParseUint(os.Getenv("VMFS_OVERLAY_SEED"), 10, 64)

func openT(t testing.TB, dir string, fresh bool) *Overlay {
	t.Helper()
	o, err := Open(dir, Options{Fresh: fresh})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func fileT(t testing.TB, o *Overlay, name string, base layouts.Disk) *File {
	t.Helper()
	f, err := o.File(name, base)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRandomOps runs goroutines doing random writes, punches and reads on
// an overlay file and on a reference file, each operation holding the lock
// of the region it touches, then compares the whole files, across syncs,
// truncations and Close/reopen.
func TestRandomOps(t *testing.T) {
	cases := []struct {
		name       string
		size       int64
		workers    int
		ops        int
		maxLen     int64
		rounds     int
		regions    int
		punchEvery int
	}{
		{"small-unaligned", 3<<20 + 1234, 4, 150, 20 << 10, 4, 12, 7},
		{"large-writes", 5<<20 + 77, 3, 60, 1536 << 10, 3, 4, 5},
		{"tiny-writes", 1<<20 + 4095, 6, 300, 300, 3, 32, 11},
		{"empty-base", 0, 3, 100, 64 << 10, 3, 6, 9},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base, content := testBase(t, tc.size, uint64(i)+10)
			ref := newRef(t, content)
			dir := t.TempDir()
			o := openT(t, dir, false)
			f := fileT(t, o, "disk.img", base)
			r := rand.New(rand.NewPCG(uint64(i)+testSeed, 99))
			for round := range tc.rounds {
				// Regions cover the current size; the last one lies past
				// it, so that only its operations change the size.
				size := f.Size()
				innerEnd := max(size-8192, 0) // the last region straddles the end
				inner := int64(tc.regions - 1)
				regLen := max((innerEnd+inner-1)/inner, 1)
				bounds := func(reg int) (int64, int64) {
					if reg == tc.regions-1 {
						return innerEnd, size + 1<<20
					}
					return min(int64(reg)*regLen, innerEnd), min(int64(reg+1)*regLen, innerEnd)
				}
				locks := make([]sync.Mutex, tc.regions)
				var wg sync.WaitGroup
				errc := make(chan error, tc.workers)
				for w := range tc.workers {
					wr := rand.New(rand.NewPCG(uint64(round)+testSeed, uint64(w)))
					wg.Add(1)
					go func() {
						defer wg.Done()
						buf := make([]byte, tc.maxLen)
						rbuf := make([]byte, tc.maxLen)
						for k := range tc.ops {
							if w == 0 && k%25 == 24 {
								// Syncs (and their compaction) and
								// Extents race with the others' writes.
								if err := f.Sync(); err != nil {
									errc <- err
									return
								}
								if _, err := f.Extents(0, f.Size()); err != nil {
									errc <- err
									return
								}
							}
							reg := wr.IntN(tc.regions)
							lo, hi := bounds(reg)
							if lo == hi {
								continue
							}
							off := lo + wr.Int64N(hi-lo)
							n := 1 + wr.Int64N(min(tc.maxLen, hi-off))
							locks[reg].Lock()
							err := randomOp(f, ref, wr, k%tc.punchEvery == 0, off, buf[:n], rbuf[:n], reg == tc.regions-1)
							locks[reg].Unlock()
							if err != nil {
								errc <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				close(errc)
				for err := range errc {
					t.Fatal(err)
				}
				checkSame(t, f, ref)
				// Between rounds: truncate, then sync or reopen.
				switch round % 3 {
				case 0:
					ns := r.Int64N(f.Size() + 2<<20)
					if err := f.Truncate(ns); err != nil {
						t.Fatal(err)
					}
					if err := ref.Truncate(ns); err != nil {
						t.Fatal(err)
					}
					checkSame(t, f, ref)
					if err := f.Sync(); err != nil {
						t.Fatal(err)
					}
				case 1:
					if err := o.Close(); err != nil {
						t.Fatal(err)
					}
					o = openT(t, dir, false)
					if o.Unclean() {
						t.Fatal("unclean after a clean close")
					}
					f = fileT(t, o, "disk.img", base)
					if !f.Modified() {
						t.Fatal("reopened file not modified")
					}
					checkSame(t, f, ref)
				}
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// randomOp does one operation on f and ref. rbuf receives reads.
func randomOp(f *File, ref refFile, r *rand.Rand, punch bool, off int64, buf, rbuf []byte, last bool) error {
	if punch {
		n := int64(len(buf))
		if r.IntN(3) == 0 {
			n = int64(r.IntN(3)+1) << 20 // whole chunks
		}
		if !last {
			n = min(n, int64(len(buf)))
		}
		if err := f.Punch(off, n); err != nil {
			return err
		}
		size, _ := ref.Seek(0, io.SeekEnd)
		if off < size && n > 0 {
			return ref.punch(off, min(n, size-off))
		}
		return nil
	}
	if r.IntN(3) == 0 {
		n, err := f.ReadAt(rbuf, off)
		want := make([]byte, len(rbuf))
		m, werr := ref.ReadAt(want, off)
		if n != m || (err == io.EOF) != (werr == io.EOF) || (err != nil && err != io.EOF) {
			return errors.New("read: n/err mismatch: " + errString(err) + " vs " + errString(werr))
		}
		if !bytes.Equal(rbuf[:n], want[:m]) {
			return errors.New("read at " + itoa(off) + ": " + diffAt(rbuf[:n], want[:m]))
		}
		return nil
	}
	fill(r, buf)
	if r.IntN(4) == 0 {
		clear(buf[:len(buf)/2]) // zero runs
	}
	if _, err := f.WriteAt(buf, off); err != nil {
		return err
	}
	_, err := ref.WriteAt(buf, off)
	return err
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestReaderContract(t *testing.T) {
	base, content := testBase(t, 2<<20+333, 5)
	o := openT(t, t.TempDir(), false)
	defer o.Close()
	f := fileT(t, o, "d", base)
	w := bytes.Repeat([]byte("overlay!"), 5000)
	if _, err := f.WriteAt(w, 12345); err != nil {
		t.Fatal(err)
	}
	copy(content[12345:], w)
	if err := f.Punch(1<<20+7, 9000); err != nil {
		t.Fatal(err)
	}
	clear(content[1<<20+7 : 1<<20+7+9000])
	if err := iotest.TestReader(io.NewSectionReader(f, 0, f.Size()), content); err != nil {
		t.Fatal(err)
	}
}

// TestPunch checks punch and zero-range cases against a reference, and that
// punching written blocks frees overlay space.
func TestPunch(t *testing.T) {
	const size = 4<<20 + 100
	cases := []struct {
		name   string
		off, n int64
	}{
		{"inside-one-block", 100, 200},
		{"across-two-blocks", 4000, 300},
		{"aligned-blocks", 8192, 3 * 4096},
		{"unaligned-many-blocks", 5000, 200000},
		{"across-chunk", 1<<20 - 5000, 10000},
		{"whole-chunks", 1 << 20, 2 << 20},
		{"unaligned-whole-chunks", 1<<20 - 1, 2<<20 + 2},
		{"to-end", 3<<20 + 17, 1 << 20},
		{"past-end", size - 50, 1 << 20},
		{"everything", 0, size},
		{"beyond-size", size + 10, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base, content := testBase(t, size, 3)
			ref := newRef(t, content)
			dir := t.TempDir()
			o := openT(t, dir, false)
			f := fileT(t, o, "d", base)
			// Written data over part of the range, so that punch meets
			// base, written and unwritten blocks.
			w := make([]byte, 1<<20+3000)
			fill(rand.New(rand.NewPCG(1, 2)), w)
			for _, at := range []int64{500, 2<<20 + 9} {
				f.WriteAt(w, at)
				ref.WriteAt(w, at)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			before, _, _ := o.Usage()
			if err := f.Punch(tc.off, tc.n); err != nil {
				t.Fatal(err)
			}
			if tc.off < size {
				if err := ref.punch(tc.off, min(tc.n, size-tc.off)); err != nil {
					t.Fatal(err)
				}
			}
			checkSame(t, f, ref)
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			after, _, _ := o.Usage()
			if tc.n >= 2<<20 && tc.off < size && after >= before {
				t.Errorf("usage %d after punch, %d before: nothing freed", after, before)
			}
			// Extents say Zero where whole blocks were punched.
			if fb, lb := (tc.off+blockSize-1)&^(blockSize-1), (tc.off+tc.n)&^(blockSize-1); lb > fb && fb < size {
				exts, err := f.Extents(fb, min(lb, size)-fb)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range exts {
					if e.Kind != layouts.Zero {
						t.Fatalf("punched range reports %+v", e)
					}
				}
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			o = openT(t, dir, false)
			f = fileT(t, o, "d", base)
			checkSame(t, f, ref)
			o.Close()
		})
	}
}

// TestGrowthBounded: the overlay's allocated size follows what was written,
// not the disk size.
func TestGrowthBounded(t *testing.T) {
	base, _ := testBase(t, 64<<20+5, 8)
	dir := t.TempDir()
	o := openT(t, dir, false)
	f := fileT(t, o, "big", base)
	r := rand.New(rand.NewPCG(3, 4))
	blocks := map[int64]bool{}
	buf := make([]byte, blockSize)
	for range 300 {
		b := r.Int64N(f.Size() >> blockShift)
		fill(r, buf)
		if _, err := f.WriteAt(buf, b<<blockShift); err != nil {
			t.Fatal(err)
		}
		blocks[b] = true
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openT(t, dir, false)
	defer o.Close()
	used, files, err := o.Usage()
	if err != nil {
		t.Fatal(err)
	}
	written := int64(len(blocks)) * blockSize
	t.Logf("wrote %d blocks (%d bytes); overlay uses %d bytes in %d files", len(blocks), written, used, files)
	if files != 1 || used < written || used > written+64<<10 {
		t.Fatalf("usage %d bytes in %d files for %d written bytes", used, files, written)
	}
}

// TestUntouchedLeavesNothing: opening files without writing creates no
// entries.
func TestUntouchedLeavesNothing(t *testing.T) {
	base, _ := testBase(t, 1<<20, 1)
	o := openT(t, t.TempDir(), false)
	f := fileT(t, o, "ro", base)
	readAll(t, f)
	if f.Modified() {
		t.Fatal("modified without writes")
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if _, files, _ := o.Usage(); files != 0 {
		t.Fatalf("%d files left for an untouched file", files)
	}
}

// TestReopenChecks: maps that are damaged or made for another base are
// errors naming the file, unless Fresh.
func TestReopenChecks(t *testing.T) {
	base, _ := testBase(t, 2<<20+10, 4)
	other, _ := testBase(t, 2<<20+10, 5)
	shorter, _ := testBase(t, 2<<20, 4)
	prepare := func(t *testing.T) string {
		dir := t.TempDir()
		o := openT(t, dir, false)
		f := fileT(t, o, "vm/disk 1.vmdk", base)
		f.WriteAt(bytes.Repeat([]byte{7}, 100000), 5000)
		f.Punch(1<<20, 1<<20)
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	mapPath := func(dir string) string {
		return filepath.Join(dir, nameKey("vm/disk 1.vmdk")+mapExt)
	}
	corrupt := func(fn func(b []byte) []byte) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			b, err := os.ReadFile(mapPath(dir))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(mapPath(dir), fn(b), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	reencode := func(edit func(m *mapState)) func(t *testing.T, dir string) {
		return corrupt(func(b []byte) []byte {
			m, err := decodeMap(b)
			if err != nil {
				t.Fatal(err)
			}
			edit(m)
			return encodeMap(m)
		})
	}
	cases := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		base    layouts.Disk
		unclean bool
		want    string // "" means no error
	}{
		{"intact", func(*testing.T, string) {}, base, false, ""},
		{"intact-unclean", func(*testing.T, string) {}, base, true, ""},
		{"flipped-byte", corrupt(func(b []byte) []byte { b[50] ^= 1; return b }), base, false, "checksum"},
		{"flipped-byte-unclean", corrupt(func(b []byte) []byte { b[len(b)-9] ^= 1; return b }), base, true, "checksum"},
		{"truncated", corrupt(func(b []byte) []byte { return b[:len(b)-5] }), base, false, "damaged map"},
		{"empty", corrupt(func(b []byte) []byte { return nil }), base, true, "shorter than its header"},
		{"run-past-end", reencode(func(m *mapState) { m.runs = append(m.runs, mrun{10000, 5, stData}) }), base, false, "past the"},
		{"overlapping-runs", reencode(func(m *mapState) { m.runs = append(m.runs, mrun{0, 5, stZero}) }), base, false, "overlaps"},
		{"past-data-file", reencode(func(m *mapState) {
			m.size, m.runs = 100<<20, append(m.runs, mrun{20000, 5, stData})
		}), base, false, "past end of data file"},
		{"other-source", func(*testing.T, string) {}, other, false, "another source"},
		{"other-size", func(*testing.T, string) {}, shorter, false, "another source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := prepare(t)
			tc.damage(t, dir)
			if tc.unclean {
				os.WriteFile(filepath.Join(dir, dirtyName), nil, 0o600)
			}
			o, err := Open(dir, Options{})
			if err == nil {
				if o.Unclean() != tc.unclean {
					t.Fatalf("Unclean() = %v", o.Unclean())
				}
				_, err = o.File("vm/disk 1.vmdk", tc.base)
				o.Close()
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), nameKey("vm/disk 1.vmdk")) {
				t.Fatalf("error %v, want one naming the map and saying %q", err, tc.want)
			}
			if strings.Contains(tc.want, "damaged") || tc.name != "other-source" && tc.name != "other-size" {
				if !errors.Is(err, layouts.ErrFormat) {
					t.Fatalf("error %v does not wrap ErrFormat", err)
				}
			}
			// Fresh discards it.
			o = openT(t, dir, true)
			f := fileT(t, o, "vm/disk 1.vmdk", tc.base)
			if f.Modified() {
				t.Fatal("fresh overlay has modifications")
			}
			o.Close()
		})
	}
}

func TestInUse(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, false)
	defer o.Close()
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v", err)
	}
}

// TestENOSPC fills a small tmpfs: writes fail with ENOSPC, and what was
// synced before survives a reopen.
func TestENOSPC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	dir := filepath.Join(mnt, "ov")
	base, content := testBase(t, 8<<20+99, 6)
	o := openT(t, dir, false)
	f := fileT(t, o, "d", base)
	synced := make([]byte, 300<<10+5)
	fill(rand.New(rand.NewPCG(6, 6)), synced)
	const at = 1<<20 + 3
	if _, err := f.WriteAt(synced, at); err != nil {
		t.Fatal(err)
	}
	copy(content[at:], synced)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var werr error
	for off := int64(2 << 20); off < 8<<20 && werr == nil; off += int64(len(buf)) {
		fill(rand.New(rand.NewPCG(uint64(off), 1)), buf)
		_, werr = f.WriteAt(buf, off)
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v, want ENOSPC", werr)
	}
	t.Logf("write error: %v", werr)
	// The file is still consistent: the synced range reads back.
	got := make([]byte, len(synced))
	if _, err := f.ReadAt(got, at); err != nil || !bytes.Equal(got, synced) {
		t.Fatalf("synced range after ENOSPC: %v %s", err, diffAt(got, synced))
	}
	cerr := o.Close() // may fail: the map may not fit
	t.Logf("close on a full file system: %v", cerr)
	o = openT(t, dir, false)
	defer o.Close()
	f = fileT(t, o, "d", base)
	all := readAll(t, f)
	if !bytes.Equal(all[at:at+len(synced)], synced) {
		t.Fatalf("synced data lost: %s", diffAt(all[at:at+len(synced)], synced))
	}
	if !bytes.Equal(all[:2<<20], content[:2<<20]) {
		t.Fatalf("content before the filled range: %s", diffAt(all[:2<<20], content[:2<<20]))
	}
}

// TestExtents checks the kinds the merged view reports.
func TestExtents(t *testing.T) {
	// Base: data [0, 10000), hole [10000, 3 MiB), data [3 MiB, 3 MiB+5000).
	data := bytes.Repeat([]byte{9}, 10000)
	tail := bytes.Repeat([]byte{8}, 5000)
	base, err := layouts.NewImage("raw", 3<<20+5000, []layouts.Segment{
		{Off: 0, Len: 10000, Kind: layouts.SegBytes, Bytes: data},
		{Off: 3 << 20, Len: 5000, Kind: layouts.SegBytes, Bytes: tail},
	})
	if err != nil {
		t.Fatal(err)
	}
	type ext = layouts.Extent
	x := func(off, n int64, k layouts.Kind) ext { return ext{Off: off, Len: n, Kind: k} }
	const (
		H = layouts.Hole
		Z = layouts.Zero
		D = layouts.Data
	)
	cases := []struct {
		name string
		do   func(f *File) error
		want []ext
	}{
		{"untouched", func(*File) error { return nil },
			[]ext{x(0, 10000, D), x(10000, 3<<20-10000, H), x(3<<20, 5000, D)}},
		{"write-in-hole", func(f *File) error { _, err := f.WriteAt([]byte{1}, 20000); return err },
			[]ext{x(0, 10000, D), x(10000, 16384-10000, H), x(16384, 4096, D), x(20480, 3<<20-20480, H), x(3<<20, 5000, D)}},
		{"punch-data", func(f *File) error { return f.Punch(0, 8192) },
			[]ext{x(0, 8192, Z), x(8192, 10000-8192, D), x(10000, 3<<20-10000, H), x(3<<20, 5000, D)}},
		{"shrink-and-grow", func(f *File) error {
			if err := f.Truncate(3<<20 + 100); err != nil {
				return err
			}
			return f.Truncate(4 << 20)
		}, []ext{x(0, 10000, D), x(10000, 3<<20-10000, H), x(3<<20, 100, D), x(3<<20+100, 1<<20-100, H)}},
		{"write-past-end", func(f *File) error { _, err := f.WriteAt([]byte{1}, 5<<20); return err },
			[]ext{x(0, 10000, D), x(10000, 3<<20-10000, H), x(3<<20, 5000, D), x(3<<20+5000, 2<<20-5000, H), x(5<<20, 1, D)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := openT(t, t.TempDir(), false)
			defer o.Close()
			f := fileT(t, o, "e", base)
			if err := tc.do(f); err != nil {
				t.Fatal(err)
			}
			got, err := f.Extents(0, f.Size())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("extents\n got %v\nwant %v", got, tc.want)
			}
			checkExtents(t, f, readAll(t, f))
		})
	}
}
