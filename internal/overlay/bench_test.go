package overlay

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

const benchSize = 64 << 20

func benchFile(b *testing.B) (*File, layouts.Disk) {
	base, _ := testBase(b, benchSize, 1)
	o := openT(b, b.TempDir(), false)
	b.Cleanup(func() { o.Close() })
	return fileT(b, o, "bench", base), base
}

// BenchmarkWrite4KRandom: 4 KiB writes at random aligned offsets, from
// parallel goroutines.
func BenchmarkWrite4KRandom(b *testing.B) {
	f, _ := benchFile(b)
	var seed atomic.Uint64
	b.SetBytes(blockSize)
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 0))
		buf := make([]byte, blockSize)
		fill(r, buf)
		for pb.Next() {
			if _, err := f.WriteAt(buf, r.Int64N(benchSize>>blockShift)<<blockShift); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWrite4KUnaligned: 4 KiB writes straddling two blocks (copy-up
// of both on first touch).
func BenchmarkWrite4KUnaligned(b *testing.B) {
	f, _ := benchFile(b)
	r := rand.New(rand.NewPCG(2, 0))
	buf := make([]byte, blockSize)
	fill(r, buf)
	b.SetBytes(blockSize)
	for b.Loop() {
		if _, err := f.WriteAt(buf, r.Int64N(benchSize-2*blockSize)|1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead128K compares 128 KiB reads of base alone, of an overlay
// file with nothing written, and of written ranges.
func BenchmarkRead128K(b *testing.B) {
	const n = 128 << 10
	run := func(b *testing.B, d interface {
		ReadAt([]byte, int64) (int, error)
	}) {
		buf := make([]byte, n)
		r := rand.New(rand.NewPCG(3, 0))
		b.SetBytes(n)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.ReadAt(buf, r.Int64N(benchSize-n)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("base", func(b *testing.B) {
		_, base := benchFile(b)
		run(b, base)
	})
	b.Run("overhead-null-base", func(b *testing.B) {
		o := openT(b, b.TempDir(), false)
		defer o.Close()
		run(b, fileT(b, o, "null", nullDisk{}))
	})
	b.Run("unwritten", func(b *testing.B) {
		f, _ := benchFile(b)
		run(b, f)
	})
	b.Run("unwritten-others-written", func(b *testing.B) {
		f, _ := benchFile(b)
		buf := make([]byte, blockSize)
		for i := int64(0); i < 1000; i++ {
			f.WriteAt(buf, (i*7919)%(benchSize>>blockShift)<<blockShift)
		}
		run(b, f)
	})
	b.Run("written", func(b *testing.B) {
		f, _ := benchFile(b)
		buf := make([]byte, 1<<20)
		for off := int64(0); off < benchSize; off += int64(len(buf)) {
			f.WriteAt(buf, off)
		}
		run(b, f)
	})
}

// BenchmarkExtents asks the whole map of a file with scattered writes.
func BenchmarkExtents(b *testing.B) {
	f, _ := benchFile(b)
	buf := make([]byte, blockSize)
	for i := int64(0); i < 2000; i++ {
		f.WriteAt(buf, (i*7919)%(benchSize>>blockShift)<<blockShift)
	}
	for b.Loop() {
		if _, err := f.Extents(0, benchSize); err != nil {
			b.Fatal(err)
		}
	}
}

// nullDisk is a base whose reads cost nothing, to measure the overlay's own
// cost.
type nullDisk struct{}

func (nullDisk) ReadAt(p []byte, off int64) (int, error) { return len(p), nil }
func (nullDisk) Size() int64                             { return benchSize }
func (nullDisk) Format() string                          { return "null" }
func (nullDisk) Close() error                            { return nil }
func (nullDisk) Extents(off, n int64) ([]layouts.Extent, error) {
	return []layouts.Extent{{Off: off, Len: n, Kind: layouts.Data}}, nil
}

// BenchmarkWrite4KStrided: serial 4 KiB writes every 52 KiB over a 1 GiB
// sparse base, as `qemu-img bench -w -s 4096 -S 53248 -d 1` does on a
// qcow2 overlay, for comparison.
func BenchmarkWrite4KStrided(b *testing.B) {
	const size = 1 << 30
	o := openT(b, b.TempDir(), false)
	defer o.Close()
	f := fileT(b, o, "strided", sizedNull(size))
	buf := make([]byte, blockSize)
	fill(rand.New(rand.NewPCG(5, 5)), buf)
	b.SetBytes(blockSize)
	var off int64
	for b.Loop() {
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		off = (off + 53248) % (size - blockSize)
	}
}

// sizedNull is a nullDisk of another size.
type sizedNull int64

func (s sizedNull) ReadAt(p []byte, off int64) (int, error) { clear(p); return len(p), nil }
func (s sizedNull) Size() int64                             { return int64(s) }
func (sizedNull) Format() string                            { return "null" }
func (sizedNull) Close() error                              { return nil }
func (s sizedNull) Extents(off, n int64) ([]layouts.Extent, error) {
	return []layouts.Extent{{Off: off, Len: n, Kind: layouts.Hole}}, nil
}
