package blockmap

import (
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

func TestBuildAndLookup(t *testing.T) {
	// Data at [100, 200), [4096, 4097) and [10000, 20000) on a 64 KiB disk
	// with 4 KiB blocks: blocks 0, 1, 2..4 allocated.
	segs := []layouts.Segment{
		{Off: 100, Len: 100, Kind: layouts.SegBytes, Bytes: make([]byte, 100)},
		{Off: 4096, Len: 1, Kind: layouts.SegBytes, Bytes: make([]byte, 1)},
		{Off: 10000, Len: 10000, Kind: layouts.SegBytes, Bytes: make([]byte, 10000)},
	}
	img, err := layouts.NewImage("test", 65536, segs)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Build(img, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if m.Count() != 5 || m.NumRuns() != 1 || m.Blocks() != 16 {
		t.Fatalf("count %d runs %d blocks %d", m.Count(), m.NumRuns(), m.Blocks())
	}
	for b, want := range map[int64]int64{0: 0, 1: 1, 4: 4} {
		if got, ok := m.Lookup(b); !ok || got != want {
			t.Errorf("block %d: got %d %v, want %d", b, got, ok, want)
		}
	}
	if _, ok := m.Lookup(5); ok {
		t.Error("block 5 should be unallocated")
	}
}

func TestRunsClip(t *testing.T) {
	m := FromRuns(512, 100, [][2]int64{{2, 3}, {10, 5}, {50, 1}})
	var got []Run
	m.Runs(3, 10, func(r Run) error { got = append(got, r); return nil })
	want := []Run{{3, 2, 1}, {10, 3, 3}}
	if len(got) != len(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v want %v", got, want)
		}
	}
	if idx, ok := m.Lookup(50); !ok || idx != 8 {
		t.Fatalf("lookup 50: %d %v", idx, ok)
	}
}
