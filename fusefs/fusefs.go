// Package fusefs serves a view (descriptor and disk image files) over FUSE.
// Reads are resolved on the fly from each file's content; writes, when the
// content can take them, go to it (the copy-on-write overlay), never to the
// source. It parses no format: it only adapts files to the kernel.
package fusefs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
)

// Writable is content that takes writes: the overlay's files.
type Writable interface {
	layouts.Disk
	WriteAt(p []byte, off int64) (int, error)
	Truncate(size int64) error
	// Punch makes [off, off+n) read as zeros.
	Punch(off, n int64) error
	// Sync makes everything written durable.
	Sync() error
}

// Backed is Writable content that can give the kernel one file holding all
// of its bytes at their own offsets (the overlay's whole data file), so
// that FUSE passthrough serves its reads and writes. The file must never be
// a source: the kernel opens the backing file again with each caller's
// flags, writable ones included.
type Backed interface {
	Writable
	Backing() (*os.File, error)
}

// Options of a mount.
type Options struct {
	// ReadOnly refuses all writes with EROFS, even to Writable content.
	ReadOnly bool
	// UID and GID own the files and the root directory.
	UID, GID uint32
	// DirMode is the root directory's permission bits (0700 when zero).
	DirMode fs.FileMode
	// FsName shows in /proc/mounts (the source path).
	FsName string
	Logger *slog.Logger
	Debug  bool
	// Passthrough lets the kernel serve, by FUSE passthrough, the files
	// that are one whole source file: on a ReadOnly mount from the source
	// (reads only), on a writable one from the whole data file of Backed
	// content (reads and writes). Their I/O never reaches this process.
	// Where the kernel, the privileges or the file system do not allow it
	// the files are served as without it, and Notice says so.
	Passthrough bool
	// Notice receives what the mount has to tell its user (nil: dropped).
	Notice func(msg string)
	// Opens, if set, counts the files open now (opens not yet released).
	Opens *atomic.Int64
	// OnPassthrough, if set, gets once mounted the names of the files
	// served by FUSE passthrough (none: not called).
	OnPassthrough func(names []string)

	reads  *atomic.Int64 // counts Read calls, if set (tests)
	writes *atomic.Int64 // counts Write calls, if set (tests)
}

// maxRequest is the largest read or write: 254 pages.
const maxRequest = 1<<20 - 8<<10

