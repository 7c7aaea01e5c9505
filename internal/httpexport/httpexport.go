// Package httpexport serves the files of views over HTTP(S): each VM's
// descriptors and disk images under /<vm>/<file>, with Range and HEAD
// (what CDI's http source, qemu's curl driver and curl read), a listing
// at / and /<vm>/, and bearer-token auth. TLS, and client certificates,
// are the listener's: Serve takes the tls.Config.
package httpexport

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmfs/vmfs/internal/servestat"
	"github.com/vmfs/vmfs/internal/viewfile"
)

// VM is one view served under /Name/.
type VM struct {
	Name  string
	Files []viewfile.File
}

// Handler answers GET and HEAD for the files of VMs.
type Handler struct {
	vms   map[string]map[string]viewfile.File
	names []string
	// token's hash, nil: no token asked.
	token    *[sha256.Size]byte
	stats    *servestat.Counters
	log      *slog.Logger
	modified time.Time
}

// Options of a Handler.
type Options struct {
	// Token, when not empty, must come with every request: as
	// "Authorization: Bearer TOKEN", or as the password of basic auth
	// (any user name, blanks around the password ignored; what qemu's
	// curl driver and CDI's secretRef send).
	Token string
	// Stats, when not nil, counts requests, bytes and errors.
	Stats *servestat.Counters
	Log   *slog.Logger
	// Modified is the files' Last-Modified (zero: none sent).
	Modified time.Time
}

// New makes the handler of vms. Two VMs of one name, or two files of one
// name in a VM, are an error.
func New(vms []VM, o Options) (*Handler, error) {
	h := &Handler{vms: map[string]map[string]viewfile.File{}, stats: o.Stats, log: o.Log, modified: o.Modified}
	if h.stats == nil {
		h.stats = &servestat.Counters{}
	}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Token != "" {
		sum := sha256.Sum256([]byte(o.Token))
		h.token = &sum
	}
	for _, vm := range vms {
		if !validName(vm.Name) {
			return nil, fmt.Errorf("https export: VM name %q cannot be a path segment", vm.Name)
		}
		if _, ok := h.vms[vm.Name]; ok {
			return nil, fmt.Errorf("https export: two VMs are named %q", vm.Name)
		}
		files := map[string]viewfile.File{}
		for _, f := range vm.Files {
			if !validName(f.Name) {
				return nil, fmt.Errorf("https export: %s: file name %q cannot be a path segment", vm.Name, f.Name)
			}
			if _, ok := files[f.Name]; ok {
				return nil, fmt.Errorf("https export: %s: two files are named %q", vm.Name, f.Name)
			}
			files[f.Name] = f
		}
		h.vms[vm.Name] = files
		h.names = append(h.names, vm.Name)
	}
	sort.Strings(h.names)
	return h, nil
}

func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// authorized says whether r carries the token (always, when none is
// asked). Both sides are hashed first, so the comparison takes the same
// time whatever the length of what was sent.
func (h *Handler) authorized(r *http.Request) bool {
	if h.token == nil {
		return true
	}
	var sent string
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		sent = strings.TrimSpace(a[7:])
	} else if _, pw, ok := r.BasicAuth(); ok {
		// A password read from a file (qemu's secret objects) may
		// keep the file's newline.
		sent = strings.TrimSpace(pw)
	} else {
		return false
	}
	sum := sha256.Sum256([]byte(sent))
	return subtle.ConstantTimeCompare(sum[:], h.token[:]) == 1
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.stats.Requests.Add(1)
	cw := &countingWriter{ResponseWriter: w, n: &h.stats.BytesRead}
	w = cw
	if !h.authorized(r) {
		h.stats.Refused.Add(1)
		h.log.Info("https: unauthorized", "remote", r.RemoteAddr, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="vmfs", Basic realm="vmfs"`)
		http.Error(w, "401 unauthorized: a bearer token is required", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed: the export is read-only", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p == "/" {
		h.list(w, r, h.names, "/")
		return
	}
	vm, file, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	files, ok := h.vms[vm]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if file == "" {
		if !strings.HasSuffix(p, "/") {
			http.Redirect(w, r, p+"/", http.StatusMovedPermanently)
			return
		}
		var names []string
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		h.list(w, r, names, "")
		return
	}
	f, ok := files[file]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentType(f))
	rd := &errReader{r: f.Content}
	http.ServeContent(w, r, f.Name, h.modified, io.NewSectionReader(rd, 0, f.Content.Size()))
	if rd.err != nil {
		h.stats.Errors.Add(1)
		h.log.Warn("https: read failed", "path", p, "err", rd.err)
	}
}

// contentType is f's: the same on every host (not the system's MIME
// table), so that clients see one answer.
func contentType(f viewfile.File) string {
	switch {
	case f.Disk:
		return "application/octet-stream"
	case strings.EqualFold(path.Ext(f.Name), ".xml"), strings.EqualFold(path.Ext(f.Name), ".ovf"):
		return "application/xml"
	}
	return "text/plain; charset=utf-8"
}

// list writes names, one a line, each followed by suffix.
func (h *Handler) list(w http.ResponseWriter, r *http.Request, names []string, suffix string) {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n + suffix + "\n")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(b.String()))
}

// errReader keeps the first read error but the end of the file.
type errReader struct {
	r   io.ReaderAt
	err error
}

func (e *errReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := e.r.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// countingWriter adds the body bytes written to n.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	k, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(k))
	return k, err
}

// ServeOptions tune Serve.
type ServeOptions struct {
	// TLS, when not nil, is required; nil serves plain HTTP.
	TLS *tls.Config
	// MaxConns bounds the connections open at once (0: 64); more are
	// closed as soon as accepted, and counted as refused.
	MaxConns int
	Stats    *servestat.Counters
	Log      *slog.Logger
}

// Serve serves h on ln until ctx is done, then closes every connection
// and returns nil.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, o ServeOptions) error {
	stats, log, cfg := o.Stats, o.Log, o.TLS
	if stats == nil {
		stats = &servestat.Counters{}
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	maxConns := o.MaxConns
	if maxConns <= 0 {
		maxConns = 64
	}
	ln = &limitListener{Listener: ln, slots: make(chan struct{}, maxConns), stats: stats, log: log}
	var connMu sync.Mutex
	open := map[net.Conn]func(){}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState: func(c net.Conn, s http.ConnState) {
			// ConnState runs on one goroutine per connection, in order,
			// but for different connections at once: open is guarded by
			// connMu.
			connMu.Lock()
			defer connMu.Unlock()
			switch s {
			case http.StateNew:
				open[c] = stats.Open()
			case http.StateClosed, http.StateHijacked:
				if done, ok := open[c]; ok {
					done()
					delete(open, c)
				}
			}
		},
	}
	if cfg != nil {
		srv.TLSConfig = cfg.Clone()
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	err := srv.Serve(ln)
	if ctx.Err() != nil && errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("https: serving on %s: %w", ln.Addr(), err)
}

// limitListener closes the connections past its slots as soon as they
// are accepted.
type limitListener struct {
	net.Listener
	slots chan struct{}
	stats *servestat.Counters
	log   *slog.Logger
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &slotConn{Conn: c, free: func() { <-l.slots }}, nil
		default:
			l.stats.Refused.Add(1)
			l.log.Warn("https: too many connections, closing", "remote", c.RemoteAddr().String(), "max", cap(l.slots))
			c.Close()
		}
	}
}

// slotConn frees its slot once, on the first Close.
type slotConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}
