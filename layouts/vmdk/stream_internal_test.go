package vmdk

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// TestInflateLongGrain inflates grains whose compressed form is longer
// than the first read (a grain plus a page): the rest must be read too.
func TestInflateLongGrain(t *testing.T) {
	const grain = 64 << 10
	want := make([]byte, grain)
	rand.Read(want)
	cases := []struct {
		name  string
		flush int // bytes between zlib flushes: each adds an empty stored block
	}{
		{"one-stream", 0},
		{"flush-every-16", 16},
		{"flush-every-4", 4},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var z bytes.Buffer
			w, _ := zlib.NewWriterLevel(&z, zlib.NoCompression)
			for off := 0; off < grain; {
				n := grain - off
				if c.flush > 0 {
					n = min(n, c.flush)
				}
				w.Write(want[off : off+n])
				if c.flush > 0 {
					w.Flush()
				}
				off += n
			}
			w.Close()
			rec := make([]byte, 12, 12+z.Len()+sector)
			binary.LittleEndian.PutUint64(rec, uint64(i)*grain/sector)
			binary.LittleEndian.PutUint32(rec[8:], uint32(z.Len()))
			rec = append(rec, z.Bytes()...)
			rec = append(rec, make([]byte, sector)...) // what follows the grain
			p := filepath.Join(t.TempDir(), "g")
			if err := os.WriteFile(p, rec, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := layouts.OpenFile(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m := &grainMap{f: f, name: p, size: grain * 8, grain: grain, fileSize: f.Size(), compressed: true, markers: true}
			got := make([]byte, grain)
			if err := m.inflateGrain(int64(i), 0, got); err != nil {
				if z.Len() > 2*grain {
					return // longer than any encoder needs: refused
				}
				t.Fatalf("compressed length %d: %v", z.Len(), err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("compressed length %d: bytes differ", z.Len())
			}
			t.Logf("compressed length %d", z.Len())
		})
	}
}
