package session

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/vmfs/vmfs/internal/remote"
	"github.com/vmfs/vmfs/internal/vsphere"
	"github.com/vmfs/vmfs/layouts"
)

// RemoteOpener opens the remote source named by a URL: the store its
// files are in, and the path in that store of the file the URL names (a
// descriptor or a disk). A store that is an io.Closer is closed with the
// session.
type RemoteOpener func(ctx context.Context, url string, o remote.Options) (remote.Store, string, error)

// remoteOpener is the opener of a URL scheme: the one table of remote
// source kinds (vsphere:// is one more case here).
func remoteOpener(scheme string) (RemoteOpener, bool) {
	switch scheme {
	case "https", "http":
		return remote.OpenHTTPS, true
	case vsphere.Scheme:
		return vsphere.OpenRemote, true
	}
	return nil, false
}

// remoteSchemes names the schemes remoteOpener knows, for errors.
const remoteSchemes = "https:// and vsphere://"

// URLScheme returns the scheme of src when src is written as a URL
// (scheme://...), whether or not vmfs reads that scheme.
func URLScheme(src string) (string, bool) {
	i := strings.Index(src, "://")
	if i <= 0 {
		return "", false
	}
	s := src[:i]
	for j, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')
		if !ok {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// IsRemote says whether src names a remote source (a URL).
func IsRemote(src string) bool {
	_, ok := URLScheme(src)
	return ok
}

// remoteSource is an opened remote source.
type remoteSource struct {
	store  remote.Store
	path   string // of the source in the store
	stats  *remote.Stats
	cancel context.CancelFunc
}

// openRemote opens the store of the URL src and sets env to read from
// it; nil, nil for a local src.
func openRemote(src string, o remote.Options, env *layouts.Env) (*remoteSource, error) {
	scheme, ok := URLScheme(src)
	if !ok {
		return nil, nil
	}
	open, ok := remoteOpener(scheme)
	if !ok {
		return nil, fmt.Errorf("%s: vmfs does not read %s:// sources (it reads local files and %s)", redactURL(src), scheme, remoteSchemes)
	}
	ctx, cancel := context.WithCancel(context.Background())
	store, p, err := open(ctx, src, o)
	if err != nil {
		cancel()
		return nil, err
	}
	r := &remoteSource{store: store, path: p, stats: &remote.Stats{}, cancel: cancel}
	env.Remote = remote.FS(ctx, store, remote.CacheOptions{
		CacheSize: o.CacheSize,
		Limiter:   remote.NewLimiter(o.InFlight),
		Stats:     r.stats,
		Logger:    o.Logger,
	})
	return r, nil
}

// close ends the remote source's requests and closes its store.
func (r *remoteSource) close() error {
	if r == nil {
		return nil
	}
	r.cancel()
	if c, ok := r.store.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// wrap names the remote source in err, whose paths are the store's.
func (r *remoteSource) wrap(err error) error {
	if r == nil {
		return err
	}
	name := r.store.Display(r.path)
	if strings.Contains(err.Error(), name) {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// display names the files of a remote source's inspection by their
// URLs, as the user knows them (the parsers saw the store's paths).
func (r *remoteSource) display(in *Inspection) {
	if r == nil {
		return
	}
	show := func(p string) string {
		if p == "" || !strings.HasPrefix(p, "/") {
			return p
		}
		return r.store.Display(p)
	}
	m := in.Machine
	m.Source = show(m.Source)
	for i := range m.Disks {
		m.Disks[i].Path = show(m.Disks[i].Path)
	}
	for i := range m.CDROMs {
		m.CDROMs[i].Path = show(m.CDROMs[i].Path)
	}
	for i := range in.Missing {
		in.Missing[i].Path = show(in.Missing[i].Path)
	}
	for i := range in.Disks {
		in.Disks[i].Path = show(in.Disks[i].Path)
		for j := range in.Disks[i].Chain {
			in.Disks[i].Chain[j].File = show(in.Disks[i].Chain[j].File)
		}
	}
}

// redactURL is src without the password of its user part.
func redactURL(src string) string {
	i := strings.Index(src, "://")
	at := strings.LastIndex(src, "@")
	if i < 0 || at < i {
		return src
	}
	user := src[i+3 : at]
	if u, _, ok := strings.Cut(user, ":"); ok {
		return src[:i+3] + u + src[at:]
	}
	return src
}

// Remote is the session's remote source, when it has one.
type Remote struct {
	// Name is the source as shown: its URL, without credentials.
	Name  string
	Stats *remote.Stats
}

// Remote returns the session's remote source; ok is false for a local
// source.
func (s *Session) Remote() (Remote, bool) {
	if s.remote == nil {
		return Remote{}, false
	}
	return Remote{Name: s.remote.store.Display(s.remote.path), Stats: s.remote.stats}, true
}
