package layouts

import (
	"io"
)

// Stack resolves a layer of a chain over its parent: the holes of top read
// from parent (zeros past the parent's end); Data and Zero of top win. The
// result has top's size and format. Closing it closes both.
func Stack(top, parent Disk) Disk {
	if parent == nil {
		return top
	}
	return &stacked{top: top, parent: parent}
}

type stacked struct {
	top, parent Disk
}

func (s *stacked) Size() int64    { return s.top.Size() }
func (s *stacked) Format() string { return s.top.Format() }

// Top is the newest layer.
func (s *stacked) Top() Disk { return s.top }

// Parent is the layer below the newest.
func (s *stacked) Parent() Disk { return s.parent }

// Parents counts the layers under d: 0 for a disk that is no delta, 1
// for a delta over a base, and so on. It follows Parent() of d and of
// each layer (a chain's disk, a VMDK delta).
func Parents(d Disk) int {
	n := 0
	for n < 1<<10 {
		p, ok := d.(interface{ Parent() Disk })
		if !ok {
			return n
		}
		next := p.Parent()
		if next == nil {
			return n
		}
		d = next
		n++
	}
	return n
}

func (s *stacked) Close() error {
	err := s.top.Close()
	if perr := s.parent.Close(); err == nil {
		err = perr
	}
	return err
}

func (s *stacked) ReadAt(p []byte, off int64) (int, error) {
	n, eof := CheckRead(s.Size(), p, off)
	if n == 0 {
		return 0, eof
	}
	exts, err := s.top.Extents(off, int64(n))
	if err != nil {
		return 0, err
	}
	for _, e := range exts {
		buf := p[e.Off-off : e.End()-off]
		switch e.Kind {
		case Data:
			if _, err := s.top.ReadAt(buf, e.Off); err != nil && err != io.EOF {
				return 0, err
			}
		case Zero:
			clear(buf)
		case Hole:
			if err := readParent(s.parent, buf, e.Off); err != nil {
				return 0, err
			}
		}
	}
	return n, eof
}

func readParent(parent Disk, buf []byte, off int64) error {
	psize := parent.Size()
	inside := 0
	if off < psize {
		inside = int(min(int64(len(buf)), psize-off))
		if _, err := parent.ReadAt(buf[:inside], off); err != nil && err != io.EOF {
			return err
		}
	}
	clear(buf[inside:])
	return nil
}

func (s *stacked) Extents(off, n int64) ([]Extent, error) {
	off, n, ok := Clip(s.Size(), off, n)
	if !ok {
		return nil, nil
	}
	exts, err := s.top.Extents(off, n)
	if err != nil {
		return nil, err
	}
	var b Builder
	for _, e := range exts {
		if e.Kind != Hole {
			b.Add(e.Off, e.Len, e.Kind)
			continue
		}
		psize := s.parent.Size()
		if e.Off < psize {
			pexts, err := s.parent.Extents(e.Off, min(e.Len, psize-e.Off))
			if err != nil {
				return nil, err
			}
			for _, pe := range pexts {
				b.Add(pe.Off, pe.Len, pe.Kind)
			}
		}
		if e.End() > psize {
			start := max(e.Off, psize)
			b.Add(start, e.End()-start, Hole)
		}
	}
	return b.Extents(), nil
}
