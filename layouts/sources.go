package layouts

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// SourceFile identifies one file a view reads: its absolute path with
// every symlink resolved, and its device and inode numbers.
type SourceFile struct {
	Path string
	Dev  uint64
	Ino  uint64
}

// Sources is the set of files opened through an Env (disks, VMDK extents,
// parents and backing files, external data files) plus those its owner
// adds (the descriptor, an OVA archive). An Env holds a pointer to one, so
// that the copies made for parents and chains record into the same set.
// It is safe for concurrent use; the zero value is an empty set, and a nil
// *Sources records nothing.
type Sources struct {
	mu    sync.Mutex
	files []SourceFile
}

// Add records the file at path (symlinks followed).
func (s *Sources) Add(path string) error {
	if s == nil {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("source file %s: %w", path, err)
	}
	s.add(path, st)
	return nil
}

// AddRemote records a remote file by the name it is shown with (a URL):
// it has no device and inode on this host.
func (s *Sources) AddRemote(name string) {
	if s == nil {
		return
	}
	sf := SourceFile{Path: name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.files, sf) {
		s.files = append(s.files, sf)
	}
}

// addOpen records f, opened from path: its identity is the open file's.
func (s *Sources) addOpen(path string, f *os.File) {
	if s == nil {
		return
	}
	if st, err := f.Stat(); err == nil {
		s.add(path, st)
	}
}

func (s *Sources) add(path string, st os.FileInfo) {
	sf := SourceFile{Path: resolvePath(path)}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		sf.Dev, sf.Ino = uint64(sys.Dev), uint64(sys.Ino)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.files, sf) {
		s.files = append(s.files, sf)
	}
}

// Files lists the recorded files in the order they were first recorded.
func (s *Sources) Files() []SourceFile {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.files)
}

// Paths lists the resolved paths of the recorded files.
func (s *Sources) Paths() []string {
	var out []string
	for _, f := range s.Files() {
		out = append(out, f.Path)
	}
	return out
}

// Find says whether writing path would write or replace a recorded file:
// path (symlinks followed) is one by device and inode (a hard link
// counts), or path, resolved, names one. A path that does not exist yet is
// compared by its directory, resolved, and its base name.
func (s *Sources) Find(path string) (SourceFile, bool) {
	files := s.Files()
	if len(files) == 0 {
		return SourceFile{}, false
	}
	if st, err := os.Stat(path); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			for _, f := range files {
				if f.Dev == uint64(sys.Dev) && f.Ino == uint64(sys.Ino) {
					return f, true
				}
			}
		}
	}
	real := resolvePath(path)
	for _, f := range files {
		if f.Path == real {
			return f, true
		}
	}
	return SourceFile{}, false
}

// resolvePath makes path absolute and resolves its symlinks; when path
// does not exist, those of its directory.
func resolvePath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	if d, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(d, filepath.Base(abs))
	}
	return abs
}
