package vmdk

import (
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/vmfs/vmfs/layouts"
)

// dataAt are the offsets where make1TiB writes 1 MiB or 2 MiB of data.
var dataAt = []int64{0, 100 << 30, 500 << 30, 1023 << 30}

// make1TiB creates a 1 TiB monolithicSparse VMDK holding 5 MiB of data.
func make1TiB(tb testing.TB) string {
	tb.Helper()
	needQemu(tb)
	img := join(tb.TempDir(), "big.vmdk")
	qemuImg(tb, "create", "-q", "-f", "vmdk", img, "1T")
	qemuIO(tb, img, "write -P 0x11 0 1M", "write -P 0x22 100G 1M", "write -P 0x33 500G 2M", "write -P 0x44 1023G 1M")
	return img
}

func openFile(tb testing.TB, path string) layouts.Disk {
	tb.Helper()
	f, err := layouts.OpenFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	d, err := Open(f, nil)
	if err != nil {
		f.Close()
		tb.Fatal(err)
	}
	return d
}

// TestOpenLarge checks that opening a 1 TiB sparse VMDK reads its grain
// directory only: fast, and with memory bounded by the directory.
func TestOpenLarge(t *testing.T) {
	img := make1TiB(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	d := openFile(t, img)
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	defer d.Close()
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("open of a 1 TiB monolithicSparse: %v, %d KiB allocated", took, alloc>>10)
	if alloc > 2<<20 {
		t.Errorf("open allocated %d bytes", alloc)
	}
	if took > 2*time.Second { // generous: the machine is shared
		t.Errorf("open took %v", took)
	}
	if d.Size() != 1<<40 {
		t.Fatalf("size %d", d.Size())
	}
	alloced, err := layouts.Allocated(d)
	if err != nil {
		t.Fatal(err)
	}
	if alloced != 5<<20 {
		t.Errorf("allocated %d bytes, want %d", alloced, 5<<20)
	}
	buf := make([]byte, 4096)
	for i, at := range dataAt {
		if _, err := d.ReadAt(buf, at+4096); err != nil {
			t.Fatal(err)
		}
		if want := byte(0x11 * (i + 1)); buf[0] != want || buf[4095] != want {
			t.Errorf("at %d: %#x, want %#x", at, buf[0], want)
		}
	}
	if _, err := d.ReadAt(buf, 1<<40-100); err != io.EOF {
		t.Errorf("read past the end: %v", err)
	}
}

// TestParallelReads reads one disk from many goroutines (run with -race).
func TestParallelReads(t *testing.T) {
	needQemu(t)
	for _, sub := range []string{"monolithicSparse", "streamOptimized"} {
		t.Run(sub, func(t *testing.T) {
			dir := t.TempDir()
			src := join(dir, "src.raw")
			makeRaw(t, src, testSize, 21)
			img := join(dir, "d.vmdk")
			qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, src, img)
			want := mustRead(t, src)
			d := openFile(t, img)
			defer d.Close()
			errs := make(chan error, 8)
			for g := range 8 {
				go func() {
					r := rand.New(rand.NewPCG(uint64(g), 3))
					buf := make([]byte, 70000)
					for range 200 {
						n := r.IntN(len(buf)) + 1
						off := r.Int64N(int64(len(want) - n))
						if _, err := d.ReadAt(buf[:n], off); err != nil {
							errs <- err
							return
						}
						if string(buf[:n]) != string(want[off:off+int64(n)]) {
							errs <- fmt.Errorf("wrong bytes at %d+%d", off, n)
							return
						}
					}
					errs <- nil
				}()
			}
			for range 8 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen1TiB(b *testing.B) {
	img := make1TiB(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := openFile(b, img)
		d.Close()
	}
}

// benchRandom reads 4 KiB at random offsets of the data of the 1 TiB disk.
func benchRandom(b *testing.B, parallel bool) {
	img := make1TiB(b)
	d := openFile(b, img)
	defer d.Close()
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		buf := make([]byte, 4096)
		r := rand.New(rand.NewPCG(1, 2))
		for b.Loop() {
			off := dataAt[r.IntN(len(dataAt))] + r.Int64N(1<<20-4096)&^4095
			if _, err := d.ReadAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 4096)
		r := rand.New(rand.NewPCG(rand.Uint64(), 2))
		for pb.Next() {
			off := dataAt[r.IntN(len(dataAt))] + r.Int64N(1<<20-4096)&^4095
			if _, err := d.ReadAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkReadAt4KRandom(b *testing.B)         { benchRandom(b, false) }
func BenchmarkReadAt4KRandomParallel(b *testing.B) { benchRandom(b, true) }

// BenchmarkExtents1TiB walks the whole extent map of the 1 TiB disk (every
// grain table is read once).
func BenchmarkExtents1TiB(b *testing.B) {
	img := make1TiB(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := openFile(b, img)
		if _, err := layouts.Allocated(d); err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

// BenchmarkStreamReadAt4K reads 4 KiB at random offsets of a
// streamOptimized disk (compressed grains, inflated into the cache).
func BenchmarkStreamReadAt4K(b *testing.B) {
	needQemu(b)
	dir := b.TempDir()
	src := join(dir, "src.raw")
	makeRaw(b, src, 32<<20, 8)
	img := join(dir, "s.vmdk")
	qemuImg(b, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", src, img)
	d := openFile(b, img)
	defer d.Close()
	buf := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := d.ReadAt(buf, r.Int64N(32<<20-4096)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStreamSequential reads a 32 MiB streamOptimized disk of random
// content in 1 MiB pieces, as a conversion does.
func BenchmarkStreamSequential(b *testing.B) {
	needQemu(b)
	dir := b.TempDir()
	src := join(dir, "src.raw")
	makeRaw(b, src, 32<<20, 8)
	img := join(dir, "s.vmdk")
	qemuImg(b, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", src, img)
	buf := make([]byte, 1<<20)
	b.SetBytes(32 << 20)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := openFile(b, img)
		for off := int64(0); off < d.Size(); off += int64(len(buf)) {
			if _, err := d.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
		d.Close()
	}
}

// BenchmarkSparseSequential reads a 64 MiB monolithicSparse disk in 1 MiB
// pieces, as a conversion does.
func BenchmarkSparseSequential(b *testing.B) {
	needQemu(b)
	dir := b.TempDir()
	src := join(dir, "src.raw")
	makeRaw(b, src, 64<<20, 8)
	img := join(dir, "s.vmdk")
	qemuImg(b, "convert", "-f", "raw", "-O", "vmdk", src, img)
	buf := make([]byte, 1<<20)
	b.SetBytes(64 << 20)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := openFile(b, img)
		for off := int64(0); off < d.Size(); off += int64(len(buf)) {
			if _, err := d.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
		d.Close()
	}
}
