// Package overlay keeps the writes made to a mounted view in a
// copy-on-write overlay directory, never in the source.
//
// Each file of the view that is written gets, in the overlay directory, a
// sparse data file of the file's virtual size (written 4 KiB blocks stored
// at their own offset, so the data file holds no more than what was
// written) and a map file that says which blocks were written and which
// were punched, with the file's size and the identity of the base it was
// made for. The map is held sparsely in memory and persisted on Sync:
// the data file is synced first, then the map is written to a temporary
// file, synced and renamed over the old one, and the directory synced. A
// "dirty" marker, present while the overlay is open, tells the next Open
// that the previous session did not close cleanly.
package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/vmfs/vmfs/layouts"
	"golang.org/x/sys/unix"
)

const (
	dirtyName = "dirty"
	lockName  = "lock"
	dataExt   = ".data"
	mapExt    = ".map"
	tmpExt    = ".tmp"
)

// Options tune Open.
type Options struct {
	// Fresh discards what the directory held from earlier sessions.
	Fresh bool
	// Logger receives notices (unclean previous session, discarded
	// contents). Nil discards them.
	Logger *slog.Logger
}

// Overlay is an open overlay directory. Only one process may hold it.
type Overlay struct {
	dir     string
	log     *slog.Logger
	lock    *os.File
	unclean bool

	mu     sync.Mutex
	files  map[string]*File
	closed bool
}

// NotePrefix starts the names of files that others keep in an overlay
// directory about its writes: Fresh discards them with the writes.
const NotePrefix = "note-"

// Open opens (creating if needed) the overlay directory dir for a set of
// files. Fresh discards earlier contents.
func Open(dir string, opts Options) (*Overlay, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("overlay: %s: in use by another process: %w", dir, err)
	}
	o := &Overlay{dir: dir, log: log, lock: lock, files: map[string]*File{}}
	fail := func(err error) (*Overlay, error) {
		unix.Flock(int(lock.Fd()), unix.LOCK_UN)
		lock.Close()
		return nil, err
	}
	if _, err := os.Lstat(filepath.Join(dir, dirtyName)); err == nil {
		o.unclean = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("overlay: %w", err))
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fail(fmt.Errorf("overlay: %w", err))
	}
	for _, e := range ents {
		n := e.Name()
		// note-* files describe the writes (vmfs convert's marker):
		// they go with them.
		ours := strings.HasSuffix(n, dataExt) || strings.HasSuffix(n, mapExt) || n == dirtyName || strings.HasPrefix(n, NotePrefix)
		if strings.HasSuffix(n, tmpExt) || (opts.Fresh && ours) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return fail(fmt.Errorf("overlay: %w", err))
			}
		}
	}
	if opts.Fresh {
		log.Info("overlay: discarded earlier contents", "dir", dir)
	} else if o.unclean {
		log.Warn("overlay: previous session did not close cleanly; checking maps", "dir", dir)
		for _, e := range ents {
			if n := e.Name(); strings.HasSuffix(n, mapExt) {
				if _, err := o.loadMap(strings.TrimSuffix(n, mapExt), n); err != nil {
					return fail(err)
				}
			}
		}
	}
	if err := o.markDirty(); err != nil {
		return fail(err)
	}
	return o, nil
}

func (o *Overlay) markDirty() error {
	f, err := os.OpenFile(filepath.Join(o.dir, dirtyName), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	_, err = f.WriteString(fmt.Sprintf("pid %d\n", os.Getpid()))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(o.dir)
	}
	if err != nil {
		return fmt.Errorf("overlay: %s: mark dirty: %w", o.dir, err)
	}
	return nil
}

