// Package materialize writes a view into real storage: the cutover. Files
// are written sparse (holes and zero runs are skipped), in parallel with
// large aligned I/O, under temporary names that are renamed into place only
// once complete and flushed; descriptors are written last, so a descriptor
// under its final name means its disks are complete. Where the output's
// file system shares blocks (XFS with reflink=1, btrfs), ranges that are
// plain byte ranges of a source file are cloned rather than copied (see
// share.go).
package materialize

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/units"
	"github.com/vmfs/vmfs/internal/viewfile"

	"github.com/vmfs/vmfs/layouts"
)

// Options of a run.
type Options struct {
	Force  bool // replace existing files
	Verify bool // re-read what was written and compare
	// Workers copying in parallel (0: DefaultWorkers, at most MaxWorkers)
	// and the size of one I/O (0: DefaultChunkSize; MinChunkSize to
	// MaxChunkSize, a multiple of MinChunkSize). Each worker holds one
	// buffer of the chunk size; the chunk shrinks, when need be, so that
	// all buffers together stay within MaxBufferBytes.
	Workers   int
	ChunkSize int64
	// Progress is called now and then with bytes done and the total; calls
	// are serialized.
	Progress func(done, total int64)
	// SkipSpaceCheck turns off the free-space check (for block devices).
	SkipSpaceCheck bool
	// Protected are the source files: no file this run writes (under its
	// final or temporary name) may be one of them, or replace one, Force
	// or not.
	Protected *layouts.Sources
}

// Summary of a run.
type Summary struct {
	Files        int
	Bytes        int64 // virtual bytes of all files
	Written      int64 // bytes actually written (copied)
	Shared       int64 // bytes whose blocks are shared with the source (reflinked, not written)
	HolesSkipped int64 // bytes left as holes
	Duration     time.Duration
	Verified     bool
}

// Rate is the virtual bytes per second.
func (s Summary) Rate() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Bytes) / s.Duration.Seconds()
}

const partialSuffix = ".vmfs-partial"

// ErrSource: a run would write over a source file.
var ErrSource = errors.New("refused")

// Bounds of the copy: whatever the options, a run holds at most
// MaxBufferBytes of copy buffers (plus two chunks for --verify).
const (
	MaxWorkers       = 64
	DefaultChunkSize = 4 << 20
	MinChunkSize     = zeroBlock
	MaxChunkSize     = 64 << 20
	MaxBufferBytes   = 128 << 20
)

// DefaultWorkers is the number of workers a run uses unless told: the
// CPU count, but at least 4 (workers mostly wait for I/O, so a small
// machine still keeps several reads in flight) and at most 8 (past that
// a disk gains little and memory grows).
func DefaultWorkers() int { return min(max(runtime.NumCPU(), 4), 8) }

