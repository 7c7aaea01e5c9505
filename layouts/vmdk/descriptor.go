package vmdk

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// maxDescriptor bounds a descriptor's text, embedded or in a file. Real
// descriptors are a few KiB; QEMU reads no more than this either.
const maxDescriptor = 1 << 20

// sizeText writes a byte count for an error message: "2.5 MiB".
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// noCID is the parentCID of a disk without parent.
const noCID = 0xffffffff

// ExtentLine is one extent line of a descriptor.
type ExtentLine struct {
	Access  string // RW, RDONLY, NOACCESS
	Sectors int64
	Type    string // SPARSE, FLAT, ZERO, VMFS, VMFSSPARSE, VMFSRAW, VMFSRDM, SESPARSE
	File    string // empty for ZERO
	Offset  int64  // FLAT/VMFS: first sector of the extent in File
}

// Descriptor is a parsed VMDK descriptor.
type Descriptor struct {
	Version            string
	CID                uint32
	ParentCID          uint32
	HasCID             bool
	CreateType         string
	ParentFileNameHint string
	Extents            []ExtentLine
	// DDB holds the ddb.* keys, without the "ddb." prefix, and their
	// unquoted values.
	DDB map[string]string
}

// looksLikeDescriptor says whether b, the start of a file, is descriptor text.
func looksLikeDescriptor(b []byte) bool {
	// The text ends at the first NUL, as QEMU reads it. What follows may
	// be a sector's padding or leftovers of a longer descriptor written
	// before: NULs and text, but no other control bytes (a binary file
	// that happens to start with the header line is not a descriptor).
	text, tail := b, []byte(nil)
	if i := bytes.IndexByte(b, 0); i >= 0 {
		text, tail = b[:i], b[i:]
	}
	text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf"))
	t := bytes.TrimLeft(text, " \t\r\n")
	if bytes.HasPrefix(t, []byte("# Disk DescriptorFile")) {
		for _, c := range tail {
			if c != 0 && c != '\t' && c != '\n' && c != '\r' && (c < 0x20 || c == 0x7f) {
				return false
			}
		}
		return true
	}
	// Without the header line, only clean text counts: a binary file
	// may hold "createType=" by chance.
	for _, c := range tail {
		if c != 0 {
			return false
		}
	}
	b = text
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if k, _, ok := bytes.Cut(line, []byte("=")); ok && strings.EqualFold(string(bytes.TrimSpace(k)), "createType") {
			return true
		}
	}
	return false
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

// parseDescriptor parses descriptor text. name is used in errors.
func parseDescriptor(name string, text []byte) (*Descriptor, error) {
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf"))
	d := &Descriptor{ParentCID: noCID, DDB: map[string]string{}}
	// Lines are slices of one copy of the text, and the extents are
	// counted before they are kept: a descriptor costs its size plus what
	// each extent holds, however short its lines.
	all := string(text)
	count := 0
	for rest := all; rest != ""; {
		var line string
		line, rest = nextLine(rest)
		if isExtentLine(line) {
			count++
		}
	}
	d.Extents = make([]ExtentLine, 0, count)
	rest := all
	for n := 0; rest != ""; n++ {
		var line string
		line, rest = nextLine(rest)
		if line == "" || line[0] == '#' {
			continue
		}
		if isExtentLine(line) {
			e, err := parseExtentLine(line)
			if err != nil {
				return nil, errf(name, errFormat, "descriptor line %d: %v", n+1, err)
			}
			d.Extents = append(d.Extents, e)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			// Unknown lines are ignored, as VMware does.
			continue
		}
		k = strings.TrimSpace(k)
		v = unquote(v)
		switch {
		case strings.EqualFold(k, "version"):
			d.Version = v
		case strings.EqualFold(k, "CID"):
			c, err := strconv.ParseUint(v, 16, 32)
			if err != nil {
				return nil, errf(name, errFormat, "descriptor line %d: bad CID %q", n+1, v)
			}
			d.CID, d.HasCID = uint32(c), true
		case strings.EqualFold(k, "parentCID"):
			c, err := strconv.ParseUint(v, 16, 32)
			if err != nil {
				return nil, errf(name, errFormat, "descriptor line %d: bad parentCID %q", n+1, v)
			}
			d.ParentCID = uint32(c)
		case strings.EqualFold(k, "createType"):
			d.CreateType = v
		case strings.EqualFold(k, "parentFileNameHint"):
			d.ParentFileNameHint = v
		case len(k) > 4 && strings.EqualFold(k[:4], "ddb."):
			d.DDB[k[4:]] = v
		}
	}
	return d, nil
}

// nextLine splits the first line, trimmed, from the text that follows it.
func nextLine(s string) (line, rest string) {
	line = s
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		line, rest = s[:i], s[i+1:]
	}
	return strings.TrimSpace(strings.TrimRight(line, "\r")), rest
}

// isExtentLine says whether a trimmed line starts with an access mode.
func isExtentLine(line string) bool {
	first := line
	if i := strings.IndexFunc(line, unicode.IsSpace); i >= 0 {
		first = line[:i]
	}
	return strings.EqualFold(first, "RW") || strings.EqualFold(first, "RDONLY") || strings.EqualFold(first, "NOACCESS")
}

// parseExtentLine parses `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
func parseExtentLine(line string) (ExtentLine, error) {
	var e ExtentLine
	rest := line
	next := func() string {
		rest = strings.TrimLeft(rest, " \t")
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			tok := rest
			rest = ""
			return tok
		}
		tok := rest[:i]
		rest = rest[i:]
		return tok
	}
	e.Access = strings.ToUpper(next())
	sec := next()
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n < 0 || n > maxSectors {
		return e, fmt.Errorf("bad extent size %q", sec)
	}
	e.Sectors = n
	e.Type = strings.ToUpper(next())
	if e.Type == "" {
		return e, fmt.Errorf("extent line without type")
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		if e.Type != "ZERO" {
			return e, fmt.Errorf("%s extent without file name", e.Type)
		}
		return e, nil
	}
	if rest[0] == '"' {
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return e, fmt.Errorf("unterminated file name")
		}
		e.File = rest[1 : 1+end]
		rest = strings.TrimSpace(rest[2+end:])
	} else {
		e.File = next()
		rest = strings.TrimSpace(rest)
	}
	if rest != "" {
		tok := strings.Fields(rest)[0]
		off, err := strconv.ParseInt(tok, 10, 64)
		if err != nil || off < 0 || off > maxSectors {
			return e, fmt.Errorf("bad extent offset %q", tok)
		}
		e.Offset = off
	}
	return e, nil
}

// maxSectors keeps byte offsets (sectors*512) inside int64.
const maxSectors = (1<<63 - 1) / 512