// loadMap reads and checks the map file mapName of the overlay entry key
// against its data file. A missing map returns nil, nil.
func (o *Overlay) loadMap(key, mapName string) (*mapState, error) {
	path := filepath.Join(o.dir, mapName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	// A map holds at most a few runs per written block; bound what is
	// read by what a map of an exabyte-sized file could honestly need
	// and, below that, by the file's real size.
	const maxMapFile = 1 << 30
	if st.Size() > maxMapFile {
		return nil, fmt.Errorf("overlay: %s: map of %d bytes is too large: %w", path, st.Size(), layouts.ErrFormat)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("overlay: %s: %w", path, err)
	}
	m, err := decodeMap(b)
	if err != nil {
		return nil, fmt.Errorf("overlay: %s: %w (start with a fresh overlay to discard it): %w", path, err, layouts.ErrFormat)
	}
	if nameKey(m.name) != key {
		return nil, fmt.Errorf("overlay: %s: map names file %q: %w", path, m.name, layouts.ErrFormat)
	}
	// Every written block must lie inside the data file.
	var lastData int64 = -1
	for _, r := range m.runs {
		if r.st == stData {
			lastData = r.first + r.count - 1
		}
	}
	dpath := filepath.Join(o.dir, key+dataExt)
	dst, err := os.Stat(dpath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if lastData >= 0 {
			return nil, fmt.Errorf("overlay: %s: data file missing for a map with written blocks: %w", dpath, layouts.ErrFormat)
		}
	case err != nil:
		return nil, fmt.Errorf("overlay: %w", err)
	case lastData >= 0 && lastData<<blockShift >= dst.Size():
		return nil, fmt.Errorf("overlay: %s: map block %d points past end of data file (%d bytes): %w", path, lastData, dst.Size(), layouts.ErrFormat)
	}
	return m, nil
}

// Unclean reports that the previous session did not close cleanly
// (detected at Open); its maps were checked.
func (o *Overlay) Unclean() bool { return o.unclean }

// Dir is the overlay directory.
func (o *Overlay) Dir() string { return o.dir }

// Usage reports the allocated bytes of the overlay's data and map files and
// the number of files it holds.
func (o *Overlay) Usage() (bytes int64, files int, err error) { return DirUsage(o.dir) }

// DirUsage is Usage of the overlay directory dir, open or not: the bytes
// its data and map files add to the file system (blocks a whole data file
// still shares with its source are not counted) and how many files of the
// view it holds writes for.
func DirUsage(dir string) (bytes int64, files int, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, fmt.Errorf("overlay: %w", err)
	}
	seen := map[string]bool{}
	for _, e := range ents {
		n := e.Name()
		key, isData := strings.CutSuffix(n, dataExt)
		if !isData {
			var isMap bool
			if key, isMap = strings.CutSuffix(n, mapExt); !isMap {
				continue
			}
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, n), &st); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				continue
			}
			return 0, 0, fmt.Errorf("overlay: %s: %w", n, err)
		}
		used := st.Blocks * 512
		if isData && used > 0 {
			// A whole data file shares the blocks of its source
			// until they are written: count only what it adds.
			if df, err := os.Open(filepath.Join(dir, n)); err == nil {
				if u, err := unsharedBytes(df); err == nil {
					used = min(used, u)
				}
				df.Close()
			}
		}
		bytes += used
		if !isData || st.Blocks > 0 {
			seen[key] = true
		}
	}
	return bytes, len(seen), nil
}

// File returns the writable view of the file name whose read-only content
// is base. Asking again for an open name returns the same File (each call
// wants its own Close).
func (o *Overlay) File(name string, base layouts.Disk) (*File, error) {
	if name == "" {
		return nil, errors.New("overlay: empty file name")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, fmt.Errorf("overlay: %s: %w", o.dir, fs.ErrClosed)
	}
	if f := o.files[name]; f != nil {
		if f.base.Size() != base.Size() {
			return nil, fmt.Errorf("overlay: %s: already open with another base", name)
		}
		f.refs++
		return f, nil
	}
	f, err := o.openFile(name, base)
	if err != nil {
		return nil, err
	}
	o.files[name] = f
	return f, nil
}

// Close flushes every file, closes them and marks the overlay clean. On a
// flush error the overlay stays marked dirty.
func (o *Overlay) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	var errs []error
	for name, f := range o.files {
		errs = append(errs, f.close())
		delete(o.files, name)
	}
	err := errors.Join(errs...)
	if err == nil {
		if rerr := os.Remove(filepath.Join(o.dir, dirtyName)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("overlay: %w", rerr)
		} else {
			err = syncDir(o.dir)
		}
	}
	unix.Flock(int(o.lock.Fd()), unix.LOCK_UN)
	if cerr := o.lock.Close(); err == nil {
		err = cerr
	}
	return err
}

// release drops one reference to f, closing it at the last.
func (o *Overlay) release(f *File) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if f.refs <= 0 {
		return nil
	}
	f.refs--
	if f.refs > 0 {
		return nil
	}
	if o.files[f.name] == f {
		delete(o.files, f.name)
	}
	return f.close()
}

// nameKey is the name of a file's entries in the overlay directory: safe
// characters kept, others escaped, long names shortened with a hash.
func nameKey(name string) string {
	var b strings.Builder
	b.WriteString("f-")
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	k := b.String()
	if len(k) > 160 {
		k = fmt.Sprintf("%s~%x", k[:100], fnv64(name))
	}
	return k
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Foreign lists the files the overlay holds writes for that are not among
// names (their on-disk keys): writes made through a view with other files,
// such as a mount with another --format.
func (o *Overlay) Foreign(names []string) ([]string, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[nameKey(n)] = true
	}
	ents, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	var out []string
	for _, e := range ents {
		if key, ok := strings.CutSuffix(e.Name(), mapExt); ok && !want[key] {
			out = append(out, strings.TrimPrefix(key, "f-"))
		}
	}
	return out, nil
}
