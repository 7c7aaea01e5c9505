package materialize

import (
	"context"
	"errors"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
)

// A view's bytes that are a plain byte range of a source file (raw disks,
// flat extents, uncompressed grains, the base under an overlay's unwritten
// blocks: layouts.MapFile) are placed without passing through user space:
// cloned (FICLONERANGE: the output shares the source's blocks, copy on
// write, so a later write to either never shows in the other) where the
// source offset, the output offset and the length align to the output's
// block size, moved by copy_file_range elsewhere on a file system where a
// clone worked (the kernel copies, or itself shares), and read and written
// where neither works. The source
// stays open read-only: both calls only read it.

// copier places the chunks of one output file.
type copier struct {
	out *os.File
	bs  int64 // block size of the output's file system
	// Set once a call says this pair of files cannot do it, so that later
	// chunks go straight to what works.
	noClone, noCopyRange atomic.Bool
	// cloned is set once a clone worked: the file system shares blocks,
	// and copy_file_range (which it may do by sharing too) is worth a
	// try for ranges that do not align. Elsewhere (ext4, tmpfs) it is
	// slower than this package's parallel reads and writes, and skips no
	// zeros: measured 1.26 s against 0.75 s for a 4 GiB VMDK with 1.5 GiB
	// of data on ext4.
	cloned atomic.Bool
}

func newCopier(out *os.File) *copier {
	c := &copier{out: out, bs: 4096}
	var st unix.Statfs_t
	if unix.Fstatfs(int(out.Fd()), &st) == nil && st.Bsize > 0 {
		c.bs = st.Bsize
	}
	return c
}

// chunk places [off, off+len(buf)) of src into the output and returns the
// bytes written (copied) and shared (cloned). buf is for the read path.
func (c *copier) chunk(src layouts.Disk, buf []byte, off int64) (written, shared int64, err error) {
	end := off + int64(len(buf))
	if _, ok := src.(layouts.FileMapper); !ok || c.noClone.Load() && !c.cloned.Load() {
		// Nothing to share: the parallel reads and writes are fastest.
		w, err := copyChunk(c.out, src, buf, off)
		return w, 0, err
	}
	for pos := off; pos < end; {
		r, ok := layouts.MapFile(src, pos, end-pos)
		if !ok {
			// Not a file range here (generated, compressed, written to an
			// overlay): read and write up to the next zero block that is
			// one, in one read.
			next := min(end, (pos/zeroBlock+1)*zeroBlock)
			for next < end {
				if _, ok := layouts.MapFile(src, next, end-next); ok {
					break
				}
				next = min(end, next+zeroBlock)
			}
			w, err := copyChunk(c.out, src, buf[pos-off:next-off], pos)
			written += w
			if err != nil {
				return written, shared, err
			}
			pos = next
			continue
		}
		w, sh, err := c.place(r, pos, func(d, n int64) (int64, error) {
			return copyChunk(c.out, src, buf[d-off:d-off+n], d)
		})
		written += w
		shared += sh
		if err != nil {
			return written, shared, err
		}
		pos += r.Len
	}
	return written, shared, nil
}

// place clones and copies the file range r to dst of the output and
// returns the bytes copied and cloned; slow copies what neither call can
// (through user space).
func (c *copier) place(r layouts.FileRange, dst int64, slow func(dst, n int64) (int64, error)) (written, shared int64, err error) {
	type piece struct{ off, n int64 } // relative to r and dst
	pieces := []piece{{0, r.Len}}
	if !c.noClone.Load() && r.Off%c.bs == dst%c.bs {
		head := (c.bs - dst%c.bs) % c.bs
		if body := max(0, r.Len-head) / c.bs * c.bs; body > 0 {
			err := unix.IoctlFileCloneRange(int(c.out.Fd()), &unix.FileCloneRange{
				Src_fd:      int64(r.File.Fd()),
				Src_offset:  uint64(r.Off + head),
				Src_length:  uint64(body),
				Dest_offset: uint64(dst + head),
			})
			switch {
			case err == nil:
				c.cloned.Store(true)
				shared = body
				pieces = []piece{{0, head}, {head + body, r.Len - head - body}}
			case cannotShare(err):
				c.noClone.Store(true)
			default:
				return 0, 0, err
			}
		}
	}
	for _, p := range pieces {
		if p.n == 0 {
			continue
		}
		n, ok, err := c.copyRange(r.File, r.Off+p.off, dst+p.off, p.n)
		written += n
		if err != nil {
			return written, shared, err
		}
		if !ok {
			w, err := slow(dst+p.off+n, p.n-n)
			written += w
			if err != nil {
				return written, shared, err
			}
		}
	}
	return written, shared, nil
}

