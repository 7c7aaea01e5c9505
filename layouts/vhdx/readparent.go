package vhdx

import (
	"encoding/binary"
	"path"
	"strings"
	"unicode/utf16"

	"github.com/vmfs/vmfs/layouts"
)

// parentLocator parses the VHDX parent locator item into its keys.
func (d *Disk) parentLocator() (map[string]string, error) {
	b := d.locator
	var typ guid
	copy(typ[:], b[:16])
	if typ != locatorVHDX {
		return nil, d.errf("parent locator type %s is not the VHDX one: %w", typ, layouts.ErrUnsupported)
	}
	count := int(binary.LittleEndian.Uint16(b[18:]))
	if 20+12*count > len(b) {
		return nil, d.errf("parent locator claims %d entries in %d bytes: %w", count, len(b), layouts.ErrFormat)
	}
	kv := map[string]string{}
	for i := 0; i < count; i++ {
		e := b[20+12*i:]
		ko := int64(binary.LittleEndian.Uint32(e[0:]))
		vo := int64(binary.LittleEndian.Uint32(e[4:]))
		kl := int64(binary.LittleEndian.Uint16(e[8:]))
		vl := int64(binary.LittleEndian.Uint16(e[10:]))
		if ko+kl > int64(len(b)) || vo+vl > int64(len(b)) {
			return nil, d.errf("parent locator entry %d lies outside the item: %w", i, layouts.ErrFormat)
		}
		kv[decodeUTF16(b[ko:ko+kl])] = decodeUTF16(b[vo : vo+vl])
	}
	return kv, nil
}

func decodeUTF16(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// winPath turns a Windows path into a slash path; a drive letter makes it
// absolute.
func winPath(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), `\`, "/")
	if len(s) >= 2 && s[1] == ':' {
		s = s[2:]
		if !strings.HasPrefix(s, "/") {
			s = "/" + s
		}
	}
	return s
}

func (d *Disk) openParent(env *layouts.Env) (layouts.Disk, error) {
	kv, err := d.parentLocator()
	if err != nil {
		return nil, err
	}
	var links []guid
	for _, k := range []string{"parent_linkage", "parent_linkage2"} {
		if v, ok := kv[k]; ok {
			g, ok := parseGUID(v)
			if !ok {
				return nil, d.errf("parent locator %s %q is not a GUID: %w", k, v, layouts.ErrFormat)
			}
			if g != (guid{}) {
				links = append(links, g)
			}
		}
	}
	if len(links) == 0 {
		return nil, d.errf("parent locator lacks parent_linkage: %w", layouts.ErrFormat)
	}
	var refs []string
	if v := winPath(kv["relative_path"]); v != "" {
		refs = append(refs, v)
	}
	// then the file name next to the child (a VM moved from Windows keeps
	// its chain in one directory), then the absolute path
	if v := winPath(kv["absolute_win32_path"]); v != "" {
		if b := path.Base(v); b != refs0(refs) {
			refs = append(refs, b)
		}
		refs = append(refs, v)
	}
	if len(refs) == 0 {
		return nil, d.errf("parent locator names no path: %w", layouts.ErrFormat)
	}
	return env.OpenParentOf(Type, d.name, refs, func(parent layouts.Disk, ref string) error {
		return d.checkParent(parent, ref, links)
	})
}

func refs0(refs []string) string {
	if len(refs) == 0 {
		return ""
	}
	return refs[0]
}

func (d *Disk) checkParent(parent layouts.Disk, ref string, links []guid) error {
	pd, ok := layouts.TopOf(parent).(*Disk)
	if !ok {
		return d.errf("parent %s is a %s image, not a vhdx: %w", ref, parent.Format(), layouts.ErrFormat)
	}
	for _, l := range links {
		if pd.h.dataWrite == l {
			return nil
		}
	}
	return d.errf("parent %s has data write guid %s, the locator expects %s: %w", ref, pd.h.dataWrite, links[0], layouts.ErrFormat)
}
