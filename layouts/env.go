package layouts

import (
	"errors"
	"fmt"
	"io"
	"os"
	pathpkg "path"
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
	// AllowAny turns the directory policy off (not the device policy).
	AllowAny bool
	// AllowDevices lists the device files (block devices, by path) that
	// references and the disks a descriptor names may open. Any other
	// device is refused: a descriptor must not make vmfs read a host disk.
	// An entry matches a device with the same resolved path or the same
	// device number.
	AllowDevices []string
	// Sources, when set, records every file opened through the Env. The
	// copies of an Env made for parents share it.
	Sources *Sources
	// OpenDisk opens a path as a disk of any supported format. Format
	// packages call it through OpenParent for backing files.
	OpenDisk func(path string, env *Env) (Disk, error)
	// FormatByQEMUName finds a format by one of its QEMU names, for images
	// that name their parent's format as QEMU does (a qcow2 header's
	// backing format). layouts/formats fills it from its registry.
	FormatByQEMUName func(name string) (Format, bool)
	// Remote, when set, is where every file of the source lies: paths
	// are that remote tree's (clean absolute slash paths), no file of
	// this host is opened or looked at, and a reference resolves inside
	// the tree (a remote descriptor cannot name a local file). The
	// directory and device policies are of local files; they do not
	// apply to it.
	Remote RemoteFS

	depth int
	seen  []string
}

// RemoteFS is a remote folder tree a source is read from, in place.
// Paths are clean absolute slash paths; a missing file is an error
// wrapping fs.ErrNotExist. internal/remote makes one of a remote store.
type RemoteFS interface {
	// Open opens the file at path for reading by ranges.
	Open(path string) (File, error)
	// Stat returns the size of the file at path.
	Stat(path string) (int64, error)
	// Display is path as errors and status show it (a URL).
	Display(path string) string
}

// IsRemote says whether e reads a remote source.
func (e *Env) IsRemote() bool { return e != nil && e.Remote != nil }

// Stat returns the size of the file at path: of the remote tree when e
// is remote, else of this host's file (symlinks followed).
func (e *Env) Stat(path string) (int64, error) {
	if e.IsRemote() {
		return e.Remote.Stat(path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// RealPath is path with its symlinks resolved, to compare files by: a
// remote path as it is.
func (e *Env) RealPath(path string) string {
	if e.IsRemote() {
		return path
	}
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}

// Display is path as the user knows it: a remote file's URL.
func (e *Env) Display(path string) string {
	if e.IsRemote() {
		return e.Remote.Display(path)
	}
	return path
}

// resolveRemote is Resolve in the remote tree.
func (e *Env) resolveRemote(from, ref string) (string, error) {
	p := ref
	if !pathpkg.IsAbs(p) {
		p = pathpkg.Join(pathpkg.Dir(from), p)
	}
	p = pathpkg.Clean(p)
	if _, err := e.Remote.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s: referenced file %q is missing", from, ref)
		}
		return "", fmt.Errorf("%s: referenced file %q: %w", from, ref, err)
	}
	return p, nil
}

// ErrRefused: a reference leaves the allowed directories or names a file
// that is not a regular file.
var ErrRefused = errors.New("reference refused")

// Resolve turns ref, found inside the file from, into a path, and checks it
// against the policy: the target (after symlinks) must lie under the
// directory of from or one of AllowDirs, and be a regular file, or be a
// device listed in AllowDevices (wherever it lies).
func (e *Env) Resolve(from, ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("%s: empty file reference: %w", from, ErrFormat)
	}
	if strings.ContainsRune(ref, 0) {
		return "", fmt.Errorf("%s: file reference %q holds a NUL byte: %w", from, ref, ErrFormat)
	}
	if e.IsRemote() {
		return e.resolveRemote(from, ref)
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
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%s: referenced file %q: %w", from, ref, err)
	}
	if st.Mode()&os.ModeDevice != 0 && e.deviceAllowed(real, st) {
		return p, nil
	}
	if e == nil || !e.AllowAny {
		if !e.allowed(from, real) {
			return "", fmt.Errorf("%s: reference %q leads outside the VM's directory (allow it with --allow-path): %w", from, ref, ErrRefused)
		}
	}
	if st.Mode()&os.ModeDevice != 0 {
		return "", fmt.Errorf("%s: reference %q is a device file (allow it with --allow-device %s): %w", from, ref, real, ErrRefused)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: reference %q is not a regular file: %w", from, ref, ErrRefused)
	}
	return p, nil
}

// deviceAllowed says whether the device file real (resolved, with stat
// st) is one of AllowDevices.
func (e *Env) deviceAllowed(real string, st os.FileInfo) bool {
	if e == nil {
		return false
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	for _, a := range e.AllowDevices {
		if resolvePath(a) == real {
			return true
		}
		ast, err := os.Stat(a)
		if err != nil || ast.Mode()&os.ModeDevice == 0 || ast.Mode().Type() != st.Mode().Type() {
			continue
		}
		if as, ok := ast.Sys().(*syscall.Stat_t); ok && sys != nil && as.Rdev == sys.Rdev {
			return true
		}
	}
	return false
}

// Open opens path, a disk file that a descriptor or an image names,
// read-only under e's device policy, and records it in e.Sources. A device
// not in AllowDevices is refused before it is opened (opening some
// character devices has effects of its own), as is any file that is not a
// regular file or a block device.
func (e *Env) Open(path string) (File, error) {
	if e.IsRemote() {
		f, err := e.Remote.Open(path)
		if err != nil {
			return nil, err
		}
		e.Sources.AddRemote(e.Remote.Display(path))
		return f, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := e.checkOpen(path, st); err != nil {
		return nil, err
	}
	f, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	o := f.(*osFile)
	// The file opened must be the one checked.
	ost, err := o.f.Stat()
	if err != nil || !os.SameFile(st, ost) {
		o.Close()
		if err == nil {
			err = fmt.Errorf("%s: changed while being opened: %w", path, ErrRefused)
		}
		return nil, err
	}
	if e != nil {
		e.Sources.addOpen(path, o.f)
	}
	return o, nil
}

func (e *Env) checkOpen(path string, st os.FileInfo) error {
	m := st.Mode()
	switch {
	case m.IsRegular():
		return nil
	case m&os.ModeDevice != 0:
		real := resolvePath(path)
		if !e.deviceAllowed(real, st) {
			kind := "block device"
			if m&os.ModeCharDevice != 0 {
				kind = "character device"
			}
			return fmt.Errorf("%s: is a %s, and only devices named with --allow-device are read (allow it with --allow-device %s): %w", path, kind, real, ErrRefused)
		}
		if m&os.ModeCharDevice != 0 {
			return fmt.Errorf("%s: is a character device, not a disk: %w", path, ErrRefused)
		}
		return nil
	}
	return fmt.Errorf("%s: not a regular file or block device: %w", path, ErrRefused)
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
	return e.Open(p)
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
	real, fromReal := e.RealPath(p), e.RealPath(from)
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

// OpenFile opens path read-only as a File. Block devices are accepted (their
// size is found by seeking); FIFOs and directories are refused. It applies
// no policy and records nothing: files that a descriptor or an image names
// are opened with Env.Open.
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
