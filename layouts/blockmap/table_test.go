package blockmap

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestTablePieces checks that any piece of a generated table equals the
// same bytes of the whole table, ragged edges included.
func TestTablePieces(t *testing.T) {
	m := FromRuns(4096, 70, [][2]int64{{0, 3}, {5, 1}, {9, 20}, {64, 6}})
	cases := []struct {
		name string
		size int64 // table bytes
		gen  func(p []byte, rel int64)
	}{
		{"table32-le", 4 * 80, func(p []byte, rel int64) {
			m.Table32(p, rel, m.Blocks(), binary.LittleEndian, func(i int64) uint32 { return uint32(i) })
		}},
		{"table32-be", 4 * 70, func(p []byte, rel int64) {
			m.Table32(p, rel, m.Blocks(), binary.BigEndian, func(i int64) uint32 { return uint32(i*3 + 1) })
		}},
		{"entries-8", 8 * 70, func(p []byte, rel int64) {
			Entries(p, rel, 8, func(buf []byte, first int64) {
				clear(buf)
				_ = m.Runs(first, int64(len(buf)/8), func(r Run) error {
					for j := r.First; j < r.First+r.Count; j++ {
						binary.BigEndian.PutUint64(buf[(j-first)*8:], uint64(r.Index+j-r.First)<<9|1)
					}
					return nil
				})
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			whole := make([]byte, c.size)
			c.gen(whole, 0)
			for rel := int64(0); rel < c.size; rel += 3 {
				for _, n := range []int64{1, 3, 4, 5, 9, 17} {
					n = min(n, c.size-rel)
					p := make([]byte, n)
					c.gen(p, rel)
					if !bytes.Equal(p, whole[rel:rel+n]) {
						t.Fatalf("[%d,+%d) = %x, want %x", rel, n, p, whole[rel:rel+n])
					}
				}
			}
		})
	}
}
