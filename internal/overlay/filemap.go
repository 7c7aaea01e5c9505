package overlay

import "github.com/vmfs/vmfs/layouts"

// MapFile says where the bytes from off lie in a plain file: the data file
// for written blocks, the base's own mapping for blocks never written. The
// run stops where the state changes.
func (f *File) MapFile(off, n int64) (layouts.FileRange, bool) {
	if f.whole.Load() && !f.closed.Load() {
		return f.wholeMapFile(off, n)
	}
	size := f.size.Load()
	if f.closed.Load() || off < 0 || off >= size {
		return layouts.FileRange{}, false
	}
	end := min(off+n, size)
	var first state
	pos := f.states(off, end, func(a, _ int64, st state) bool {
		if a == off {
			first = st
			return true
		}
		return st == first
	})
	switch first {
	case stData:
		// The data file may be shorter than the last written block.
		return layouts.FileRange{}, false
	case stBase:
		limit := f.baseLimit.Load()
		if off >= limit {
			return layouts.FileRange{}, false
		}
		return layouts.MapFile(f.base, off, min(pos, limit)-off)
	}
	return layouts.FileRange{}, false
}
