// Package blockmap computes which fixed-size blocks of a source disk hold
// data and where each lands when the allocated blocks are packed one after
// another, as every blocked target format (qcow2 clusters, VMDK grains, VHD,
// VHDX and VDI blocks) lays them out. It holds runs of blocks, not blocks:
// memory follows the source's extent count, never the disk size.
package blockmap

import (
	"fmt"
	"sort"

	"github.com/vmfs/vmfs/layouts"
)

// run is count consecutive allocated blocks starting at block first, packed
// from index.
type run struct {
	first, count, index int64
}

// Map says which blocks of a disk are allocated.
type Map struct {
	blockSize int64
	blocks    int64 // blocks covering the disk (the last may be partial)
	runs      []run
	count     int64
}

// Build walks src's extents and marks every block that holds any Data.
func Build(src layouts.Disk, blockSize int64) (*Map, error) {
	if blockSize <= 0 {
		return nil, fmt.Errorf("blockmap: block size %d", blockSize)
	}
	m := &Map{blockSize: blockSize, blocks: (src.Size() + blockSize - 1) / blockSize}
	err := layouts.Walk(src, 0, src.Size(), func(e layouts.Extent) error {
		if e.Kind != layouts.Data {
			return nil
		}
		first := e.Off / blockSize
		last := (e.End() - 1) / blockSize
		m.add(first, last-first+1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// FromRuns builds a map from (first block, count) pairs in increasing,
// non-overlapping order; for tests and for formats that know their blocks.
func FromRuns(blockSize, blocks int64, pairs [][2]int64) *Map {
	m := &Map{blockSize: blockSize, blocks: blocks}
	for _, p := range pairs {
		m.add(p[0], p[1])
	}
	return m
}

func (m *Map) add(first, count int64) {
	if l := len(m.runs); l > 0 {
		last := &m.runs[l-1]
		end := last.first + last.count
		if first < end { // overlaps the previous run (extents sharing a block)
			if first+count <= end {
				return
			}
			count -= end - first
			first = end
		}
		if first == end {
			last.count += count
			m.count += count
			return
		}
	}
	m.runs = append(m.runs, run{first: first, count: count, index: m.count})
	m.count += count
}

// BlockSize is the block size the map was built with.
func (m *Map) BlockSize() int64 { return m.blockSize }

// Blocks is the number of blocks covering the disk.
func (m *Map) Blocks() int64 { return m.blocks }

// Count is the number of allocated blocks.
func (m *Map) Count() int64 { return m.count }

// Lookup returns the packed index of block b, or false when b holds no data.
func (m *Map) Lookup(b int64) (int64, bool) {
	i := sort.Search(len(m.runs), func(i int) bool { return m.runs[i].first+m.runs[i].count > b })
	if i == len(m.runs) || m.runs[i].first > b {
		return 0, false
	}
	r := m.runs[i]
	return r.index + b - r.first, true
}

// Run is a run of allocated blocks: Count blocks from block First, packed
// from Index.
type Run struct {
	First, Count, Index int64
}

// Runs calls fn for the allocated runs that intersect blocks [first,
// first+n), clipped to that range, in order.
func (m *Map) Runs(first, n int64, fn func(Run) error) error {
	end := first + n
	i := sort.Search(len(m.runs), func(i int) bool { return m.runs[i].first+m.runs[i].count > first })
	for ; i < len(m.runs) && m.runs[i].first < end; i++ {
		r := m.runs[i]
		s := max(r.first, first)
		e := min(r.first+r.count, end)
		if err := fn(Run{First: s, Count: e - s, Index: r.index + s - r.first}); err != nil {
			return err
		}
	}
	return nil
}

// NumRuns is the number of runs held (for memory accounting in tests).
func (m *Map) NumRuns() int { return len(m.runs) }
