package overlay

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzMap feeds the map decoder arbitrary bytes. A map it accepts must
// encode back to the same bytes, and loading it into the in-memory table
// (with its uniform runs and bitmaps) must give back the same blocks.
func FuzzMap(f *testing.F) {
	f.Add(encodeMap(&mapState{size: 10 << 20, baseSize: 10 << 20, baseLimit: 10 << 20, name: "d"}))
	f.Add(encodeMap(&mapState{size: 5<<20 + 7, baseSize: 6 << 20, baseLimit: 5<<20 + 7, name: "disk.vmdk",
		runs: []mrun{{0, 3, stData}, {3, 600, stZero}, {700, 1, stData}, {1000, 281, stData}}}))
	// A map written by a real session.
	base, _ := testBase(f, 3<<20+11, 9)
	dir := f.TempDir()
	o := openT(f, dir, false)
	file := fileT(f, o, "seed", base)
	file.WriteAt(bytes.Repeat([]byte{1}, 1<<20+5), 3000)
	file.Punch(2<<20, 1<<20)
	file.Truncate(4 << 20)
	if err := o.Close(); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(dir, nameKey("seed")+mapExt))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkMapBytes(t, b)
		// The same bytes with a valid checksum, so that the fuzzer
		// reaches the structure checks behind it.
		if len(b) >= 4 {
			fixed := append(bytes.Clone(b[:len(b)-4]), 0, 0, 0, 0)
			binary.LittleEndian.PutUint32(fixed[len(fixed)-4:], crc32.Checksum(fixed[:len(fixed)-4], castagnoli))
			checkMapBytes(t, fixed)
		}
	})
}

func checkMapBytes(t *testing.T, b []byte) {
	{
		m, err := decodeMap(b)
		if err != nil {
			return
		}
		if again := encodeMap(m); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
		fl := &File{t: table{chunks: map[int64]*chunk{}}}
		fl.load(m.runs)
		if len(fl.t.chunks) > 2*len(m.runs) || len(fl.t.uni) > len(m.runs) {
			t.Fatalf("%d runs loaded into %d chunks and %d uniform runs", len(m.runs), len(fl.t.chunks), len(fl.t.uni))
		}
		var got []mrun
		fl.t.runs(0, blocksOf(m.size), func(b0, b1 int64, st state) {
			if st != stBase {
				got = append(got, mrun{b0, b1 - b0, st})
			}
		})
		if want := mergeRuns(m.runs); !slices.Equal(got, want) {
			t.Fatalf("loaded runs %v, want %v", got, want)
		}
	}
}

func mergeRuns(rs []mrun) []mrun {
	var out []mrun
	for _, r := range rs {
		if l := len(out); l > 0 && out[l-1].st == r.st && out[l-1].first+out[l-1].count == r.first {
			out[l-1].count += r.count
			continue
		}
		out = append(out, r)
	}
	return out
}
