package vhd

import (
	"encoding/binary"
	"net/url"
	"path"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/vmfs/vmfs/layouts"
)

// Parent locator platform codes.
const (
	platW2ru = 0x57327275 // relative path, UTF-16LE
	platW2ku = 0x57326B75 // absolute path, UTF-16LE
	platMacX = 0x4D616358 // file URL, UTF-8
)

// maxLocator bounds the bytes read for one parent locator.
const maxLocator = 64 << 10

// parentRefs lists the parent file names the header offers, most
// trustworthy first: relative locators, file URLs, absolute paths, then the
// bare file name of the header's parent name and of the absolute paths,
// looked up next to the child.
func (d *Disk) parentRefs(hd *header) ([]string, error) {
	var rel, mac, abs []string
	for i, l := range hd.locators {
		switch l.code {
		case platW2ru, platW2ku, platMacX:
		default:
			continue
		}
		if l.length == 0 {
			continue
		}
		if l.length > maxLocator || l.offset > uint64(d.f.Size()) || uint64(d.f.Size())-l.offset < uint64(l.length) {
			return nil, d.errf("parent locator %d (%d bytes at %d) runs past end of file: %w", i, l.length, l.offset, layouts.ErrFormat)
		}
		buf := make([]byte, l.length)
		if err := layouts.ReadFull(d.f, buf, int64(l.offset)); err != nil {
			return nil, d.errf("reading parent locator %d: %w", i, err)
		}
		switch l.code {
		case platW2ru:
			if s := winPath(decodeUTF16(buf, binary.LittleEndian)); s != "" {
				rel = append(rel, s)
			}
		case platW2ku:
			if s := winPath(decodeUTF16(buf, binary.LittleEndian)); s != "" {
				abs = append(abs, s)
			}
		case platMacX:
			if s := macPath(string(trimNUL(buf))); s != "" {
				mac = append(mac, s)
			}
		}
	}
	// Relative paths first, then file names next to the child (a VM moved
	// from Windows keeps its chain in one directory), then absolute paths.
	refs := rel
	for _, a := range abs {
		refs = append(refs, path.Base(a))
	}
	if n := winPath(decodeUTF16(hd.parentName, binary.BigEndian)); n != "" {
		refs = append(refs, path.Base(n))
	}
	refs = append(append(refs, mac...), abs...)
	return dedup(refs), nil
}

func dedup(refs []string) []string {
	var out []string
	for _, r := range refs {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

func decodeUTF16(b []byte, order binary.ByteOrder) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := order.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// winPath turns a Windows path into a slash path: a drive letter or UNC
// prefix makes it absolute (it can only be matched by its base name here).
func winPath(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	s = strings.ReplaceAll(s, `\`, "/")
	if len(s) >= 2 && s[1] == ':' {
		s = s[2:]
		if !strings.HasPrefix(s, "/") {
			s = "/" + s
		}
	}
	return s
}

// macPath turns a MacX file URL into a path.
func macPath(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Scheme != "file" {
		return ""
	}
	return u.Path
}

// openParent opens the parent of a differencing disk and checks its id.
func (d *Disk) openParent(hd *header, env *layouts.Env) (layouts.Disk, error) {
	refs, err := d.parentRefs(hd)
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, d.errf("differencing disk names no parent: %w", layouts.ErrFormat)
	}
	return env.OpenParentOf(Type, d.name, refs, func(parent layouts.Disk, ref string) error {
		return d.checkParent(hd, parent, ref)
	})
}

func (d *Disk) checkParent(hd *header, parent layouts.Disk, ref string) error {
	pd, ok := layouts.TopOf(parent).(*Disk)
	if !ok {
		return d.errf("parent %s is a %s image, not a vhd: %w", ref, parent.Format(), layouts.ErrFormat)
	}
	if pd.ft.uniqueID != hd.parentID {
		return d.errf("parent %s has unique id %x, the header expects %x: %w", ref, pd.ft.uniqueID, hd.parentID, layouts.ErrFormat)
	}
	return nil
}
