package ovf

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
)

// Limits of the OVA reader.
const (
	maxMembers     = 10000
	maxManifest    = 1 << 20
	hashBufferSize = 1 << 20
)

// Member is a file stored in an OVA: its data is Size bytes at Offset of
// the archive.
type Member struct {
	Name   string
	Offset int64
	Size   int64
}

// Index lists the regular files of the tar archive r of size size, with
// the offsets of their data, without reading the data. It refuses members
// that are not plain contiguous files (sparse), names that leave the
// archive (absolute or ../), duplicates, and sizes past the end.
func Index(name string, r io.ReaderAt, size int64) ([]Member, error) {
	var magic [6]byte
	if n, _ := r.ReadAt(magic[:], 0); n == len(magic) {
		for _, k := range []struct{ magic, kind string }{{"\x1f\x8b", "gzip"}, {"\xfd7zXZ\x00", "xz"}, {"PK\x03\x04", "zip"}, {"BZh", "bzip2"}, {"\x28\xb5\x2f\xfd", "zstd"}} {
			if bytes.HasPrefix(magic[:], []byte(k.magic)) {
				return nil, ovaErr(name, "a %s-compressed archive cannot be read in place: %s OVAs are not supported (unpack it and name the .ovf): %w", k.kind, k.kind, layouts.ErrUnsupported)
			}
		}
	}
	cr := &countingReader{r: io.NewSectionReader(r, 0, size)}
	tr := tar.NewReader(cr)
	var out []Member
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, ovaErr(name, "tar header at offset %d: %v: %w", cr.pos, err, layouts.ErrFormat)
		}
		if len(out) >= maxMembers {
			return nil, ovaErr(name, "more than %d members", maxMembers)
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
		case tar.TypeDir:
			continue
		case tar.TypeGNUSparse:
			return nil, ovaErr(name, "member %q is a sparse tar entry: not supported: %w", h.Name, layouts.ErrUnsupported)
		case tar.TypeSymlink, tar.TypeLink:
			return nil, ovaErr(name, "member %q is a link: not supported: %w", h.Name, layouts.ErrUnsupported)
		default:
			continue
		}
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse") {
				return nil, ovaErr(name, "member %q is a sparse tar entry: not supported: %w", h.Name, layouts.ErrUnsupported)
			}
		}
		n, err := memberName(h.Name)
		if err != nil {
			return nil, ovaErr(name, "%v", err)
		}
		if seen[n] {
			return nil, ovaErr(name, "member %q appears twice", n)
		}
		seen[n] = true
		off := cr.pos
		if h.Size < 0 || off > size || h.Size > size-off {
			return nil, ovaErr(name, "member %q: %d bytes at offset %d run past the end of the archive (%d bytes): %w", n, h.Size, off, size, layouts.ErrFormat)
		}
		out = append(out, Member{Name: n, Offset: off, Size: h.Size})
	}
	// Sequential headers cannot overlap, but check the promise anyway.
	s := append([]Member(nil), out...)
	sort.Slice(s, func(i, j int) bool { return s[i].Offset < s[j].Offset })
	for i := 1; i < len(s); i++ {
		if s[i-1].Offset+s[i-1].Size > s[i].Offset {
			return nil, ovaErr(name, "members %q and %q overlap: %w", s[i-1].Name, s[i].Name, layouts.ErrFormat)
		}
	}
	return out, nil
}

func ovaErr(name, format string, args ...any) error {
	return fmt.Errorf("ova: %s: %w", filepath.Base(name), fmt.Errorf(format, args...))
}

// memberName cleans a tar member name and refuses one that leaves the
// archive.
func memberName(n string) (string, error) {
	if n == "" || strings.HasPrefix(n, "/") || strings.ContainsRune(n, 0) || strings.Contains(n, "\\") {
		return "", fmt.Errorf("member name %q is not a relative path", n)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("member name %q leaves the archive", n)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", fmt.Errorf("member name %q is not a file", n)
	}
	return c, nil
}

// countingReader knows its position, so that the offset of a member's data
// is where the tar reader stands after its header.
type countingReader struct {
	r   *io.SectionReader
	pos int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.pos += int64(n)
	return n, err
}

func (c *countingReader) Seek(off int64, whence int) (int64, error) {
	p, err := c.r.Seek(off, whence)
	if err == nil {
		c.pos = p
	}
	return p, err
}

