package vsphere

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/vmware/govmomi/object"

	"github.com/vmfs/vmfs/internal/remote"
)

// VolumesDir is the root of the namespace the datastores' files are named
// in, as ESXi names them: /vmfs/volumes/<datastore>/<path>.
const VolumesDir = "/vmfs/volumes"

// LocalPath turns a datastore path "[ds] folder/file" into
// /vmfs/volumes/ds/folder/file.
func LocalPath(dsPath string) (string, error) {
	var p object.DatastorePath
	if !p.FromString(dsPath) || p.Datastore == "" {
		return "", fmt.Errorf("%q is not a datastore path ([datastore] folder/file)", dsPath)
	}
	rel := path.Clean("/" + p.Path)
	if strings.Contains(p.Datastore, "/") {
		return "", fmt.Errorf("%q: a datastore name holds no slash", dsPath)
	}
	return path.Join(VolumesDir, p.Datastore, rel), nil
}

// DatastorePath turns /vmfs/volumes/ds/folder/file into its datastore and
// the path in it.
func DatastorePath(p string) (ds, rel string, err error) {
	clean := path.Clean(p)
	rest, ok := strings.CutPrefix(clean, VolumesDir+"/")
	if !ok || !path.IsAbs(p) {
		return "", "", fmt.Errorf("%s: not under %s/<datastore>/", p, VolumesDir)
	}
	ds, rel, _ = strings.Cut(rest, "/")
	if ds == "" || rel == "" {
		return "", "", fmt.Errorf("%s: names no file in a datastore", p)
	}
	return ds, rel, nil
}

// Display names a path of the namespace as vSphere shows it:
// "[ds] folder/file".
func Display(p string) string {
	ds, rel, err := DatastorePath(p)
	if err != nil {
		return p
	}
	return "[" + ds + "] " + rel
}

// File is one datastore file, read by ranges.
type File struct {
	c    *Client
	name string // the namespace path
	ds   string
	rel  string
	size int64
	// data, when set, is the file's whole content, held here (a .vmx
	// vmfs rewrote to name a snapshot's frozen disks).
	data []byte
}

// Name is the file's path in the namespace.
func (f *File) Name() string { return f.name }

// Size is the file's length in bytes.
func (f *File) Size() int64 { return f.size }

// ReadRange reads len(p) bytes at off (fewer, with io.EOF, at the end of
// the file) with one ranged GET.
func (f *File) ReadRange(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", Display(f.name), off)
	}
	if off >= f.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), f.size-off))
	if f.data != nil {
		copy(p, f.data[off:off+int64(n)])
	} else if n > 0 {
		if err := f.c.get(ctx, f.ds, f.rel, off, f.size, p[:n]); err != nil {
			return 0, err
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// stat finds a file's size with a one-byte ranged GET, which also proves
// that the host serves ranges.
func (c *Client) stat(ctx context.Context, ds, rel string) (int64, error) {
	var size int64
	err := c.fileRequest(ctx, ds, rel, "bytes=0-0", func(resp *http.Response) error {
		switch resp.StatusCode {
		case http.StatusPartialContent:
			cr, err := remote.ParseContentRange(resp.Header.Get("Content-Range"))
			if err != nil || cr.First != 0 || cr.Size < 0 {
				return fmt.Errorf("bad answer to a read of byte 0: Content-Range %q", resp.Header.Get("Content-Range"))
			}
			size = cr.Size
			return nil
		case http.StatusRequestedRangeNotSatisfiable:
			// An empty file has no byte 0.
			if cr, err := remote.ParseContentRange(resp.Header.Get("Content-Range")); err == nil && cr.Size == 0 {
				size = 0
				return nil
			}
			return fmt.Errorf("HTTP %s to a read of byte 0", resp.Status)
		case http.StatusOK:
			if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				return fmt.Errorf("not a file (a folder?)")
			}
			return remote.ErrNoRanges
		}
		return statusError(resp)
	})
	return size, err
}

// get fills p from the file at off; size is the file's size when it was
// opened.
func (c *Client) get(ctx context.Context, ds, rel string, off, size int64, p []byte) error {
	want := fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1)
	return c.fileRequest(ctx, ds, rel, want, func(resp *http.Response) error {
		switch resp.StatusCode {
		case http.StatusPartialContent:
		case http.StatusOK:
			return remote.ErrNoRanges
		default:
			return statusError(resp)
		}
		cr, err := remote.ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return err
		}
		if cr.Size != size {
			return fmt.Errorf("the file changed size (%d bytes, now %d) while being read", size, cr.Size)
		}
		if cr.First != off || cr.Last != off+int64(len(p))-1 {
			return fmt.Errorf("asked for %s, got bytes %d-%d", want, cr.First, cr.Last)
		}
		if _, err := io.ReadFull(resp.Body, p); err != nil {
			return fmt.Errorf("reading %d bytes at %d: %w", len(p), off, remote.Transient(err))
		}
		return nil
	})
}

