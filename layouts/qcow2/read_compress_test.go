package qcow2

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// TestCompressedSectorCount: a compressed cluster descriptor bounds the
// compressed data by its sector count. Data that needs more sectors than
// the descriptor names does not decompress, for QEMU (the oracle) as for
// vmfs: nothing past the named sectors is read.
func TestCompressedSectorCount(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"zlib", "zstd"} {
		t.Run(ct, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			good, err := os.ReadFile(convertFrom(256<<10, 51, "-c", "-o", "cluster_size=4096,compression_type="+ct)(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			const clusterBits = 12
			x := uint(62 - (clusterBits - 8))
			countMask := uint64(1)<<(clusterBits-8) - 1
			l1Off := binary.BigEndian.Uint64(good[40:])
			l2Off := binary.BigEndian.Uint64(good[l1Off:]) & offsetMask
			idx := -1
			for i := range 512 {
				e := binary.BigEndian.Uint64(good[l2Off+uint64(i)*8:])
				if e&flagCompressed != 0 && e>>x&countMask > 0 {
					idx = i
					break
				}
			}
			if idx < 0 {
				t.Fatal("no compressed cluster over more than one sector in the test image")
			}
			at := l2Off + uint64(idx)*8
			b := append([]byte(nil), good...)
			binary.BigEndian.PutUint64(b[at:], binary.BigEndian.Uint64(b[at:])&^(countMask<<x))
			p := filepath.Join(dir, "short.qcow2")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("qemu-img", "convert", "-O", "raw", p, filepath.Join(dir, "out.raw")).CombinedOutput(); err == nil {
				t.Fatalf("qemu-img read the cluster whose descriptor names too few sectors: the oracle disagrees\n%s", out)
			}
			d := openPath(t, p)
			_, err = d.ReadAt(make([]byte, 4096), int64(idx)*4096)
			mustErr(t, err, layouts.ErrFormat, "compressed cluster")
		})
	}
}
