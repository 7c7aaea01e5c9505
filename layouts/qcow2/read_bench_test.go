package qcow2

import (
	"math/rand"
	"os"
	"testing"
)

const benchSize = 16 << 20

var benchCases = []struct {
	name  string
	build builder
}{
	{"v3-64k", convertFrom(benchSize, 1)},
	{"v3-4k", convertFrom(benchSize, 2, "-o", "cluster_size=4096")},
	{"zlib", convertFrom(benchSize, 3, "-c")},
	{"zstd", convertFrom(benchSize, 4, "-c", "-o", "compression_type=zstd")},
	{"extended-l2", convertFrom(benchSize, 5, "-o", "extended_l2=on")},
	{"chain-3", overlay(overlay(convertFrom(benchSize, 6), "qcow2", benchSize, 7), "qcow2", benchSize, 8)},
}

// BenchmarkReadAt4K reads random 4 KiB blocks (4 KiB aligned, as a guest
// does).
func BenchmarkReadAt4K(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			d := openPath(b, bc.build(b, b.TempDir()))
			rng := rand.New(rand.NewSource(1))
			offs := make([]int64, 4096)
			for i := range offs {
				offs[i] = rng.Int63n(d.Size()/4096) * 4096
			}
			buf := make([]byte, 4096)
			b.SetBytes(4096)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := d.ReadAt(buf, offs[i%len(offs)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadAt4KParallel is the same from GOMAXPROCS goroutines.
func BenchmarkReadAt4KParallel(b *testing.B) {
	for _, bc := range benchCases[:3] {
		b.Run(bc.name, func(b *testing.B) {
			d := openPath(b, bc.build(b, b.TempDir()))
			b.SetBytes(4096)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewSource(rand.Int63()))
				buf := make([]byte, 4096)
				for pb.Next() {
					if _, err := d.ReadAt(buf, rng.Int63n(d.Size()/4096)*4096); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkExtents walks the whole extent map of a 3-layer chain.
func BenchmarkExtents(b *testing.B) {
	d := openPath(b, benchCases[5].build(b, b.TempDir()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Extents(0, d.Size()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadSeq reads a whole 16 MiB image in 1 MiB pieces, as
// materialize or qemu-img convert would.
func BenchmarkReadSeq(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			d := openPath(b, bc.build(b, b.TempDir()))
			buf := make([]byte, 1<<20)
			b.SetBytes(d.Size())
			b.ReportAllocs()
			for b.Loop() {
				for off := int64(0); off < d.Size(); off += int64(len(buf)) {
					if _, err := d.ReadAt(buf, off); err != nil && off+int64(len(buf)) < d.Size() {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkReadFile reads the image named by $VMFS_BENCH_QCOW2 whole, in
// 1 MiB pieces, to compare with qemu-img convert -O raw on the same file.
func BenchmarkReadFile(b *testing.B) {
	p := os.Getenv("VMFS_BENCH_QCOW2")
	if p == "" {
		b.Skip("set VMFS_BENCH_QCOW2 to an image")
	}
	d := openPath(b, p)
	buf := make([]byte, 1<<20)
	b.SetBytes(d.Size())
	for b.Loop() {
		for off := int64(0); off < d.Size(); off += int64(len(buf)) {
			if _, err := d.ReadAt(buf, off); err != nil && off+int64(len(buf)) < d.Size() {
				b.Fatal(err)
			}
		}
	}
}
