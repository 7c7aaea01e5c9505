package overlay

import (
	"math/bits"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// The in-memory map of one file. The virtual file is cut into 1 MiB chunks
// of 256 blocks of 4 KiB. A chunk that was never touched has no entry and
// reads from base. A chunk whose blocks are all in one state (all written,
// or all punched) is kept as part of a uniform run of chunks, so that a
// discard of the whole disk or a long sequential write costs one run, not
// one entry per MiB. Any other chunk has a *chunk with two bitmaps.
const (
	blockShift  = 12
	blockSize   = 1 << blockShift
	chunkShift  = 20
	chunkSize   = 1 << chunkShift
	chunkBlocks = 1 << (chunkShift - blockShift)
	chunkWords  = chunkBlocks / 64
)

// state of a block.
type state uint8

const (
	stBase state = iota // never written: reads from base
	stData              // written: reads from the data file
	stZero              // punched: reads as zeros
)

// chunk holds the state of the 256 blocks of a chunk that is not uniform.
//
// Bits are read with atomic loads and no lock. io serializes the writers of
// the chunk (a block being copied up never races with a write to it); dead
// is set under io when the chunk is dropped from the map (truncated,
// punched whole, or compacted into a uniform run): a writer that finds it
// set looks the chunk up again.
//
// A block is Data if its data bit is set, else Zero if its zero bit is set,
// else Base. Writers set the new bit before clearing the old one, so that a
// lock-free reader never sees a block pass through Base.
type chunk struct {
	io   sync.Mutex
	dead bool
	data [chunkWords]atomic.Uint64
	zero [chunkWords]atomic.Uint64
}

func newChunk(st state) *chunk {
	c := &chunk{}
	switch st {
	case stData:
		for i := range c.data {
			c.data[i].Store(^uint64(0))
		}
	case stZero:
		for i := range c.zero {
			c.zero[i].Store(^uint64(0))
		}
	}
	return c
}

func (c *chunk) state(b int) state {
	w, m := b>>6, uint64(1)<<(b&63)
	if c.data[w].Load()&m != 0 {
		return stData
	}
	if c.zero[w].Load()&m != 0 {
		return stZero
	}
	return stBase
}

// set puts blocks [b0, b1) of the chunk in state st. The caller holds io.
func (c *chunk) set(b0, b1 int, st state) {
	for w := b0 >> 6; w < chunkWords && w<<6 < b1; w++ {
		lo, hi := max(b0-w<<6, 0), min(b1-w<<6, 64)
		mask := ^uint64(0) >> (64 - (hi - lo)) << lo
		switch st {
		case stData:
			c.data[w].Or(mask)
			c.zero[w].And(^mask)
		case stZero:
			c.zero[w].Or(mask)
			c.data[w].And(^mask)
		default:
			c.data[w].And(^mask)
			c.zero[w].And(^mask)
		}
	}
}

// uniform reports whether all blocks of the chunk are in one state other
// than Base, and which.
func (c *chunk) uniform() (state, bool) {
	var d, z int
	for w := range chunkWords {
		dw, zw := c.data[w].Load(), c.zero[w].Load()
		d += bits.OnesCount64(dw)
		z += bits.OnesCount64(zw &^ dw)
	}
	switch {
	case d == chunkBlocks:
		return stData, true
	case z == chunkBlocks:
		return stZero, true
	}
	return stBase, false
}

// runs calls fn for the runs of blocks [b0, b1) of the chunk, in order,
// neighbours of the same state merged.
func (c *chunk) runs(b0, b1 int, fn func(b0, b1 int, st state)) {
	start, cur := b0, c.state(b0)
	for b := b0 + 1; b < b1; b++ {
		if s := c.state(b); s != cur {
			fn(start, b, cur)
			start, cur = b, s
		}
	}
	fn(start, b1, cur)
}

// urun is a run of whole chunks [first, first+n) whose blocks are all in
// state st.
type urun struct {
	first, n int64
	st       state
}

func (u urun) end() int64 { return u.first + u.n }

// table is the sparse map of a file: mixed chunks and uniform runs. The
// caller holds the File's mu (read for lookups, write for changes).
type table struct {
	chunks map[int64]*chunk
	uni    []urun // sorted, disjoint, never containing a key of chunks
}

// uniAt returns the index of the first uniform run that ends after ci.
func (t *table) uniAt(ci int64) int {
	return sort.Search(len(t.uni), func(i int) bool { return t.uni[i].end() > ci })
}

// lookup returns the chunk ci, or nil and the state of the whole chunk.
func (t *table) lookup(ci int64) (*chunk, state) {
	if c := t.chunks[ci]; c != nil {
		return c, stBase
	}
	if i := t.uniAt(ci); i < len(t.uni) && t.uni[i].first <= ci {
		return nil, t.uni[i].st
	}
	return nil, stBase
}

// uniRemove drops chunks [c0, c1) from the uniform runs.
func (t *table) uniRemove(c0, c1 int64) {
	i := t.uniAt(c0)
	j := i
	var keep []urun
	for ; j < len(t.uni) && t.uni[j].first < c1; j++ {
		u := t.uni[j]
		if u.first < c0 {
			keep = append(keep, urun{u.first, c0 - u.first, u.st})
		}
		if u.end() > c1 {
			keep = append(keep, urun{c1, u.end() - c1, u.st})
		}
	}
	t.uni = slices.Replace(t.uni, i, j, keep...)
}

// uniAdd makes chunks [c0, c1) a uniform run of state st. The caller has
// removed the chunks of that range.
func (t *table) uniAdd(c0, c1 int64, st state) {
	if c0 >= c1 {
		return
	}
	t.uniRemove(c0, c1)
	i := t.uniAt(c0)
	u := urun{c0, c1 - c0, st}
	// Merge with neighbours of the same state.
	if i > 0 && t.uni[i-1].end() == c0 && t.uni[i-1].st == st {
		i--
		u.first, u.n = t.uni[i].first, c1-t.uni[i].first
		t.uni = slices.Delete(t.uni, i, i+1)
	}
	if i < len(t.uni) && t.uni[i].first == u.end() && t.uni[i].st == st {
		u.n += t.uni[i].n
		t.uni = slices.Delete(t.uni, i, i+1)
	}
	t.uni = slices.Insert(t.uni, i, u)
}

// keys returns the chunk indices in [c0, c1) that have a *chunk, sorted,
// in time bounded by the smaller of the range and the number of chunks.
func (t *table) keys(c0, c1 int64) []int64 {
	var ks []int64
	if c1-c0 <= int64(2*len(t.chunks))+16 {
		for ci := c0; ci < c1; ci++ {
			if t.chunks[ci] != nil {
				ks = append(ks, ci)
			}
		}
		return ks
	}
	for k := range t.chunks {
		if k >= c0 && k < c1 {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// spans calls fn, in order, for what is recorded in chunks [c0, c1): each
// mixed chunk (c set, one chunk) and each uniform run clipped to the range
// (c nil). Chunks with nothing recorded are skipped.
func (t *table) spans(c0, c1 int64, fn func(a, b int64, c *chunk, st state)) {
	ks := t.keys(c0, c1)
	i := t.uniAt(c0)
	for k := 0; k < len(ks) || (i < len(t.uni) && t.uni[i].first < c1); {
		if i < len(t.uni) && t.uni[i].first < c1 && (k == len(ks) || t.uni[i].first < ks[k]) {
			u := t.uni[i]
			fn(max(u.first, c0), min(u.end(), c1), nil, u.st)
			i++
			continue
		}
		fn(ks[k], ks[k]+1, t.chunks[ks[k]], stBase)
		k++
	}
}

// runs calls fn for the block runs recorded in blocks [b0, b1), in order,
// neighbours of the same state merged, including Base for unrecorded
// stretches.
func (t *table) runs(b0, b1 int64, fn func(b0, b1 int64, st state)) {
	if b0 >= b1 {
		return
	}
	cur, start, pos := stBase, b0, b0
	emit := func(a, b int64, st state) {
		if a >= b {
			return
		}
		if st != cur {
			if a > start {
				fn(start, a, cur)
			}
			start, cur = a, st
		}
		pos = b
	}
	c0, c1 := b0>>(chunkShift-blockShift), (b1-1)>>(chunkShift-blockShift)+1
	t.spans(c0, c1, func(a, b int64, c *chunk, st state) {
		lo, hi := max(a*chunkBlocks, b0), min(b*chunkBlocks, b1)
		emit(pos, lo, stBase)
		if c == nil {
			emit(lo, hi, st)
			return
		}
		c.runs(int(lo-a*chunkBlocks), int(hi-a*chunkBlocks), func(x, y int, s state) {
			emit(a*chunkBlocks+int64(x), a*chunkBlocks+int64(y), s)
		})
	})
	emit(pos, b1, stBase)
	fn(start, b1, cur)
}
