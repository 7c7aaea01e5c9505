package layouts

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// MaxChainDepth bounds backing/parent chains, so that a loop in hostile
// metadata ends in an error rather than a hang.
const MaxChainDepth = 64

// Env carries what a format reader needs to open the files an image refers
// to (VMDK extents, parent disks, backing files): the policy that says which
// references are allowed, and a way to open a parent of any format.
type Env struct {
	// AllowDirs lists directories (absolute, cleaned) that references may
	// reach besides the directory of the file that names them. A reference
	// that leaves them all is refused.
	AllowDirs []string
	// AllowAny turns the path policy off.
	AllowAny bool
	// OpenDisk opens a path as a disk of any supported format. Format
	// packages call it through OpenParent for backing files.
	OpenDisk func(path string, env *Env) (Disk, error)

	depth int
	seen  []string
}

// ErrRefused: a reference leaves the allowed directories or names a file
// that is not a regular file.
var ErrRefused = errors.New("reference refused")

// Resolve turns ref, found inside the file from, into a path, and checks it
// against the policy: the target (after symlinks) must lie under the
// directory of from or one of AllowDirs, and be a regular file.
func (e *Env) Resolve(from, ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("%s: empty file reference: %w", from, ErrFormat)
	}
	if strings.ContainsRune(ref, 0) {
		return "", fmt.Errorf("%s: file reference %q holds a NUL byte: %w", from, ref, ErrFormat)
	}
	p := ref
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(from), p)
	}
	p = filepath.Clean(p)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s: referenced file %q is missing", from, ref)
		}
		return "", fmt.Errorf("%s: referenced file %q: %w", from, ref, err)
	}
	// A relative from (a descriptor named relative to the working
	// directory) gives a relative real path: compare absolute paths.
	if real, err = filepath.Abs(real); err != nil {
		return "", fmt.Errorf("%s: referenced file %q: %w", from, ref, err)
	}
	if e == nil || !e.AllowAny {
		if !e.allowed(from, real) {
			return "", fmt.Errorf("%s: reference %q leads outside the VM's directory (allow it with --allow-path): %w", from, ref, ErrRefused)
		}
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%s: referenced file %q: %w", from, ref, err)
	}
	if !st.Mode().IsRegular() && st.Mode()&os.ModeDevice == 0 {
		return "", fmt.Errorf("%s: reference %q is not a regular file: %w", from, ref, ErrRefused)
	}
	if st.Mode()&os.ModeDevice != 0 && (e == nil || !e.AllowAny) {
		return "", fmt.Errorf("%s: reference %q is a device file: %w", from, ref, ErrRefused)
	}
	return p, nil
}

func (e *Env) allowed(from, real string) bool {
	base, err := filepath.EvalSymlinks(filepath.Dir(from))
	if err != nil {
		base = filepath.Dir(from)
	}
	dirs := []string{base}
	if e != nil {
		dirs = append(dirs, e.AllowDirs...)
	}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			abs = r
		}
		if real == abs || strings.HasPrefix(real, abs+string(filepath.Separator)) || abs == "/" {
			return true
		}
	}
	return false
}

// OpenRef resolves ref found in from and opens it read-only.
func (e *Env) OpenRef(from, ref string) (File, error) {
	p, err := e.Resolve(from, ref)
	if err != nil {
		return nil, err
	}
	return OpenFile(p)
}

// OpenParent resolves and opens a parent disk named in from, of any
// supported format, refusing loops and chains deeper than MaxChainDepth.
func (e *Env) OpenParent(from, ref string) (Disk, error) {
	if e == nil || e.OpenDisk == nil {
		return nil, fmt.Errorf("%s: parent %q: no opener for parent disks", from, ref)
	}
	p, err := e.Resolve(from, ref)
	if err != nil {
		return nil, err
	}
	real, _ := filepath.EvalSymlinks(p)
	fromReal, _ := filepath.EvalSymlinks(from)
	for _, s := range append(e.seen, fromReal) {
		if s == real {
			return nil, fmt.Errorf("%s: parent %q loops back to %s: %w", from, ref, s, ErrFormat)
		}
	}
	if e.depth+1 > MaxChainDepth {
		return nil, fmt.Errorf("%s: chain deeper than %d images: %w", from, MaxChainDepth, ErrFormat)
	}
	child := *e
	child.depth = e.depth + 1
	child.seen = append(append([]string(nil), e.seen...), fromReal)
	return e.OpenDisk(p, &child)
}

// osFile is a File over an *os.File opened read-only.
type osFile struct {
	f    *os.File
	size int64
}

// OpenFile opens path read-only as a File. Device files are accepted (their
// size is found by seeking); FIFOs and directories are refused.
func OpenFile(path string) (File, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
	// below); it changes nothing for regular files and block devices.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	size := st.Size()
	switch {
	case st.Mode().IsRegular():
	case st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0:
		size, err = f.Seek(0, io.SeekEnd)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	default:
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file or block device: %w", path, ErrRefused)
	}
	return &osFile{f: f, size: size}, nil
}

func (o *osFile) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }
func (o *osFile) Size() int64                             { return o.size }
func (o *osFile) Name() string                            { return o.f.Name() }
func (o *osFile) Close() error                            { return o.f.Close() }

// OSFile returns the *os.File behind f, if there is one, so that callers can
// splice or copy_file_range from it.
func OSFile(f File) (*os.File, bool) {
	if o, ok := f.(*osFile); ok {
		return o.f, true
	}
	return nil, false
}

// SectionFile is a File that is a byte range of another (a disk inside an
// OVA's tar, say). Closing it does not close the outer file.
type SectionFile struct {
	R    io.ReaderAt
	Base int64
	N    int64
	Path string
}

func (s *SectionFile) ReadAt(p []byte, off int64) (int, error) {
	n, eof := CheckRead(s.N, p, off)
	if n == 0 {
		return 0, eof
	}
	m, err := s.R.ReadAt(p[:n], s.Base+off)
	if err != nil && !(err == io.EOF && m == n) {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return m, err
	}
	return n, eof
}
func (s *SectionFile) Size() int64  { return s.N }
func (s *SectionFile) Name() string { return s.Path }
func (s *SectionFile) Close() error { return nil }