// Mount serves entries at mountpoint and returns once the mount is ready.
func Mount(mountpoint string, entries []viewfile.File, opts Options) (*fuse.Server, error) {
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	if opts.DirMode == 0 {
		opts.DirMode = 0o700
	}
	r := &root{entries: entries, opts: opts, zeros: newZeroFile()}
	if opts.Passthrough && !opts.ReadOnly {
		r.backings = backings(entries, opts)
	}
	long := time.Hour
	mountOpts := []string{"default_permissions"}
	if opts.ReadOnly {
		// The kernel refuses writes before they reach vmfs, and
		// /proc/mounts says ro.
		mountOpts = append(mountOpts, "ro")
	}
	fo := &gofs.Options{
		EntryTimeout:    &long,
		AttrTimeout:     &long,
		NegativeTimeout: &long,
		MountOptions: fuse.MountOptions{
			AllowOther: true,
			Options:    mountOpts,
			FsName:     opts.FsName,
			Name:       "vmfs",
			// Large requests, but with room for the reply header in a
			// 1 MiB pipe, so that splicing works at the largest size.
			MaxWrite:     maxRequest,
			MaxReadAhead: maxRequest,
			DirectMount:  true,
			Debug:        opts.Debug,
			// Disks are read in parallel by guests and by materialize.
			MaxBackground: 64,
		},
		UID: opts.UID,
		GID: opts.GID,
	}
	// Without ReadOnly there is no ro flag either, even where no file
	// takes writes: libvirt chowns disks before start, and a ro mount
	// answers that with EROFS. Writes are refused per file then.
	srv, err := gofs.Mount(mountpoint, r, fo)
	if err != nil {
		if r.zeros != nil {
			r.zeros.Close()
		}
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	if r.zeros != nil {
		// Once the request loops end no reply can point at it.
		go func() { srv.Wait(); r.zeros.Close() }()
	}
	// The first stat (libvirt's, ls's) comes right after the mount: the
	// counts of st_blocks run while the mount gets ready, so that it
	// rarely waits for them. Started once mounted, so that a mount that
	// fails reads nothing more.
	for _, ch := range r.Children() {
		if f, ok := ch.Operations().(*file); ok {
			f.startCount()
		}
	}
	raiseReadAhead(mountpoint, fo.MaxReadAhead, opts.Logger)
	if opts.ReadOnly && opts.Passthrough {
		r.probePassthrough(srv)
	}
	if len(r.backings) > 0 {
		r.probeBacking(srv)
		for _, e := range entries {
			if r.backings[e.Name] != nil && !r.nopass.Load() && opts.Notice != nil {
				opts.Notice(fmt.Sprintf("%s: read and written by FUSE passthrough, in the overlay's clone of the source (it shares the source's blocks until written)", e.Name))
			}
		}
	}
	if opts.OnPassthrough != nil {
		if names := r.passing(); len(names) > 0 {
			opts.OnPassthrough(names)
		}
	}
	return srv, nil
}

// passing names the files whose opens passthrough serves.
func (r *root) passing() []string {
	if !r.opts.Passthrough || r.nopass.Load() {
		return nil
	}
	var names []string
	for _, e := range r.entries {
		if r.opts.ReadOnly {
			if src, ok := layouts.WholeFile(e.Content); ok && r.splice.trusted(src) {
				names = append(names, e.Name)
			}
		} else if r.backings[e.Name] != nil {
			names = append(names, e.Name)
		}
	}
	return names
}

// backings gives the writable files that are one whole source file their
// whole data files, before the mount: the decision holds for every open
// (the kernel refuses an inode open both with and without passthrough).
// A file that cannot have one is served through vmfs, and Notice says why.
func backings(entries []viewfile.File, opts Options) map[string]*os.File {
	out := map[string]*os.File{}
	for _, e := range entries {
		b, ok := e.Content.(Backed)
		if !ok {
			continue
		}
		if _, whole := layouts.WholeFile(e.Content); !whole {
			continue // not one file, or holds earlier writes
		}
		f, err := b.Backing()
		if err == nil && !openedReadWrite(f) {
			err = fmt.Errorf("backing file %s is not open read-write", f.Name())
		}
		if err != nil {
			if opts.Notice != nil {
				opts.Notice(fmt.Sprintf("FUSE passthrough not used for %s (%v): reads and writes go through vmfs; it needs the overlay on the source's file system, with reflinks (XFS reflink=1, btrfs)", e.Name, err))
			}
			continue
		}
		out[e.Name] = f
	}
	return out
}

// openedReadWrite says whether f was opened read-write: a source never is.
func openedReadWrite(f *os.File) bool {
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	return err == nil && fl&unix.O_ACCMODE == unix.O_RDWR
}

// probeBacking checks, by registering one whole data file, that the kernel
// takes backing files from this process; where not, every file is served
// through vmfs (the data files stay whole: they read and write the same).
func (r *root) probeBacking(srv *fuse.Server) {
	for _, f := range r.backings {
		id, errno := srv.RegisterBackingFd(&fuse.BackingMap{Fd: int32(f.Fd())})
		if errno != 0 {
			r.nopass.Store(true)
			if r.opts.Notice != nil {
				r.opts.Notice(fmt.Sprintf("FUSE passthrough unavailable (%v): reads and writes go through vmfs", errno))
			}
			return
		}
		srv.UnregisterBackingFd(id)
		return
	}
}

// probePassthrough checks, by registering one whole source file with the
// kernel as a backing file, that the kernel has FUSE passthrough and this
// process CAP_SYS_ADMIN, and says so through Notice where not. Opens try
// passthrough from the start (so that no inode is open both ways, which
// the kernel refuses); one that cannot register falls back to the normal
// path, and after a failed probe none tries.
func (r *root) probePassthrough(srv *fuse.Server) {
	for _, e := range r.entries {
		f, ok := layouts.WholeFile(e.Content)
		if !ok || !r.splice.trusted(f) {
			continue
		}
		id, errno := srv.RegisterBackingFd(&fuse.BackingMap{Fd: int32(f.Fd())})
		if errno != 0 {
			r.nopass.Store(true)
			if r.opts.Notice != nil {
				r.opts.Notice(fmt.Sprintf("FUSE passthrough unavailable (%v): reads go through vmfs", errno))
			}
			r.opts.Logger.Debug("no FUSE passthrough", "err", errno)
			return
		}
		srv.UnregisterBackingFd(id)
		return
	}
}

// raiseReadAhead lifts the kernel's read-ahead for the mount to max bytes.
// The kernel caps a FUSE mount's read-ahead at its default (128 KiB) however
// much the server offers, so buffered sequential reads arrive as 128 KiB
// requests; with 1 MiB they take an eighth of the round trips. Only root may
// write the knob: elsewhere the default stays.
func raiseReadAhead(mountpoint string, max int, log *slog.Logger) {
	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		return
	}
	major, minor := (st.Dev>>8)&0xfff|(st.Dev>>32)&^0xfff, st.Dev&0xff|(st.Dev>>12)&^0xff
	knob := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", major, minor)
	if err := os.WriteFile(knob, []byte(fmt.Sprintf("%d\n", max>>10)), 0); err != nil {
		log.Debug("read-ahead left at the kernel's default", "knob", knob, "err", err)
	}
}

