package vdi

import (
	"math/rand"
	"testing"
)

// BenchmarkReadAt4K reads random 4 KiB-aligned blocks of a dynamic VDI.
func BenchmarkReadAt4K(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []string
	}{{"dynamic", nil}, {"static", []string{"-o", "static=on"}}} {
		b.Run(bc.name, func(b *testing.B) {
			d := openPath(b, convert(16<<20, 1, bc.opts...)(b, b.TempDir()))
			rng := rand.New(rand.NewSource(1))
			buf := make([]byte, 4096)
			b.SetBytes(4096)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.ReadAt(buf, rng.Int63n(d.Size()/4096)*4096); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
