package overlay

import (
	"errors"
	"fmt"
	"os"

	"github.com/vmfs/vmfs/layouts"
	"golang.org/x/sys/unix"
)

// Whole files.
//
// A file whose base is one whole source file (a raw disk, a flat VMDK
// extent) can have a data file that holds every byte of it, made as a
// reflink clone of that source file: on a file system that shares blocks
// (XFS with reflink=1, btrfs) the clone costs metadata only, and a write to
// it copies the blocks it touches, never changing the source. Such a data
// file can be handed to the kernel as the backing file of FUSE passthrough:
// reads and writes then go to it without passing through vmfs, which is
// why the whole file must be in it and why it must not be the source (the
// kernel opens the backing file again with the caller's flags, writable
// ones included).
//
// From then on the file is the data file: its map holds one written run
// over the whole size and the whole flag, the size is the data file's
// (writes the kernel made past the end grow it), a punch frees the data
// file's blocks, and a truncation truncates it. The flag is kept across
// sessions, so that a later mount gets passthrough again.

// ErrNoBacking is wrapped by Backing's errors for files that cannot have a
// whole data file: their base is not one whole source file, or they hold
// writes made without one.
var ErrNoBacking = errors.New("no whole data file possible")

// Backing returns the data file, read-write, once it holds every byte of
// the file at its own offset, cloning the base's source file into it the
// first time. The source is only read (FICLONE takes it as the source of
// the clone); where the file system cannot share its blocks with the
// overlay directory (another file system, no reflinks) the clone fails
// and nothing changes.
func (f *File) Backing() (*os.File, error) {
	if f.closed.Load() {
		return nil, f.errClosed()
	}
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.whole.Load() {
		return f.data, nil
	}
	if f.modified.Load() {
		return nil, fmt.Errorf("overlay: %s: holds writes made through vmfs: %w", f.name, ErrNoBacking)
	}
	src, ok := layouts.WholeFile(f.base)
	if !ok {
		return nil, fmt.Errorf("overlay: %s: not one whole source file: %w", f.name, ErrNoBacking)
	}
	size := f.base.Size()
	if err := f.data.Truncate(0); err != nil {
		return nil, fmt.Errorf("overlay: %s: %w", f.name, err)
	}
	if err := unix.IoctlFileClone(int(f.data.Fd()), int(src.Fd())); err != nil {
		return nil, fmt.Errorf("overlay: %s: clone %s into %s: %w", f.name, src.Name(), f.data.Name(), err)
	}
	st, err := f.data.Stat()
	if err == nil && st.Size() != size {
		err = fmt.Errorf("clone holds %d bytes, the source %d", st.Size(), size)
	}
	if err == nil {
		err = unix.Fdatasync(int(f.data.Fd()))
	}
	if err != nil {
		f.data.Truncate(0)
		return nil, fmt.Errorf("overlay: %s: clone of %s: %w", f.name, src.Name(), err)
	}
	f.whole.Store(true)
	f.cloned = true
	f.modified.Store(true)
	f.size.Store(size)
	f.gen.Add(1)
	if err := f.syncLocked(true); err != nil {
		return nil, err
	}
	return f.data, nil
}

// Whole reports whether the data file holds the whole file.
func (f *File) Whole() bool { return f.whole.Load() }

// wholeSize is the size of a whole file: its data file's.
func (f *File) wholeSize() int64 {
	st, err := f.data.Stat()
	if err != nil {
		return f.size.Load()
	}
	return st.Size()
}

func (f *File) wholeRead(p []byte, off int64) (int, error) {
	n, eof := layouts.CheckRead(f.wholeSize(), p, off)
	if n == 0 {
		return 0, eof
	}
	if err := f.readData(p[:n], off); err != nil {
		return 0, err
	}
	return n, eof
}

func (f *File) wholeWrite(p []byte, off int64) (int, error) {
	n, err := f.data.WriteAt(p, off)
	if n > 0 {
		f.grow(off + int64(n))
		f.gen.Add(1)
	}
	if err != nil {
		return n, fmt.Errorf("overlay: %s: write data file at %d: %w", f.name, off, err)
	}
	return n, nil
}

// wholePunch frees [off, off+n) of the data file, or writes zeros there
// where the file system cannot punch: the data file is the content.
func (f *File) wholePunch(off, n int64) error {
	off, n, ok := layouts.Clip(f.wholeSize(), off, n)
	if !ok {
		return nil
	}
	err := unix.Fallocate(int(f.data.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		zeros := make([]byte, min(n, 1<<20))
		for end := off + n; off < end; {
			k := min(end-off, int64(len(zeros)))
			if _, werr := f.data.WriteAt(zeros[:k], off); werr != nil {
				return fmt.Errorf("overlay: %s: zero data file: %w", f.name, werr)
			}
			off += k
		}
		err = nil
	}
	if err != nil {
		return fmt.Errorf("overlay: %s: punch data file: %w", f.name, err)
	}
	f.gen.Add(1)
	return nil
}

// wholeTruncate sets the size of the data file. The caller holds syncMu
// and mu.
func (f *File) wholeTruncate(size int64) error {
	if err := f.data.Truncate(size); err != nil {
		return fmt.Errorf("overlay: %s: truncate data file: %w", f.name, err)
	}
	f.size.Store(size)
	f.baseLimit.Store(min(f.baseLimit.Load(), size))
	f.gen.Add(1)
	return f.syncLocked(true)
}

// wholeMapFile: every byte is in the data file.
func (f *File) wholeMapFile(off, n int64) (layouts.FileRange, bool) {
	size := f.wholeSize()
	if off < 0 || off >= size || n <= 0 {
		return layouts.FileRange{}, false
	}
	return layouts.FileRange{File: f.data, Off: off, Len: min(n, size-off)}, true
}

// wholeRuns is the map of a whole file: one written run over its blocks.
func wholeRuns(size int64) []mrun {
	if nb := blocksOf(size); nb > 0 {
		return []mrun{{first: 0, count: nb, st: stData}}
	}
	return nil
}

// unchangedClone reports whether the data file still shares every block
// with the source file it was cloned from, at the same offsets: nothing was
// written to it. Where the file system does not say, it was changed.
func (f *File) unchangedClone() bool {
	src, ok := layouts.WholeFile(f.base)
	if !ok {
		return false
	}
	a, err := fileExtents(f.data, true)
	if err != nil {
		return false
	}
	b, err := fileExtents(src, true)
	if err != nil {
		return false
	}
	a, b = mergeExtents(a), mergeExtents(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].logical != b[i].logical || a[i].physical != b[i].physical || a[i].length != b[i].length {
			return false
		}
	}
	st, err := f.data.Stat()
	return err == nil && st.Size() == f.base.Size()
}

// mergeExtents joins extents that continue each other both in the file
// and on the device: file systems may record one range as several.
func mergeExtents(exts []fextent) []fextent {
	var out []fextent
	for _, e := range exts {
		if k := len(out) - 1; k >= 0 && out[k].logical+out[k].length == e.logical && out[k].physical+out[k].length == e.physical {
			out[k].length += e.length
			continue
		}
		out = append(out, e)
	}
	return out
}