type root struct {
	gofs.Inode
	entries []viewfile.File
	opts    Options
	splice  spliceCache
	zeros   *os.File    // the zero file holes are spliced from, or nil
	nopass  atomic.Bool // the kernel refused a backing file
	// backings are the whole data files of writable files served by
	// passthrough, by file name.
	backings map[string]*os.File

	mu   sync.Mutex
	mode uint32
	uid  uint32
	gid  uint32
}

var (
	_ = (gofs.NodeReaddirer)((*root)(nil))
	_ = (gofs.NodeOnAdder)((*root)(nil))
	_ = (gofs.NodeGetattrer)((*root)(nil))
	_ = (gofs.NodeSetattrer)((*root)(nil))
	_ = (gofs.NodeStatfser)((*root)(nil))
)

func (r *root) OnAdd(ctx context.Context) {
	r.mode = uint32(r.opts.DirMode.Perm())
	r.uid, r.gid = r.opts.UID, r.opts.GID
	for i, e := range r.entries {
		n := &file{
			name:    e.Name,
			content: e.Content,
			opts:    &r.opts,
			splice:  &r.splice,
			zeros:   r.zeros,
			nopass:  &r.nopass,
			mode:    uint32(e.Mode.Perm()),
			uid:     r.opts.UID,
			gid:     r.opts.GID,
			mtime:   time.Now(),
		}
		if w, ok := e.Content.(Writable); ok && !r.opts.ReadOnly {
			n.rw = w
			n.backing = r.backings[e.Name]
		}
		ch := r.NewPersistentInode(ctx, n, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: uint64(i) + 2})
		r.AddChild(e.Name, ch, false)
	}
}

// Readdir lists "." and "..", as every directory does, then the files.
func (r *root) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ents := []fuse.DirEntry{{Name: ".", Mode: syscall.S_IFDIR, Ino: 1}, {Name: "..", Mode: syscall.S_IFDIR, Ino: 1}}
	for name, ch := range r.Children() {
		ents = append(ents, fuse.DirEntry{Name: name, Mode: ch.Mode(), Ino: ch.StableAttr().Ino})
	}
	slices.SortFunc(ents[2:], func(a, b fuse.DirEntry) int { return cmp.Compare(a.Ino, b.Ino) })
	return gofs.NewListDirStream(ents), 0
}