// sectionFile is a member served from the archive; closing it closes its
// own handle on the archive.
type sectionFile struct {
	layouts.SectionFile
	f io.Closer
}

// readerAtCloser is one handle on an archive.
type readerAtCloser interface {
	io.ReaderAt
	io.Closer
}

func (s *sectionFile) Close() error { return s.f.Close() }

// ParseOVA reads the .ova at p in place: the descriptor is its first .ovf
// member, disks are sections of the archive (never extracted), and the
// manifest is verified for every member it lists, disks included (hashing
// reads each disk once, streamed).
func ParseOVA(p string) (*translate.Machine, error) { return ParseOVAIn(p, nil) }

// ParseOVAIn is ParseOVA among env's files. A remote archive is read in
// place through env.Remote, each disk with a handle of its own; its
// manifest is verified for every member but the disks, whose hashing
// would read the whole archive over the network (a warning says so).
func ParseOVAIn(p string, env *layouts.Env) (*translate.Machine, error) {
	if env.IsRemote() {
		f, err := env.Remote.Open(p)
		if err != nil {
			return nil, fmt.Errorf("ova: %w", err)
		}
		defer f.Close()
		reopen := func() (readerAtCloser, error) { return env.Remote.Open(p) }
		return parseOVAOpts(p, f, f.Size(), reopen, true, true)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("ova: %w", err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("ova: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("ova: %w", err)
	}
	if st.IsDir() {
		return nil, ovaErr(abs, "is a directory")
	}
	return parseOVA(abs, f, st.Size(), func() (readerAtCloser, error) { return os.Open(abs) }, true)
}

// parseOVA is ParseOVA on any reader; reopen gives each disk its own
// handle (nil: disks are not openable, as in fuzzing).
func parseOVA(abs string, r io.ReaderAt, size int64, reopen func() (readerAtCloser, error), verify bool) (*translate.Machine, error) {
	return parseOVAOpts(abs, r, size, reopen, verify, false)
}

// parseOVAOpts is parseOVA; remote leaves the disks out of the manifest's
// check.
func parseOVAOpts(abs string, r io.ReaderAt, size int64, reopen func() (readerAtCloser, error), verify, remote bool) (*translate.Machine, error) {
	members, err := Index(abs, r, size)
	if err != nil {
		return nil, err
	}
	byName := map[string]Member{}
	var ovfM, mfM *Member
	for i := range members {
		mb := members[i]
		byName[mb.Name] = mb
		switch strings.ToLower(path.Ext(mb.Name)) {
		case ".ovf":
			if ovfM == nil {
				ovfM = &members[i]
			}
		}
	}
	if ovfM == nil {
		return nil, ovaErr(abs, "no .ovf descriptor in the archive")
	}
	if ovfM.Size > MaxSize {
		return nil, ovaErr(abs, "descriptor %s: %d bytes is too large (limit %d)", ovfM.Name, ovfM.Size, MaxSize)
	}
	dir := path.Dir(ovfM.Name)
	mfName := strings.TrimSuffix(ovfM.Name, path.Ext(ovfM.Name)) + ".mf"
	if mb, ok := byName[mfName]; ok {
		mfM = &mb
	} else {
		for i := range members {
			if strings.EqualFold(path.Ext(members[i].Name), ".mf") && path.Dir(members[i].Name) == dir {
				mfM = &members[i]
				break
			}
		}
	}
	b := make([]byte, ovfM.Size)
	if _, err := r.ReadAt(b, ovfM.Offset); err != nil {
		return nil, ovaErr(abs, "reading %s: %v", ovfM.Name, err)
	}
	res := func(href string) (string, func() (translate.File, error), bool) {
		rel, err := cleanHref(href)
		if err != nil {
			return "", nil, false
		}
		full := path.Join(dir, rel)
		mb, ok := byName[full]
		if !ok {
			return "", nil, false
		}
		pth := abs + "/" + full
		var open func() (translate.File, error)
		if reopen != nil {
			open = func() (translate.File, error) {
				f, err := reopen()
				if err != nil {
					return nil, fmt.Errorf("ova: %w", err)
				}
				return &sectionFile{SectionFile: layouts.SectionFile{R: f, Base: mb.Offset, N: mb.Size, Path: pth}, f: f}, nil
			}
		}
		return pth, open, true
	}
	m, err := parse(abs+"/"+ovfM.Name, b, res, true)
	if err != nil {
		if strings.Contains(err.Error(), "is missing") {
			if chunked := chunkedMembers(members); chunked != "" {
				return nil, fmt.Errorf("%w (the archive holds chunked parts such as %s: chunked disk references are not supported)", err, chunked)
			}
		}
		return nil, err
	}
	m.Source, m.SourceFormat = abs, "ova"
	if mfM == nil {
		m.Warn(WarnNoManifest, "%s has no manifest: its members are not verified", filepath.Base(abs))
		return m, nil
	}
	if !verify {
		return m, nil
	}
	if mfM.Size > maxManifest {
		return nil, ovaErr(abs, "manifest %s: %d bytes is too large", mfM.Name, mfM.Size)
	}
	mb := make([]byte, mfM.Size)
	if _, err := r.ReadAt(mb, mfM.Offset); err != nil {
		return nil, ovaErr(abs, "reading %s: %v", mfM.Name, err)
	}
	entries, warns := ParseManifest(mb)
	for _, w := range warns {
		m.Warn(WarnManifestLine, "%s: %s", mfM.Name, w)
	}
	var unverified []string
	defer func() {
		if len(unverified) > 0 {
			m.Warn(WarnManifestRemote, "%s is remote: the manifest's digests of %s are not checked, as that would read them whole over the network (the other members are)", path.Base(abs), strings.Join(unverified, ", "))
		}
	}()
	for _, e := range entries {
		rel, err := cleanHref(e.File)
		if err != nil {
			return nil, ovaErr(abs, "manifest %s: %v", mfM.Name, err)
		}
		full := path.Join(path.Dir(mfM.Name), rel)
		mem, ok := byName[full]
		if !ok {
			return nil, ovaErr(abs, "manifest %s lists %s, which the archive lacks", mfM.Name, e.File)
		}
		if remote && memberIsDisk(m, abs+"/"+full) {
			unverified = append(unverified, mem.Name)
			continue
		}
		if err := checkHash(io.NewSectionReader(r, mem.Offset, mem.Size), e); err != nil {
			return nil, ovaErr(abs, "member %s: %v", mem.Name, err)
		}
	}
	return m, nil
}

// chunkedMembers names a member that looks like part of a chunked file
// (name.000000000).
func chunkedMembers(ms []Member) string {
	for _, mb := range ms {
		ext := path.Ext(mb.Name)
		if len(ext) == 10 && strings.Trim(ext[1:], "0123456789") == "" {
			return mb.Name
		}
	}
	return ""
}

// ManifestEntry is one line of a manifest: the digest of File.
type ManifestEntry struct {
	Algo   string // "SHA1", "SHA256", "SHA512"
	File   string
	Digest []byte
}

// ParseManifest reads the lines `ALGO(file)= hex` of an .mf; lines it
// cannot read come back as warnings (as other OVF readers do, a bad line
// does not fail the import; a bad digest does).
func ParseManifest(b []byte) ([]ManifestEntry, []string) {
	var out []ManifestEntry
	var warns []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), maxManifest)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		open := strings.IndexByte(s, '(')
		closeEq := strings.LastIndex(s, ")=")
		if open <= 0 || closeEq < open {
			warns = append(warns, fmt.Sprintf("line %d is not ALGO(file)= digest: ignored", line))
			continue
		}
		algo := strings.ToUpper(s[:open])
		file := s[open+1 : closeEq]
		d, err := hex.DecodeString(strings.TrimSpace(s[closeEq+2:]))
		if err != nil || newHash(algo) == nil || len(d) != newHash(algo).Size() || file == "" {
			warns = append(warns, fmt.Sprintf("line %d (%s of %s) is not a readable digest: ignored", line, algo, file))
			continue
		}
		out = append(out, ManifestEntry{Algo: algo, File: file, Digest: d})
	}
	return out, warns
}

