// Package session is one use of a source VM: it reads the source, opens
// each disk once, builds the view of the target, wraps its files in the
// overlay once, and hands the one list of files that the FUSE mount serves
// and materialize writes. cmd/vmfs parses flags into Options and asks a
// session for the rest.
package session

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmfs/vmfs/internal/overlay"
	"github.com/vmfs/vmfs/internal/remote"
	"github.com/vmfs/vmfs/internal/view"
	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/bootfacts"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/source"
	"github.com/vmfs/vmfs/translate/targets"
)

// Options say what to build.
type Options struct {
	// To names the target ("libvirt", "qemu", "vmware" ...).
	To string
	// Format of the disk images ("" is the target's default) and their
	// Subformat ("monolithicFlat", "fixed" ...).
	Format, Subformat string
	// Dir is the absolute directory in which the target will see the
	// files: the mountpoint, or materialize's destination.
	Dir string
	// Env is the path policy for references inside source disks (nil:
	// the default). The session records the files it opens in a set of
	// its own, not in Env.Sources.
	Env *layouts.Env
	// Translate steers the device mapping.
	Translate translate.Options
	// SpaceDir, when not "", is a directory the disks will be written to
	// (materialize's destination): the pre-flight report compares their
	// allocated bytes with its free space.
	SpaceDir string
	// Remote are the options of a remote source (a URL: https://).
	Remote remote.Options
}

// Session is a built view and, once UseOverlay ran, its overlay.
type Session struct {
	// View is the target VM: its machine, target, warnings and source
	// files.
	View *view.View

	src    string
	opts   Options
	files  []viewfile.File
	ov     *overlay.Overlay
	ovDir  string
	remote *remoteSource
}

// Open reads the source VM at src and builds its view for opts.To. Each
// disk is opened once: a bare disk, opened to make its machine, is the
// disk the view serves, and its boot facts are read once.
func Open(src string, opts Options) (*Session, error) {
	t, err := targets.Get(opts.To)
	if err != nil {
		return nil, err
	}
	env := withSources(opts.Env)
	rs, err := openRemote(src, opts.Remote, env)
	if err != nil {
		return nil, err
	}
	path := src
	if rs != nil {
		path = rs.path
	}
	l, err := source.Open(path, env)
	if err != nil {
		rs.close()
		return nil, rs.wrap(err)
	}
	v, err := view.New(l.Machine, t, view.Options{
		Format:    opts.Format,
		Subformat: opts.Subformat,
		Dir:       opts.Dir,
		Env:       env,
		Translate: opts.Translate,
		BootFacts: bootFacts(l),
		Opened:    []layouts.Disk{l.Disk},
		Preflight: func(m *translate.Machine, disks []layouts.Disk) { preflight(m, disks, opts.SpaceDir) },
	})
	if err != nil {
		rs.close()
		return nil, rs.wrap(err)
	}
	return &Session{View: v, src: src, opts: opts, files: slices.Clone(v.Files), remote: rs}, nil
}

// Inspection is what `vmfs inspect` shows of a source VM.
type Inspection struct {
	Machine *translate.Machine
	// Disks describe the machine's disks, in its order.
	Disks []view.DiskInfo
	// Missing are the disks whose file is not there: the machine is
	// shown, a view of it cannot be built.
	Missing []translate.MissingDisk
}

// Inspect reads the source VM at src and opens its disks without building
// a target: what `vmfs inspect` shows, the pre-flight report included.
// Unlike Open, it accepts a descriptor whose disks are missing. env is
// the path policy; spaceDir, when not "", a destination whose free space
// the disks are compared with.
func Inspect(src string, env *layouts.Env, spaceDir string) (*Inspection, error) {
	return InspectRemote(src, env, spaceDir, remote.Options{})
}

// InspectRemote is Inspect that takes the options of a remote source.
func InspectRemote(src string, env *layouts.Env, spaceDir string, ro remote.Options) (*Inspection, error) {
	if IsRemote(src) {
		env = withSources(env)
	}
	rs, err := openRemote(src, ro, env)
	if err != nil {
		return nil, err
	}
	defer rs.close()
	if rs != nil {
		src = rs.path
	}
	l, err := source.OpenMissing(src, env)
	if err != nil {
		return nil, rs.wrap(err)
	}
	var missing []int
	for _, d := range l.Missing {
		missing = append(missing, d.Index)
	}
	infos, err := view.Inspect(l.Machine, view.Options{
		Env: env, BootFacts: bootFacts(l), Opened: []layouts.Disk{l.Disk}, Missing: missing,
		Preflight: func(m *translate.Machine, disks []layouts.Disk) { preflight(m, disks, spaceDir) },
	})
	if err != nil {
		return nil, rs.wrap(err)
	}
	in := &Inspection{Machine: l.Machine, Disks: infos, Missing: l.Missing}
	rs.display(in)
	return in, nil
}

// bootFacts reads a disk's boot facts, except those of the bare disk that
// loading l read already.
func bootFacts(l *source.Loaded) func(int, layouts.Disk) (bootfacts.Facts, error) {
	return func(i int, d layouts.Disk) (bootfacts.Facts, error) {
		if i == 0 && l.Disk != nil {
			return l.Boot, l.BootErr
		}
		return bootfacts.Read(d)
	}
}

// withSources is env (nil: the default policy) with a set of its own
// recording the files opened through it.
func withSources(env *layouts.Env) *layouts.Env {
	var e layouts.Env
	if env != nil {
		e = *env
	}
	e.Sources = &layouts.Sources{}
	return &e
}

