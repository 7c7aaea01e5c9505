package vdi

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmfs/vmfs/layouts"
)

// maxScan bounds the directory entries read per directory while looking
// for a differencing image's parent.
const maxScan = 4096

// A differencing VDI (image type 4, what VirtualBox makes for snapshots)
// names its parent only by UUID: uuidLinkage is the parent's uuidCreate,
// and uuidParentModify the parent's uuidModify when the child was made. The
// parent's path lives in a VirtualBox media registry, not in the file, so
// the parent is looked for among the *.vdi files of the child's directory,
// then of the directory above it (a VM keeps its base disk in VM/ and its
// snapshots in VM/Snapshots/). Only headers are read while looking, and
// only of files the path policy of env allows.
//
// Block map semantics (VirtualBox's VDI backend): a free entry (0xffffffff)
// is not in the image, so the read falls through to the parent; a zero
// entry (0xfffffffe) reads as zeros without asking the parent.

// uuidString formats a header UUID the way VirtualBox prints it: the first
// three fields are stored little-endian.
func uuidString(u [16]byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(u[0:4]), le.Uint16(u[4:6]), le.Uint16(u[6:8]), u[8:10], u[10:16])
}

// candidate is a file that might be the parent, named as a reference
// relative to the child's directory.
type candidate struct {
	ref, path string
}

// parentDirs are the directories searched, in order: the child's and the
// one above it.
func parentDirs(child string) []string {
	d1 := filepath.Dir(child)
	d2 := filepath.Join(d1, "..")
	if d2 == d1 {
		return []string{d1}
	}
	return []string{d1, d2}
}

// candidates lists the *.vdi files of dir (at most maxScan entries read),
// sorted by name.
func candidates(dir, ref string) ([]candidate, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(maxScan)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var out []candidate
	for _, e := range ents {
		name := e.Name()
		if !strings.EqualFold(filepath.Ext(name), ".vdi") || e.IsDir() {
			continue
		}
		out = append(out, candidate{ref: filepath.Join(ref, name), path: filepath.Join(dir, name)})
	}
	slices.SortFunc(out, func(a, b candidate) int { return strings.Compare(a.ref, b.ref) })
	return out, nil
}

// headerUUIDs reads the header of the VDI at path and returns its
// uuidCreate and uuidModify; ok is false when the file is no VDI 1.1 image.
func headerUUIDs(path string) (create, modify [16]byte, ok bool) {
	f, err := layouts.OpenFile(path)
	if err != nil {
		return create, modify, false
	}
	defer f.Close()
	var b [0x1a8]byte
	if n, _ := f.ReadAt(b[:], 0); n < len(b) {
		return create, modify, false
	}
	le := binary.LittleEndian
	if le.Uint32(b[0x40:]) != signature || le.Uint32(b[0x44:]) != version11 {
		return create, modify, false
	}
	copy(create[:], b[0x188:])
	copy(modify[:], b[0x198:])
	return create, modify, true
}

// openParent finds and opens the parent of the differencing image d,
// checks it and returns it (itself stacked over its own parents).
//
// Only one candidate is opened: the first whose header has the UUID d
// names and the modification UUID d records, else the first with the UUID
// alone (which then fails the check with a clear error). Opening every
// match in turn would let copies of images with one UUID make the search
// exponential in the chain depth.
func (d *Disk) openParent(env *layouts.Env) (layouts.Disk, error) {
	want := uuidString(d.uuidLinkage)
	if d.uuidLinkage == ([16]byte{}) {
		return nil, errf(d.name, "differencing image names no parent (uuidLinkage is zero): %w", layouts.ErrFormat)
	}
	if env == nil || env.OpenDisk == nil {
		return nil, errf(d.name, "differencing image: no way to open its parent {%s} here: %w", want, layouts.ErrUnsupported)
	}
	if env.IsRemote() {
		return nil, errf(d.name, "differencing image: its parent {%s} is found by listing the folder, which a remote source cannot: %w", want, layouts.ErrUnsupported)
	}
	dirs := parentDirs(d.name)
	var listErr, refused error
	var best, fallback *candidate
	for i, dir := range dirs {
		ref := "."
		if i == 1 {
			ref = ".."
		}
		cands, err := candidates(dir, ref)
		if err != nil {
			listErr = cmp.Or(listErr, errf(d.name, "differencing image: listing %s: %v", dir, err))
			continue
		}
		for _, c := range cands {
			// The path policy first: a refused file is not even read.
			p, err := env.Resolve(d.name, c.ref)
			if err != nil {
				if errors.Is(err, layouts.ErrRefused) {
					refused = cmp.Or(refused, err)
				}
				continue
			}
			create, modify, ok := headerUUIDs(p)
			if !ok || create != d.uuidLinkage {
				continue
			}
			if d.uuidParentModify == ([16]byte{}) || modify == d.uuidParentModify {
				best = &c
				break
			}
			if fallback == nil {
				fallback = &c
			}
		}
		if best != nil {
			break
		}
	}
	if c := cmp.Or(best, fallback); c != nil {
		parent, err := env.OpenParent(d.name, c.ref)
		if err != nil {
			return nil, errf(d.name, "parent %s: %w", c.path, err)
		}
		if err := d.checkParent(parent, c.path); err != nil {
			parent.Close()
			return nil, err
		}
		return parent, nil
	}
	if listErr != nil {
		return nil, listErr
	}
	looked := strings.Join(dirs, ", ")
	if refused != nil {
		return nil, errf(d.name, "differencing image: parent {%s} not found next to it (looked in %s; files the path policy refused were not read, allow their directory with --allow-path): %w", want, looked, layouts.ErrRefused)
	}
	return nil, errf(d.name, "differencing image: parent {%s} not found next to it (looked in %s): %w", want, looked, fs.ErrNotExist)
}

// checkParent checks that parent, opened from path, is the image d was
// made over: a VDI with the UUID d names, of d's size, not modified since.
func (d *Disk) checkParent(parent layouts.Disk, path string) error {
	pd, ok := layouts.TopOf(parent).(*Disk)
	if !ok {
		return errf(d.name, "parent %s is a %s image, not a vdi: %w", path, parent.Format(), layouts.ErrFormat)
	}
	if pd.uuidCreate != d.uuidLinkage {
		return errf(d.name, "parent %s has uuid {%s}, the header expects {%s}: %w", path, uuidString(pd.uuidCreate), uuidString(d.uuidLinkage), layouts.ErrFormat)
	}
	if pd.size != d.size {
		return errf(d.name, "disk size %d differs from the size %d of its parent %s: %w", d.size, pd.size, path, layouts.ErrFormat)
	}
	// A zero uuidParentModify records nothing to check.
	if d.uuidParentModify != ([16]byte{}) && pd.uuidModify != d.uuidParentModify {
		return errf(d.name, "parent %s was modified after this differencing image was made (its modification uuid is {%s}, the header expects {%s}): %w",
			path, uuidString(pd.uuidModify), uuidString(d.uuidParentModify), layouts.ErrFormat)
	}
	return nil
}