func (r *root) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.mu.Lock()
	defer r.mu.Unlock()
	out.Mode = syscall.S_IFDIR | r.mode
	out.Uid, out.Gid = r.uid, r.gid
	out.Nlink = 2
	return 0
}

func (r *root) Setattr(ctx context.Context, _ gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	r.mu.Lock()
	if m, ok := in.GetMode(); ok {
		r.mode = m & 0o7777
	}
	if u, ok := in.GetUID(); ok {
		r.uid = u
	}
	if g, ok := in.GetGID(); ok {
		r.gid = g
	}
	r.mu.Unlock()
	return r.Getattr(ctx, nil, out)
}

func (r *root) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var total int64
	for _, e := range r.entries {
		total += e.Content.Size()
	}
	out.Bsize = 4096
	out.Frsize = 4096
	out.Blocks = uint64(total+4095) / 4096
	out.NameLen = 255
	out.Files = uint64(len(r.entries))
	return 0
}

// file is one file of the view.
type file struct {
	gofs.Inode
	name    string
	content layouts.Disk
	rw      Writable
	opts    *Options
	splice  *spliceCache // the mount's; nil: nothing is spliced
	zeros   *os.File     // the mount's zero file, or nil
	nopass  *atomic.Bool // the mount's: passthrough refused
	backing *os.File     // rw's whole data file, served by passthrough

	mu    sync.Mutex
	mode  uint32
	uid   uint32
	gid   uint32
	mtime time.Time

	blocks     atomic.Int64 // allocated bytes, valid while blocksOK
	blocksOK   atomic.Bool
	blocksGen  atomic.Int64 // bumped by every change of the content
	countMu    sync.Mutex
	counting   chan struct{} // closed when the running count ends
	notifyAttr atomic.Bool   // a stat answered before the count ended
	loggedOnce sync.Map
}

var (
	_ = (gofs.NodeGetattrer)((*file)(nil))
	_ = (gofs.NodeSetattrer)((*file)(nil))
	_ = (gofs.NodeOpener)((*file)(nil))
	_ = (gofs.NodeReader)((*file)(nil))
	_ = (gofs.NodeWriter)((*file)(nil))
	_ = (gofs.NodeFsyncer)((*file)(nil))
	_ = (gofs.NodeFlusher)((*file)(nil))
	_ = (gofs.NodeLseeker)((*file)(nil))
	_ = (gofs.NodeAllocater)((*file)(nil))
	_ = (gofs.NodeReleaser)((*file)(nil))
)

func (f *file) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.fill(&out.Attr)
	return 0
}

func (f *file) fill(a *fuse.Attr) {
	f.mu.Lock()
	a.Mode = syscall.S_IFREG | f.mode
	a.Uid, a.Gid = f.uid, f.gid
	mt := f.mtime
	f.mu.Unlock()
	size := f.content.Size()
	a.Size = uint64(size)
	a.Nlink = 1
	a.Blksize = 1 << 16
	if f.passing() {
		// Writes go to the data file without passing here: it knows
		// what they changed.
		var st unix.Stat_t
		if unix.Fstat(int(f.backing.Fd()), &st) == nil {
			if bt := time.Unix(st.Mtim.Unix()); bt.After(mt) {
				mt = bt
			}
			a.SetTimes(nil, &mt, &mt)
			a.Blocks = uint64(st.Blocks)
			return
		}
	}
	a.SetTimes(nil, &mt, &mt)
	a.Blocks = uint64(f.allocated() / 512)
}

// passing says whether the file's opens are served by passthrough from its
// whole data file.
func (f *file) passing() bool {
	return f.backing != nil && f.nopass != nil && !f.nopass.Load()
}

