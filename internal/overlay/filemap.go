package overlay

import "github.com/vmfs/vmfs/layouts"

// MapFile says where the bytes from off lie in a plain file: the data file
// for written blocks, the base's own mapping for blocks never written. The
// run stops where the state changes.
func (f *File) MapFile(off, n int64) (layouts.FileRange, bool) {
	size := f.size.Load()
	if f.closed.Load() || off < 0 || off >= size {
		return layouts.FileRange{}, false
	}
	end := min(off+n, size)
	var first state
	pos := off
	for pos < end {
		ci := pos >> chunkShift
		ce := min(end, (ci+1)<<chunkShift)
		f.mu.RLock()
		c, st := f.t.lookup(ci)
		f.mu.RUnlock()
		if c == nil {
			if pos == off {
				first = st
			} else if st != first {
				break
			}
			pos = ce
			continue
		}
		stop := false
		for pos < ce {
			be := min(ce, (pos>>blockShift+1)<<blockShift)
			st := c.state(int(pos>>blockShift - ci*chunkBlocks))
			if pos == off {
				first = st
			} else if st != first {
				stop = true
				break
			}
			pos = be
		}
		if stop {
			break
		}
	}
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