func newHash(algo string) hash.Hash {
	switch algo {
	case "SHA1":
		return sha1.New()
	case "SHA256":
		return sha256.New()
	case "SHA512":
		return sha512.New()
	}
	return nil
}

// checkHash streams r through the entry's hash.
func checkHash(r io.Reader, e ManifestEntry) error {
	h := newHash(e.Algo)
	buf := make([]byte, hashBufferSize)
	if _, err := io.CopyBuffer(h, r, buf); err != nil {
		return fmt.Errorf("reading for the manifest: %v", err)
	}
	if !bytes.Equal(h.Sum(nil), e.Digest) {
		return fmt.Errorf("%s digest does not match the manifest: %w", e.Algo, layouts.ErrFormat)
	}
	return nil
}

// openRegular opens p, which must be a regular file: a FIFO or a device
// that a manifest lists (through a symlink, say) would be read forever, or
// be a host disk. It is checked before it is opened, and once open.
func openRegular(p string) (*os.File, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", p, layouts.ErrRefused)
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if ost, err := f.Stat(); err != nil || !os.SameFile(st, ost) {
		f.Close()
		return nil, fmt.Errorf("%s changed while being opened: %w", p, layouts.ErrRefused)
	}
	return f, nil
}

// verifyDirManifest checks the manifest next to an .ovf.
func verifyDirManifest(ovfPath, mfPath string, mb []byte, m *translate.Machine) error {
	if len(mb) > maxManifest {
		return errf(ovfPath, "manifest %s is too large", filepath.Base(mfPath))
	}
	entries, warns := ParseManifest(mb)
	for _, w := range warns {
		m.Warn(WarnManifestLine, "%s: %s", filepath.Base(mfPath), w)
	}
	dir := filepath.Dir(mfPath)
	for _, e := range entries {
		rel, err := cleanHref(e.File)
		if err != nil {
			return errf(ovfPath, "manifest %s: %v", filepath.Base(mfPath), err)
		}
		full := filepath.Join(dir, filepath.FromSlash(rel))
		f, err := openRegular(full)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && isDisk(m, full) {
				// A missing disk is translate.CheckDisks's to refuse
				// (inspect lists it).
				continue
			}
			if errors.Is(err, os.ErrNotExist) {
				return errf(ovfPath, "manifest %s lists %s, which is missing", filepath.Base(mfPath), e.File)
			}
			return errf(ovfPath, "manifest %s: %v", filepath.Base(mfPath), err)
		}
		err = checkHash(f, e)
		f.Close()
		if err != nil {
			return errf(ovfPath, "%s: %v", e.File, err)
		}
	}
	return nil
}