// allocatedWait is how long a stat waits for the allocated bytes. Counting
// them walks the whole extent map, which for a big sparse disk means reading
// every grain table: past the wait the stat answers with the virtual size
// (fully allocated), the count goes on in the background, and the kernel is
// told to drop the cached attributes when it ends.
const allocatedWait = 20 * time.Millisecond

// allocated is the file's allocated bytes, computed once (and again after
// writes), as du reports it.
func (f *file) allocated() int64 {
	if f.blocksOK.Load() {
		return f.blocks.Load()
	}
	done := f.startCount()
	t := time.NewTimer(allocatedWait)
	defer t.Stop()
	select {
	case <-done:
		if f.blocksOK.Load() {
			return f.blocks.Load()
		}
	case <-t.C:
		f.notifyAttr.Store(true)
	}
	return f.content.Size()
}

// startCount starts counting the allocated bytes unless a count runs, and
// returns the channel closed when the running count ends.
func (f *file) startCount() chan struct{} {
	f.countMu.Lock()
	defer f.countMu.Unlock()
	if f.counting == nil {
		f.counting = make(chan struct{})
		go f.count(f.counting)
	}
	return f.counting
}

// count computes the allocated bytes and closes done.
func (f *file) count(done chan struct{}) {
	gen := f.blocksGen.Load()
	n, err := layouts.Allocated(f.content)
	if err != nil {
		f.logOnce("extents", err)
		n = f.content.Size()
	}
	f.countMu.Lock()
	if f.blocksGen.Load() == gen { // no write raced with the count
		f.blocks.Store(n)
		f.blocksOK.Store(true)
	}
	f.counting = nil
	f.countMu.Unlock()
	close(done)
	if f.notifyAttr.Swap(false) {
		// Attributes only (negative offset): no page is touched.
		f.NotifyContent(-1, 0)
	}
}

func (f *file) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		if f.rw == nil {
			return syscall.EROFS
		}
		if err := f.rw.Truncate(int64(sz)); err != nil {
			return f.errno("truncate", err)
		}
		f.touch()
	}
	f.mu.Lock()
	if m, ok := in.GetMode(); ok {
		f.mode = m & 0o7777
	}
	if u, ok := in.GetUID(); ok {
		f.uid = u
	}
	if g, ok := in.GetGID(); ok {
		f.gid = g
	}
	if mt, ok := in.GetMTime(); ok {
		f.mtime = mt
	}
	f.mu.Unlock()
	f.fill(&out.Attr)
	return 0
}

func (f *file) touch() {
	f.mu.Lock()
	f.mtime = time.Now()
	f.mu.Unlock()
	f.blocksGen.Add(1)
	f.blocksOK.Store(false)
}