// Files are the files of the target VM, as served and written: the
// overlay's view of them once UseOverlay ran. The slice is the caller's.
func (s *Session) Files() []viewfile.File { return slices.Clone(s.files) }

// OverlayOptions say which overlay to use and how.
type OverlayOptions struct {
	// Dir of the overlay; "" is DefaultOverlayDir.
	Dir string
	// Fresh discards the overlay's earlier writes.
	Fresh bool
	// Existing uses only an overlay that exists already: where none is,
	// UseOverlay returns ErrNoOverlay (Dir "") or an error naming Dir.
	Existing bool
	// DisksOnly takes the disks' writes from the overlay and leaves the
	// descriptors as generated (materialize writes them anew for its
	// directory), and refuses an overlay that holds files the view lacks.
	DisksOnly bool
	Logger    *slog.Logger
}

// OverlayInfo says what UseOverlay found.
type OverlayInfo struct {
	// Dir is the overlay's directory.
	Dir string
	// Unclean: the overlay was not closed cleanly (its map was checked).
	Unclean bool
	// Edited lists, with DisksOnly, the descriptors written to through
	// the overlay, whose edits are left out.
	Edited []string
}

// ErrNoOverlay: OverlayOptions.Existing found no overlay at the default
// place.
var ErrNoOverlay = errors.New("no overlay")

// UseOverlay opens the overlay and wraps each file of the view in it,
// once: Files then serves the overlay's view, and manifests hash the
// disks as they are served. The session closes the overlay.
func (s *Session) UseOverlay(o OverlayOptions) (OverlayInfo, error) {
	if s.ov != nil {
		return OverlayInfo{}, fmt.Errorf("%s: the session has an overlay already", s.ovDir)
	}
	dir := o.Dir
	if dir == "" {
		var err error
		if dir, err = DefaultOverlayDir(s.src, s.opts); err != nil {
			return OverlayInfo{}, err
		}
	}
	info := OverlayInfo{Dir: dir}
	if o.Existing {
		if _, err := os.Stat(dir); err != nil {
			if o.Dir != "" {
				return info, fmt.Errorf("%s: overlay not found", dir)
			}
			return info, ErrNoOverlay
		}
	}
	if err := s.checkOverlayDir(dir); err != nil {
		return info, err
	}
	ov, err := overlay.Open(dir, overlay.Options{Fresh: o.Fresh, Logger: o.Logger})
	if err != nil {
		return info, err
	}
	s.ov, s.ovDir = ov, dir
	info.Unclean = ov.Unclean()
	if o.DisksOnly {
		foreign, err := ov.Foreign(viewfile.Names(s.files))
		if err != nil {
			return info, err
		}
		if len(foreign) > 0 {
			return info, &ForeignError{Dir: dir, Names: foreign}
		}
	}
	contents := make([]layouts.Disk, len(s.files))
	for i, f := range s.files {
		of, err := ov.File(f.Name, f.Content)
		if err != nil {
			return info, err
		}
		contents[i] = of
		if o.DisksOnly && !f.Disk {
			if of.Modified() {
				info.Edited = append(info.Edited, f.Name)
			}
			contents[i] = f.Content
		}
	}
	for i := range s.files {
		s.files[i].Content = contents[i]
	}
	s.View.Bind(contents)
	return info, nil
}

// ForeignError: the overlay holds writes to files the view does not have
// (it was made through another --to, --format or --subformat).
type ForeignError struct {
	Dir   string
	Names []string
}

func (e *ForeignError) Error() string {
	return fmt.Sprintf("%s: the overlay holds writes to %s, which this view does not have: materialize with the --to, --format and --subformat of the mount (or --discard-overlay)",
		e.Dir, strings.Join(e.Names, ", "))
}

// checkOverlayDir refuses an overlay directory that holds a source file:
// the overlay creates, and with --fresh removes, files of its own there,
// and the source's folder is not vmfs's to write.
func (s *Session) checkOverlayDir(dir string) error {
	real, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if r, err := filepath.EvalSymlinks(real); err == nil {
		real = r
	}
	for _, p := range s.View.Sources.Paths() {
		if p == real || filepath.Dir(p) == real {
			return fmt.Errorf("%s: overlay directory holds the source file %s: choose an overlay outside the source's folders: %w", dir, p, layouts.ErrRefused)
		}
	}
	return nil
}

// OverlayDir is the directory of the overlay in use, "" when none.
func (s *Session) OverlayDir() string {
	if s.ov == nil {
		return ""
	}
	return s.ovDir
}

// Close closes the overlay, then the source disks.
func (s *Session) Close() error {
	var first error
	if s.ov != nil {
		if err := s.ov.Close(); err != nil {
			first = fmt.Errorf("closing the overlay %s: %w", s.ovDir, err)
		}
		s.ov = nil
	}
	if err := s.View.Close(); err != nil && first == nil {
		first = err
	}
	if err := s.remote.close(); err != nil && first == nil {
		first = err
	}
	return first
}

// DefaultOverlayDir is derived from the source and what shapes the files,
// so that mounting the same VM the same way finds its earlier writes.
func DefaultOverlayDir(src string, o Options) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the overlay (give --overlay): %w", err)
	}
	abs := src
	if a, err := filepath.Abs(src); err == nil && !IsRemote(src) {
		abs = a
	}
	h := sha256.Sum256([]byte(abs + "\x00" + o.To + "\x00" + o.Format + "\x00" + o.Subformat))
	name := translate.FileName(filepath.Base(src)) + "-" + hex.EncodeToString(h[:6])
	return filepath.Join(cache, "vmfs", "overlays", name), nil
}