// bound applies the defaults and limits of Options.
func (o *Options) bound() error {
	if o.Workers == 0 {
		o.Workers = DefaultWorkers()
	}
	if o.Workers < 1 || o.Workers > MaxWorkers {
		return fmt.Errorf("materialize: %d workers: want 1 to %d", o.Workers, MaxWorkers)
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize < MinChunkSize || o.ChunkSize > MaxChunkSize || o.ChunkSize%MinChunkSize != 0 {
		return fmt.Errorf("materialize: chunk size %d: want a multiple of %d from %d to %d", o.ChunkSize, MinChunkSize, MinChunkSize, MaxChunkSize)
	}
	if limit := MaxBufferBytes / int64(o.Workers) / MinChunkSize * MinChunkSize; o.ChunkSize > limit {
		o.ChunkSize = limit
	}
	return nil
}

// Run writes files into dir. On any failure or cancellation the temporary
// files are removed and no file under a final name is incomplete.
func Run(ctx context.Context, dir string, files []viewfile.File, opts Options) (Summary, error) {
	start := time.Now()
	if err := opts.bound(); err != nil {
		return Summary{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("%s: %w", dir, err)
	}
	ordered := make([]viewfile.File, 0, len(files))
	for _, f := range files {
		if f.Disk {
			ordered = append(ordered, f)
		}
	}
	for _, f := range files {
		if !f.Disk {
			ordered = append(ordered, f)
		}
	}
	// Files an interrupted run was renaming into place are complete, but
	// their set is not: this run may replace them without --force.
	renaming := readJournal(dir)
	if err := CheckProtected(dir, ordered, opts.Protected); err != nil {
		return Summary{}, err
	}
	var total, alloc int64
	for _, f := range ordered {
		final := filepath.Join(dir, f.Name)
		if _, err := os.Lstat(final); err == nil && !opts.Force && !renaming[f.Name] {
			return Summary{}, fmt.Errorf("%s: exists (use --force to replace it)", final)
		}
		total += f.Content.Size()
		a, err := layouts.Allocated(f.Content)
		if err != nil {
			return Summary{}, fmt.Errorf("%s: %w", f.Name, err)
		}
		alloc += a
	}
	if !opts.SkipSpaceCheck {
		// Bytes the run will share with the source (reflinks) take no
		// space: count them only once a clone into dir has worked.
		alloc -= sharable(ctx, dir, ordered)
		if err := checkSpace(dir, alloc); err != nil {
			return Summary{}, err
		}
	}
	sum := Summary{Files: len(ordered), Bytes: total}
	var done atomic.Int64
	var progressMu sync.Mutex
	progress := func(n int64) {
		v := done.Add(n)
		if opts.Progress != nil {
			progressMu.Lock()
			opts.Progress(v, total)
			progressMu.Unlock()
		}
	}
	var tmps []string
	cleanup := func() {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	for _, f := range ordered {
		tmp := filepath.Join(dir, "."+f.Name+partialSuffix)
		tmps = append(tmps, tmp)
		written, shared, err := writeFile(ctx, tmp, f, opts, progress)
		if err != nil {
			cleanup()
			return sum, describe(err, dir, f.Name)
		}
		sum.Written += written
		sum.Shared += shared
		if opts.Verify {
			if err := verify(ctx, tmp, f, opts); err != nil {
				cleanup()
				return sum, err
			}
		}
	}
	// Everything is complete and flushed: rename into place, disks first,
	// under a journal that names the set being renamed.
	if err := writeJournal(dir, ordered); err != nil {
		cleanup()
		return sum, err
	}
	for i, f := range ordered {
		if err := os.Rename(tmps[i], filepath.Join(dir, f.Name)); err != nil {
			cleanup()
			return sum, fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	syncDir(dir)
	os.Remove(filepath.Join(dir, journalName))
	syncDir(dir)
	sum.HolesSkipped = total - sum.Written - sum.Shared
	sum.Duration = time.Since(start)
	sum.Verified = opts.Verify
	return sum, nil
}

// CheckProtected refuses a run into dir that would write any of the source
// files src: a file's final name, its temporary name or the journal is one
// of them (by device and inode, or by resolved path: a DESTDIR that is, or
// links to, the source's directory counts). Run checks it too; callers may
// check it first, before anything else is said or done.
func CheckProtected(dir string, files []viewfile.File, src *layouts.Sources) error {
	paths := []string{filepath.Join(dir, journalName)}
	for _, f := range files {
		if err := checkName(f.Name); err != nil {
			return err
		}
		paths = append(paths, filepath.Join(dir, f.Name), filepath.Join(dir, "."+f.Name+partialSuffix))
	}
	for _, p := range paths {
		if sf, ok := src.Find(p); ok {
			return fmt.Errorf("%s: would replace the source file %s (the source is never written; choose another DESTDIR): %w", p, sf.Path, ErrSource)
		}
	}
	return nil
}

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return fmt.Errorf("refusing file name %q", name)
	}
	return nil
}

func checkSpace(dir string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil // not knowable: the writes will tell
	}
	free := int64(st.Bavail) * st.Bsize
	if need > free {
		return fmt.Errorf("%s: not enough free space: %s needed, %s free", dir, units.Bytes(need), units.Bytes(free))
	}
	return nil
}

func describe(err error, dir, name string) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%s: no space left on device while writing %s; partial files removed", dir, name)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("interrupted while writing %s; partial files removed, nothing was left under a final name", name)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// job is one chunk to copy.
type job struct{ off, n int64 }

// writeFile copies f's Data extents into path with parallel workers and
// returns the bytes written. Zero runs inside data are skipped too.
func writeFile(ctx context.Context, path string, f viewfile.File, opts Options, progress func(int64)) (written, shared int64, err error) {
	mode := f.Mode
	if mode == 0 {
		mode = 0o644
	}
	out, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode.Perm())
	if err != nil {
		return 0, 0, err
	}
	defer out.Close()
	size := f.Content.Size()
	if err := out.Truncate(size); err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job, opts.Workers*2)
	var nWritten, nShared atomic.Int64
	var firstErr error
	var once sync.Once
	fail := func(err error) {
		once.Do(func() { firstErr = err; cancel() })
	}
	cp := newCopier(out)
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, opts.ChunkSize)
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				w, sh, err := cp.chunk(f.Content, buf[:j.n], j.off)
				if err != nil {
					fail(err)
					continue
				}
				nWritten.Add(w)
				nShared.Add(sh)
				progress(j.n)
			}
		}()
	}
	walkErr := layouts.Walk(f.Content, 0, size, func(e layouts.Extent) error {
		if e.Kind != layouts.Data {
			progress(e.Len)
			return nil
		}
		for off := e.Off; off < e.End(); {
			// Align chunk ends so that I/O stays aligned to the chunk size.
			end := min(e.End(), (off/opts.ChunkSize+1)*opts.ChunkSize)
			select {
			case jobs <- job{off, end - off}:
			case <-ctx.Done():
				return ctx.Err()
			}
			off = end
		}
		return nil
	})
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return 0, 0, firstErr
	}
	if walkErr != nil {
		return 0, 0, walkErr
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if err := out.Sync(); err != nil {
		return 0, 0, err
	}
	return nWritten.Load(), nShared.Load(), out.Close()
}