func (f *file) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 && f.rw == nil {
		return nil, 0, syscall.EROFS
	}
	if flags&syscall.O_TRUNC != 0 {
		if err := f.rw.Truncate(0); err != nil {
			return nil, 0, f.errno("truncate", err)
		}
		f.touch()
	}
	if f.opts.Opens != nil {
		f.opts.Opens.Add(1) // every successful open is released once
	}
	// A file that is one whole source file, on a read-only mount, is read
	// by the kernel from the source itself.
	// A handle that cannot be registered keeps the page cache (go-fuse
	// drops FOPEN_KEEP_CACHE only where passthrough is on).
	if f.rw == nil && f.opts.ReadOnly && f.opts.Passthrough && f.nopass != nil && !f.nopass.Load() {
		if src, ok := layouts.WholeFile(f.content); ok && f.splice.trusted(src) {
			return passHandle{fd: int(src.Fd())}, fuse.FOPEN_KEEP_CACHE, 0
		}
	}
	// A writable file with a whole data file is read and written by the
	// kernel in that file, never in the source.
	if f.passing() {
		return passHandle{fd: int(f.backing.Fd())}, 0, 0
	}
	// Every change goes through this process, so the page cache stays
	// valid across opens.
	if f.opts.Opens != nil {
		// go-fuse passes the release of a handle only.
		return openHandle{}, fuse.FOPEN_KEEP_CACHE, 0
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

// openHandle is an open file whose release is counted.
type openHandle struct{}

// passHandle is an open file the kernel serves from its backing file: the
// source's descriptor, which the mount keeps open while it serves (the
// kernel takes its own reference when it registers it).
type passHandle struct{ fd int }

var _ = (gofs.FilePassthroughFder)(passHandle{})

func (h passHandle) PassthroughFd() (int, bool) { return h.fd, true }

func (f *file) Read(ctx context.Context, _ gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if f.opts.reads != nil {
		f.opts.reads.Add(1)
	}
	// Where the whole request is one range of a plain file (raw and flat
	// sources, uncompressed grains), the kernel splices it: no copy
	// through this process.
	if want := min(int64(len(dest)), f.content.Size()-off); want > 0 {
		if r, ok := layouts.MapFile(f.content, off, want); ok && r.Len == want {
			// A small read costs two syscalls by pread and writev, a
			// spliced one six (fstat, header, two splices, the
			// pipe's drain and its check). A short pread falls back
			// to ReadAt, which fails it. Files on file systems that
			// are not trusted (FUSE) keep to ReadAt, which reads each
			// range once and says what failed.
			if want < minSplice && f.splice != nil && f.splice.trusted(r.File) {
				if n, err := r.File.ReadAt(dest[:want], r.Off); err == nil && int64(n) == want {
					return bytesResult(dest[:n]), 0
				}
			} else if f.splice.spliceable(r) {
				return fuse.ReadResultFd(r.File.Fd(), r.Off, int(r.Len)), 0
			}
		}
		if f.zeros != nil && want >= minZeroSplice && want <= maxRequest && zeroRange(f.content, off, want) {
			return fuse.ReadResultFd(f.zeros.Fd(), 0, int(want)), 0
		}
	}
	n, err := f.content.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, f.errno("read", err)
	}
	return bytesResult(dest[:n]), 0
}

// bytesResult is a reply of bytes in memory. go-fuse sends a vector
// result with one writev; a plain data result first tries a splice of it
// (header into a pipe, the pipe drained and checked when that fails):
// three syscalls more per reply.
func bytesResult(b []byte) fuse.ReadResult { return fuse.ReadResultVector([][]byte{b}) }

// minSplice is the smallest read spliced rather than copied: below it
// the copy costs less than the splice's extra syscalls.
const minSplice = 32 << 10

// spliceable says whether r can be spliced. A splice that comes back short
// is end of file to the kernel (which then shrinks the mounted file), not
// an error, so ranges that could come back short go through ReadAt, which
// fails them with EIO: a range past the end of a source file that shrank
// under the mount, and any range of a file on a FUSE file system (another
// mount's I/O errors arrive as short splices).
func (c *spliceCache) spliceable(r layouts.FileRange) bool {
	if c == nil || !c.trusted(r.File) {
		return false
	}
	fd := int(r.File.Fd())
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return false
	}
	return st.Mode&unix.S_IFMT != unix.S_IFREG || r.Off+r.Len <= st.Size
}

// fuseSuperMagic is the f_type of FUSE file systems.
const fuseSuperMagic = 0x65735546

// spliceCache remembers, per source file, whether it lies on a file system
// splice can be trusted on. A mount has one, holding its own source files
// (a bounded set), and it goes with the mount.
type spliceCache struct {
	m sync.Map // *os.File -> bool
}

// trusted says whether f's file system can be spliced from, asking the
// kernel once per file.
func (c *spliceCache) trusted(f *os.File) bool {
	if v, known := c.m.Load(f); known {
		return v.(bool)
	}
	var fs unix.Statfs_t
	ok := unix.Fstatfs(int(f.Fd()), &fs) == nil && fs.Type != fuseSuperMagic
	c.m.Store(f, ok)
	return ok
}

