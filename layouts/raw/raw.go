// Package raw reads a plain disk image: the virtual disk is the file. Holes
// of a sparse file are reported as holes (SEEK_DATA/SEEK_HOLE).
package raw

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vmfs/vmfs/layouts"
)

// Type is the format name.
const Type = "raw"

// Disk is a raw image.
type Disk struct {
	f    layouts.File
	os   *os.File
	size int64
}

// Open takes any file as raw: probing tries raw last.
func Open(f layouts.File, _ *layouts.Env) (layouts.Disk, error) {
	return New(f), nil
}

// New wraps f. Closing the Disk closes f.
func New(f layouts.File) *Disk {
	d := &Disk{f: f, size: f.Size()}
	if o, ok := layouts.OSFile(f); ok {
		if st, err := o.Stat(); err == nil && st.Mode().IsRegular() {
			d.os = o
		}
	}
	return d
}

func (d *Disk) Size() int64    { return d.size }
func (d *Disk) Format() string { return Type }
func (d *Disk) Close() error   { return d.f.Close() }

// Chain is the one file.
func (d *Disk) Chain() []layouts.Layer { return []layouts.Layer{{File: d.f.Name(), Format: Type}} }

// File is the underlying file, for callers that splice from it.
func (d *Disk) File() layouts.File { return d.f }

func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	n, eof := layouts.CheckRead(d.size, p, off)
	if n == 0 {
		return 0, eof
	}
	m, err := d.f.ReadAt(p[:n], off)
	if err != nil && !(errors.Is(err, io.EOF) && m == n) {
		if errors.Is(err, io.EOF) {
			// The file shrank under us: never serve short data as zeros.
			return m, fmt.Errorf("raw: %s: file shorter than its size %d: %w", d.f.Name(), d.size, io.ErrUnexpectedEOF)
		}
		return m, err
	}
	return n, eof
}

// Extents asks the file system for data and holes where it can; otherwise
// the whole range is data.
func (d *Disk) Extents(off, n int64) ([]layouts.Extent, error) {
	off, n, ok := layouts.Clip(d.size, off, n)
	if !ok {
		return nil, nil
	}
	end := off + n
	if d.os == nil {
		return []layouts.Extent{{Off: off, Len: n, Kind: layouts.Data}}, nil
	}
	return layouts.FileExtents(int(d.os.Fd()), "raw: "+d.f.Name(), off, end)
}

// MapFile: the disk is the file.
func (d *Disk) MapFile(off, n int64) (layouts.FileRange, bool) {
	if d.os == nil || off < 0 || off >= d.size {
		return layouts.FileRange{}, false
	}
	return layouts.FileRange{File: d.os, Off: off, Len: min(n, d.size-off)}, true
}

var (
	_ layouts.Disk       = (*Disk)(nil)
	_ layouts.FileMapper = (*Disk)(nil)
)