// fileRequest sends one GET with a Range header to the datastore file API
// and hands the answer to f; a 401 (the session expired) logs in again
// and retries once.
func (c *Client) fileRequest(ctx context.Context, ds, rel, rng string, f func(*http.Response) error) error {
	where := "[" + ds + "] " + rel
	for attempt := 0; ; attempt++ {
		gen := c.generation()
		u := object.NewDatastoreURL(*c.vim.URL(), c.dcPath, ds, rel)
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
		if err != nil {
			cancel()
			return fmt.Errorf("%s: %w", where, err)
		}
		req.Header.Set("Range", rng)
		resp, err := c.vim.Client.Client.Do(req)
		if err != nil {
			cancel()
			return fmt.Errorf("%s: %w", where, netError(ctx, err))
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			drain(resp)
			cancel()
			if err := c.relogin(ctx, gen); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			continue
		}
		err = f(resp)
		drain(resp)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		return nil
	}
}

// drain reads what is left of a small answer, so that its connection is
// kept alive, and closes it.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
}

func statusError(resp *http.Response) error {
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("no such file on the datastore: %w", fs.ErrNotExist)
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("HTTP %s: the user may not read the datastore: %w", resp.Status, fs.ErrPermission)
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		// ESXi answers 503 when it throttles.
		return remote.Transient(fmt.Errorf("HTTP %s", resp.Status))
	}
	return fmt.Errorf("HTTP %s", resp.Status)
}

// netError marks a failure of the transport transient (the host went
// away, a reset, a timeout): the reader retries it. A refused
// certificate or a cancelled read is not.
func netError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var te *thumbprintError
	var cv *tls.CertificateVerificationError
	if ctx.Err() != nil || errors.As(err, &te) || errors.As(err, &cv) {
		return err
	}
	return remote.Transient(err)
}

// Store serves the files of a datacenter's datastores, by their paths
// under /vmfs/volumes.
type Store struct {
	c *Client
	// held are files whose content vmfs holds itself, by path.
	held map[string][]byte
}

// Store is the client's datastore files.
func (c *Client) Store() *Store { return &Store{c: c, held: map[string][]byte{}} }

// Open opens a file of the namespace.
func (s *Store) Open(ctx context.Context, p string) (*File, error) {
	ds, rel, err := DatastorePath(p)
	if err != nil {
		return nil, err
	}
	name := path.Join(VolumesDir, ds, rel)
	if b, ok := s.held[name]; ok {
		return &File{c: s.c, name: name, ds: ds, rel: rel, size: int64(len(b)), data: b}, nil
	}
	size, err := s.c.stat(ctx, ds, rel)
	if err != nil {
		return nil, err
	}
	return &File{c: s.c, name: name, ds: ds, rel: rel, size: size}, nil
}

// Stat is the size of a file of the namespace.
func (s *Store) Stat(ctx context.Context, p string) (int64, error) {
	f, err := s.Open(ctx, p)
	if err != nil {
		return 0, err
	}
	return f.Size(), nil
}

// Display names p as vSphere shows it.
func (s *Store) Display(p string) string { return Display(p) }

// hold makes the store serve b as the file p.
func (s *Store) hold(p string, b []byte) { s.held[path.Clean(p)] = b }