func (f *file) Write(ctx context.Context, _ gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if f.rw == nil {
		return 0, syscall.EROFS
	}
	if f.opts.writes != nil {
		f.opts.writes.Add(1)
	}
	n, err := f.rw.WriteAt(data, off)
	f.touch()
	if err != nil {
		return uint32(n), f.errno("write", err)
	}
	return uint32(n), 0
}

func (f *file) Fsync(ctx context.Context, _ gofs.FileHandle, flags uint32) syscall.Errno {
	if f.rw == nil {
		return 0
	}
	return f.errno("fsync", f.rw.Sync())
}

func (f *file) Flush(ctx context.Context, _ gofs.FileHandle) syscall.Errno { return 0 }

// Release is the last close of an open file.
func (f *file) Release(ctx context.Context, _ gofs.FileHandle) syscall.Errno {
	if f.opts.Opens != nil {
		f.opts.Opens.Add(-1)
	}
	return 0
}

const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
	fallocZeroRange = 0x10
)

func (f *file) Allocate(ctx context.Context, _ gofs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if f.rw == nil {
		return syscall.EROFS
	}
	end := int64(off + size)
	switch {
	case mode&fallocPunchHole != 0:
		if mode&fallocKeepSize == 0 {
			return syscall.EOPNOTSUPP
		}
		if err := f.rw.Punch(int64(off), int64(size)); err != nil {
			return f.errno("punch", err)
		}
	case mode&fallocZeroRange != 0:
		if err := f.rw.Punch(int64(off), int64(size)); err != nil {
			return f.errno("zero range", err)
		}
		if mode&fallocKeepSize == 0 && end > f.rw.Size() {
			if err := f.rw.Truncate(end); err != nil {
				return f.errno("extend", err)
			}
		}
	case mode&^fallocKeepSize == 0:
		if mode&fallocKeepSize == 0 && end > f.rw.Size() {
			if err := f.rw.Truncate(end); err != nil {
				return f.errno("extend", err)
			}
		}
	default:
		return syscall.EOPNOTSUPP
	}
	f.touch()
	return 0
}

const (
	seekData = 3
	seekHole = 4
)

// Lseek answers SEEK_DATA and SEEK_HOLE from the content's extents.
func (f *file) Lseek(ctx context.Context, _ gofs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	size := f.content.Size()
	pos := int64(off)
	if pos >= size {
		return 0, syscall.ENXIO
	}
	const step = 1 << 30
	for pos < size {
		exts, err := f.content.Extents(pos, step)
		if err != nil {
			return 0, f.errno("lseek", err)
		}
		if len(exts) == 0 {
			break
		}
		for _, e := range exts {
			isData := e.Kind == layouts.Data
			if whence == seekData && isData {
				return uint64(max(e.Off, int64(off))), 0
			}
			if whence == seekHole && !isData {
				return uint64(max(e.Off, int64(off))), 0
			}
		}
		pos = exts[len(exts)-1].End()
	}
	if whence == seekData {
		return 0, syscall.ENXIO
	}
	return uint64(size), 0
}

// errno is the one place where errors become errno values. I/O failures are
// logged once per file and kind.
func (f *file) errno(op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	switch {
	case errors.As(err, &e):
	case errors.Is(err, os.ErrNotExist):
		e = syscall.ENOENT
	default:
		e = syscall.EIO
	}
	f.logOnceKind(op, e.Error(), err)
	return e
}

func (f *file) logOnce(op string, err error) { f.logOnceKind(op, err.Error(), err) }

// logOnceKind logs err unless an error of the same op and kind was logged
// for f already: a source gone bad fails every read of its range, and one
// line says it (the messages differ only by offset).
func (f *file) logOnceKind(op, kind string, err error) {
	key := op + ": " + kind
	if _, dup := f.loggedOnce.LoadOrStore(key, true); dup {
		return
	}
	f.opts.Logger.Error("I/O error", "file", f.name, "op", op, "err", err)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