// memberIsDisk says whether p is the path of one of m's disks.
func memberIsDisk(m *translate.Machine, p string) bool {
	for _, d := range m.Disks {
		if d.Path == p {
			return true
		}
	}
	return false
}

// isDisk says whether p is the file of one of m's disks.
func isDisk(m *translate.Machine, p string) bool {
	for _, d := range m.Disks {
		if d.Open == nil && filepath.Clean(d.Path) == filepath.Clean(p) {
			return true
		}
	}
	return false
}

// verifyRemoteManifest checks the manifest next to a remote .ovf: every
// file it lists but the disks (see ParseOVAIn), read through env.
func verifyRemoteManifest(ovfPath, mfPath string, mb []byte, m *translate.Machine, env *layouts.Env) error {
	entries, warns := ParseManifest(mb)
	for _, w := range warns {
		m.Warn(WarnManifestLine, "%s: %s", filepath.Base(mfPath), w)
	}
	var unverified []string
	dir := path.Dir(mfPath)
	for _, e := range entries {
		rel, err := cleanHref(e.File)
		if err != nil {
			return errf(ovfPath, "manifest %s: %v", filepath.Base(mfPath), err)
		}
		full := path.Join(dir, rel)
		if isDisk(m, full) {
			unverified = append(unverified, rel)
			continue
		}
		f, err := env.Remote.Open(full)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return errf(ovfPath, "manifest %s lists %s, which is missing", filepath.Base(mfPath), e.File)
			}
			return errf(ovfPath, "manifest %s: %v", filepath.Base(mfPath), err)
		}
		err = checkHash(io.NewSectionReader(f, 0, f.Size()), e)
		f.Close()
		if err != nil {
			return errf(ovfPath, "%s: %v", e.File, err)
		}
	}
	if len(unverified) > 0 {
		m.Warn(WarnManifestRemote, "%s is remote: the manifest's digests of %s are not checked, as that would read them whole over the network (the other files are)", path.Base(ovfPath), strings.Join(unverified, ", "))
	}
	return nil
}
