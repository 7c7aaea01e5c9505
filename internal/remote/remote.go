// Package remote reads a source VM where it lives, on another host, by
// ranges: never a whole file, never a copy.
//
// The seam, for every kind of remote source (https:// here, vsphere://
// in its own package):
//
//   - Object is one remote file, read by ranges: one ReadRange call is
//     one request. Its Name is what errors and status show (a URL
//     without credentials).
//   - Store is a remote folder tree whose paths are clean absolute
//     slash paths: the URL's path on its host for https://, ESXi's own
//     namespace (/vmfs/volumes/<datastore>/<folder>/<file>) for
//     vSphere, so that the relative and absolute references of a .vmx
//     or .vmdk resolve with ordinary path rules. A missing file is an
//     error wrapping fs.ErrNotExist.
//   - Cached (NewCached) is the one reader over any Object: a bounded
//     LRU block cache, read-ahead on sequential reads, a cap on the
//     requests in flight per host (Limiter), retries with back-off on
//     transient errors (Transient, ErrTransient), and an error wrapping
//     syscall.EIO, logged once, when they are spent. Stats counts what
//     it did (vmfs status shows it). It is a layouts.File.
//   - FS turns a Store into the layouts.RemoteFS that layouts.Env.Remote
//     takes: every file a remote source names is opened through it, as
//     a Cached whose Name is its path in the store (layouts resolves
//     references against it), and nothing on the local file system is.
//
// A URL scheme becomes a Store in internal/session (one table of
// schemes); Options carries the flags every remote source takes.
package remote

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strconv"
	"strings"

	"github.com/vmfs/vmfs/layouts"
)

// Object is one remote file read by ranges.
type Object interface {
	// Name is the file as errors and status show it: a URL without
	// credentials.
	Name() string
	// Size is the file's size in bytes, fixed when it was opened.
	Size() int64
	// ReadRange reads len(p) bytes at off in one request: it fills p
	// fully, or short only at the end of the file (with io.EOF), or
	// returns an error (Transient when retrying may help).
	ReadRange(ctx context.Context, p []byte, off int64) (int, error)
}

// Store is a remote folder tree; paths are clean absolute slash paths.
type Store interface {
	// Open opens the file at path (fs.ErrNotExist when there is none).
	Open(ctx context.Context, path string) (Object, error)
	// Stat returns the size of the file at path.
	Stat(ctx context.Context, path string) (size int64, err error)
	// Display is path as the user knows it (a URL, without credentials).
	Display(path string) string
}

// Options are what every remote source takes from the command line.
type Options struct {
	// Thumbprint pins the server's leaf certificate: its SHA-256, hex,
	// with or without colons. The chain is then not checked.
	Thumbprint string
	// Insecure skips TLS verification (a warning says so) and allows
	// plain http://.
	Insecure bool
	// CacheSize bounds the block cache of each remote file, in bytes
	// (0: DefaultCacheSize).
	CacheSize int64
	// InFlight caps the requests in flight to one host (0:
	// DefaultInFlight).
	InFlight int
	// Logger takes the warnings and the one line per failed read.
	Logger *slog.Logger
	// Password is the password of the URL's user (vsphere://), from the
	// environment or a file: never from the command line.
	Password string
	// Snapshot lets vsphere:// read a powered-on VM through a snapshot
	// it takes, and removes when the store is closed.
	Snapshot bool
}

// ErrTransient marks an error that retrying may cure: a network error, a
// 5xx or 429 answer.
var ErrTransient = errors.New("transient")

// transientError is err marked as transient.
type transientError struct{ err error }

func (e *transientError) Error() string        { return e.err.Error() }
func (e *transientError) Unwrap() []error      { return []error{e.err, ErrTransient} }
func (e *transientError) Is(target error) bool { return target == ErrTransient }

// Transient marks err as transient (nil stays nil).
func Transient(err error) error {
	if err == nil || errors.Is(err, ErrTransient) {
		return err
	}
	return &transientError{err: err}
}

// IsTransient says whether err is marked transient.
func IsTransient(err error) bool { return errors.Is(err, ErrTransient) }

// CleanPath checks that p is a clean absolute slash path, as Store paths
// are.
func CleanPath(p string) error {
	if p == "" || p[0] != '/' || path.Clean(p) != p || strings.ContainsRune(p, 0) {
		return fmt.Errorf("remote path %q is not a clean absolute path", p)
	}
	return nil
}

// FS is store as a layouts.RemoteFS: Open returns a Cached over the
// store's object, made with o; ctx bounds every request.
func FS(ctx context.Context, store Store, o CacheOptions) layouts.RemoteFS {
	return &storeFS{ctx: ctx, store: store, o: o}
}

type storeFS struct {
	ctx   context.Context
	store Store
	o     CacheOptions
}

func (s *storeFS) Open(p string) (layouts.File, error) {
	if err := CleanPath(p); err != nil {
		return nil, err
	}
	obj, err := s.store.Open(s.ctx, p)
	if err != nil {
		return nil, err
	}
	return &pathFile{Cached: NewCached(obj, s.o), path: p}, nil
}

// pathFile is a Cached named by its path in the store, as layouts
// resolves references against a file's Name (its reads' errors name the
// object's URL).
type pathFile struct {
	*Cached
	path string
}

func (f *pathFile) Name() string { return f.path }

func (s *storeFS) Stat(p string) (int64, error) {
	if err := CleanPath(p); err != nil {
		return 0, err
	}
	return s.store.Stat(s.ctx, p)
}

func (s *storeFS) Display(p string) string { return s.store.Display(p) }

// notExist is an error saying that name is missing, wrapping
// fs.ErrNotExist.
func notExist(name string) error {
	return fmt.Errorf("%s: %w", name, fs.ErrNotExist)
}

// MinCacheSize is the smallest cache a remote file may have: two chunks.
const MinCacheSize = 2 * DefaultChunkSize

// ParseSize reads a size in bytes: a number with an optional K, M, G or
// T suffix (powers of 1024; "KiB", "MB" ... read the same).
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	shift := 0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		case 'T':
			shift = 40
		}
		if shift > 0 {
			t = t[:n-1]
		}
	}
	if t == "" || strings.Trim(t, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a size (a number, with K, M, G or T)", s)
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is not a size (a number, with K, M, G or T)", s)
	}
	return v << shift, nil
}
