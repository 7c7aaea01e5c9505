package vmdk

import (
	"errors"
	"syscall"

	"github.com/vmfs/vmfs/layouts"
	"golang.org/x/sys/unix"
)

// flatExtent is a FLAT or VMFS extent: the bytes are stored in order in a
// file, from a start offset.
type flatExtent struct {
	f    layouts.File
	base int64 // byte offset of the extent in f
	n    int64
	fd   int // -1 when f is not a regular file (no hole seeking)
}

// newFlat makes the extent of n bytes from base in f; fd is f's
// descriptor when f is a regular file (see seekFD), -1 otherwise.
func newFlat(f layouts.File, fd int, base, n int64) (*flatExtent, error) {
	if base > f.Size() || n > f.Size()-base {
		return nil, errf(f.Name(), errFormat, "flat extent needs %d bytes from byte %d but the file holds %d", n, base, f.Size())
	}
	return &flatExtent{f: f, base: base, n: n, fd: fd}, nil
}

// seekFD is the descriptor of f to seek for holes in, or -1 when f is not
// a regular file.
func seekFD(f layouts.File) int {
	if o, ok := layouts.OSFile(f); ok {
		if st, err := o.Stat(); err == nil && st.Mode().IsRegular() {
			return int(o.Fd())
		}
	}
	return -1
}

func (x *flatExtent) readAt(p []byte, off int64) error {
	if err := readFull(x.f, p, x.base+off); err != nil {
		return errf(x.f.Name(), errFormat, "reading flat extent: %v", err)
	}
	return nil
}

func (x *flatExtent) extents(b *layouts.Builder, base, off, n int64) error {
	return x.extentsKind(b, base, off, n, false)
}

// extentsKind reports the file's data as Data and its holes as Hole, or as
// Zero when the layer has a parent (a hole in a flat file is zeros, never
// "read the parent").
func (x *flatExtent) extentsKind(b *layouts.Builder, base, off, n int64, zero bool) error {
	hole := layouts.Hole
	if zero {
		hole = layouts.Zero
	}
	if x.fd < 0 {
		b.Add(base+off, n, layouts.Data)
		return nil
	}
	pos, end := x.base+off, x.base+off+n
	shift := base - x.base
	for pos < end {
		data, err := unix.Seek(x.fd, pos, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, syscall.ENXIO) {
				// No data after pos. Past the end of a file that
				// shrank under us the bytes are missing, not a hole:
				// that range is data, whose reads fail.
				pos = layouts.PastEOF(b, x.fd, pos, end, shift, hole)
				break
			}
			b.Add(pos+shift, end-pos, layouts.Data)
			return nil
		}
		if data >= end {
			break
		}
		b.Add(pos+shift, data-pos, hole)
		h, err := unix.Seek(x.fd, data, unix.SEEK_HOLE)
		if err != nil || h <= data {
			h = end
		}
		h = min(h, end)
		b.Add(data+shift, h-data, layouts.Data)
		pos = h
	}
	b.Add(pos+shift, end-pos, hole)
	return nil
}

func (x *flatExtent) files() []string { return []string{x.f.Name()} }

// zeroExtent is a ZERO extent: no file, reads as zeros.
type zeroExtent struct{}

func (zeroExtent) readAt(p []byte, _ int64) error { clear(p); return nil }
func (zeroExtent) extents(b *layouts.Builder, base, off, n int64) error {
	b.Add(base+off, n, layouts.Zero)
	return nil
}
func (zeroExtent) files() []string { return nil }