// zeroBlock is the granularity at which zero runs inside data are skipped.
const zeroBlock = 64 << 10

var zeros = make([]byte, zeroBlock)

// copyChunk reads [off, off+len(buf)) of src and writes its non-zero
// 64 KiB blocks to out.
func copyChunk(out *os.File, src layouts.Disk, buf []byte, off int64) (int64, error) {
	n, err := src.ReadAt(buf, off)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(buf)) {
		return 0, err
	}
	var written int64
	for i := 0; i < len(buf); {
		j := min(i+zeroBlock, len(buf))
		if bytes.Equal(buf[i:j], zeros[:j-i]) {
			i = j
			continue
		}
		// Extend the run over following non-zero blocks: one write.
		k := j
		for k < len(buf) {
			e := min(k+zeroBlock, len(buf))
			if bytes.Equal(buf[k:e], zeros[:e-k]) {
				break
			}
			k = e
		}
		if _, err := out.WriteAt(buf[i:k], off+int64(i)); err != nil {
			return written, err
		}
		// Start writeback now, so that the final fsync finds little left
		// to do and the disk works while the source is read.
		unix.SyncFileRange(int(out.Fd()), off+int64(i), int64(k-i), unix.SYNC_FILE_RANGE_WRITE)
		written += int64(k - i)
		i = k
	}
	return written, nil
}

// verify re-reads path and compares it with f's content chunk by chunk,
// reporting the first difference.
func verify(ctx context.Context, path string, f viewfile.File, opts Options) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	size := f.Content.Size()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.Size() != size {
		return fmt.Errorf("verify %s: size %d, want %d", f.Name, st.Size(), size)
	}
	a := make([]byte, opts.ChunkSize)
	b := make([]byte, opts.ChunkSize)
	for off := int64(0); off < size; off += opts.ChunkSize {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(opts.ChunkSize, size-off))
		if _, err := f.Content.ReadAt(a[:n], off); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("verify %s: reading the view: %w", f.Name, err)
		}
		if _, err := in.ReadAt(b[:n], off); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("verify %s: reading the output: %w", f.Name, err)
		}
		if !bytes.Equal(a[:n], b[:n]) {
			for i := range n {
				if a[i] != b[i] {
					return fmt.Errorf("verify %s: first difference at byte %d", f.Name, off+int64(i))
				}
			}
		}
	}
	return nil
}

// journalName lists the files being renamed into place while that lasts.
const journalName = ".vmfs-materialize-renaming"

func writeJournal(dir string, files []viewfile.File) error {
	var b strings.Builder
	for _, f := range files {
		b.WriteString(f.Name)
		b.WriteByte('\n')
	}
	p := filepath.Join(dir, journalName)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

func readJournal(dir string) map[string]bool {
	b, err := os.ReadFile(filepath.Join(dir, journalName))
	if err != nil {
		return nil
	}
	names := map[string]bool{}
	for _, n := range strings.Split(string(b), "\n") {
		if n != "" {
			names[n] = true
		}
	}
	return names
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