// copyRange moves n bytes from off of src to dst of the output with
// copy_file_range. ok is false (with no error) where the call cannot do
// it for these files; the bytes moved until then are counted.
func (c *copier) copyRange(src *os.File, off, dst, n int64) (moved int64, ok bool, err error) {
	if c.noCopyRange.Load() || !c.cloned.Load() {
		return 0, false, nil
	}
	for moved < n {
		roff, woff := off+moved, dst+moved
		m, err := unix.CopyFileRange(int(src.Fd()), &roff, int(c.out.Fd()), &woff, int(n-moved), 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if cannotShare(err) {
				c.noCopyRange.Store(true)
				return moved, false, nil
			}
			return moved, false, err
		}
		if m == 0 {
			// The source ended early: let reads tell why.
			return moved, false, nil
		}
		moved += int64(m)
	}
	return moved, true, nil
}

// cannotShare reports errors that say a clone or copy_file_range cannot
// be done between these two files (another file system, no reflinks, no
// such call), not that the I/O failed.
func cannotShare(err error) bool {
	for _, e := range []error{unix.EOPNOTSUPP, unix.ENOTSUP, unix.EXDEV, unix.EINVAL, unix.ENOSYS, unix.ENOTTY, unix.EBADF, unix.EPERM, unix.ETXTBSY} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// sharable returns the bytes of files' Data that a run into dir would
// clone rather than write: file ranges aligned like their place in the
// output, on dir's file system, once a clone of one block of one of them
// into dir has worked (else 0).
func sharable(ctx context.Context, dir string, files []viewfile.File) int64 {
	var dst unix.Stat_t
	var sfs unix.Statfs_t
	if unix.Stat(dir, &dst) != nil || unix.Statfs(dir, &sfs) != nil || sfs.Bsize <= 0 {
		return 0
	}
	bs := sfs.Bsize
	var total int64
	var probe *os.File
	var probeOff int64
	for _, f := range files {
		if !f.Disk {
			continue
		}
		err := layouts.Walk(f.Content, 0, f.Content.Size(), func(e layouts.Extent) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if e.Kind != layouts.Data {
				return nil
			}
			for pos := e.Off; pos < e.End(); {
				r, ok := layouts.MapFile(f.Content, pos, e.End()-pos)
				if !ok {
					pos = min(e.End(), (pos/zeroBlock+1)*zeroBlock)
					continue
				}
				if r.Off%bs == pos%bs && sameDev(r.File, dst.Dev) {
					head := (bs - pos%bs) % bs
					if body := max(0, r.Len-head) / bs * bs; body > 0 {
						total += body
						if probe == nil {
							probe, probeOff = r.File, r.Off+head
						}
					}
				}
				pos += r.Len
			}
			return nil
		})
		if err != nil {
			return 0
		}
	}
	if total == 0 || !probeClone(dir, probe, probeOff, bs) {
		return 0
	}
	return total
}

func sameDev(f *os.File, dev uint64) bool {
	var st unix.Stat_t
	return unix.Fstat(int(f.Fd()), &st) == nil && st.Dev == dev
}

// probeClone clones one block of src at off into a new file in dir, and
// removes that file.
func probeClone(dir string, src *os.File, off, bs int64) bool {
	t, err := os.CreateTemp(dir, ".vmfs-clone-probe-*")
	if err != nil {
		return false
	}
	defer os.Remove(t.Name())
	defer t.Close()
	return unix.IoctlFileCloneRange(int(t.Fd()), &unix.FileCloneRange{
		Src_fd: int64(src.Fd()), Src_offset: uint64(off), Src_length: uint64(bs),
	}) == nil
}
