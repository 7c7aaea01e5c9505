package remote

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrNoRanges: the server does not answer Range requests with 206.
var ErrNoRanges = errors.New("server does not support range requests; vmfs reads in place and will not download the whole file")

// ParseURL checks an https:// (or, with insecure, http://) source URL and
// splits it into the server's base URL and the file's path on it.
func ParseURL(raw string, insecure bool) (base *url.URL, p string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("%s: not a URL: %w", redact(raw), err)
	}
	shown := Redact(u)
	switch u.Scheme {
	case "https":
	case "http":
		if !insecure {
			return nil, "", fmt.Errorf("%s: plain http:// sends everything in clear and cannot be verified: use https://, or pass --insecure to read it anyway", shown)
		}
	default:
		return nil, "", fmt.Errorf("%s: not an http(s) URL", shown)
	}
	if u.Host == "" {
		return nil, "", fmt.Errorf("%s: no host", shown)
	}
	if u.User != nil {
		return nil, "", fmt.Errorf("%s: credentials in the URL are not accepted (they would show in ps and in status)", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, "", fmt.Errorf("%s: a query or fragment cannot be part of a file's path", shown)
	}
	p = u.Path
	if p == "" || strings.HasSuffix(p, "/") {
		return nil, "", fmt.Errorf("%s: names a folder, not a file", shown)
	}
	if err := CleanPath(p); err != nil {
		return nil, "", fmt.Errorf("%s: %w", shown, err)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, p, nil
}

// Redact is u without its password, for errors and status.
func Redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

func redact(raw string) string {
	if i := strings.Index(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			return raw[:j+3] + "…" + raw[i:]
		}
	}
	return raw
}

// ParseThumbprint reads a SHA-256 fingerprint: 64 hex digits, with or
// without colons between the bytes.
func ParseThumbprint(s string) ([]byte, error) {
	h := strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("thumbprint %q is not a SHA-256 fingerprint (64 hex digits, colons allowed)", s)
	}
	return b, nil
}

// TLSConfig is the TLS configuration o asks for: the system roots by
// default, the pinned leaf certificate with a Thumbprint, no check with
// Insecure (a warning is logged).
func TLSConfig(o Options, host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case o.Thumbprint != "":
		pin, err := ParseThumbprint(o.Thumbprint)
		if err != nil {
			return nil, err
		}
		// The chain of a pinned (often self-signed) host is not checked:
		// the pin is.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%s: no certificate", host)
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if !equalBytes(got[:], pin) {
				return &pinError{host: host, got: colonHex(got[:])}
			}
			return nil
		}
	case o.Insecure:
		cfg.InsecureSkipVerify = true
		if o.Logger != nil {
			o.Logger.Warn("TLS verification is off (--insecure): the server is not authenticated", "host", host)
		}
	}
	return cfg, nil
}

func equalBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := range a {
		v |= a[i] ^ b[i]
	}
	return v == 0
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// HTTPStore is the files of one web server, read by Range requests over
// keep-alive connections.
type HTTPStore struct {
	base   *url.URL
	client *http.Client
	// Limiter and Stats are shared by the readers of this store's files.
	Limiter *Limiter
	Stats   *Stats
}

// NewHTTPStore is the server at base (scheme://host[:port]) under o.
func NewHTTPStore(base *url.URL, o Options) (*HTTPStore, error) {
	cfg, err := TLSConfig(o, base.Host)
	if err != nil {
		return nil, err
	}
	n := o.InFlight
	if n < 1 {
		n = DefaultInFlight
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       cfg,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   n,
		MaxConnsPerHost:       n,
		IdleConnTimeout:       90 * time.Second,
		// A range of the file as stored, never a re-encoded one.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	return &HTTPStore{base: base, client: &http.Client{Transport: tr}, Limiter: NewLimiter(n), Stats: &Stats{}}, nil
}

// OpenHTTPS opens the https:// URL raw: its store and the file's path.
func OpenHTTPS(ctx context.Context, raw string, o Options) (Store, string, error) {
	base, p, err := ParseURL(raw, o.Insecure)
	if err != nil {
		return nil, "", err
	}
	s, err := NewHTTPStore(base, o)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", redact(raw), err)
	}
	return s, p, nil
}

func (s *HTTPStore) url(p string) string {
	u := *s.base
	u.Path = p
	return u.String()
}

// Display is the file's URL.
func (s *HTTPStore) Display(p string) string { return s.url(p) }

// Close closes the idle connections.
func (s *HTTPStore) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// Stat probes the file with a one-byte range: it must answer 206 with
// the file's size.
func (s *HTTPStore) Stat(ctx context.Context, p string) (int64, error) {
	name := s.url(p)
	s.Stats.Requests.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, name, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	req.Header.Set("Range", "bytes=0-0")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, netErr(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr, err := ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || cr.Size < 0 {
			return 0, fmt.Errorf("%s: answer to a range request: %v", name, cmpErr(err, errors.New("no file size in Content-Range")))
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 2))
		return cr.Size, nil
	case http.StatusRequestedRangeNotSatisfiable:
		// An empty file: Content-Range "bytes */0".
		if cr, err := ParseContentRange(resp.Header.Get("Content-Range")); err == nil && cr.Size == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("%s: %s to a range request of its first byte", name, resp.Status)
	case http.StatusOK:
		// Closing the body unread ends the transfer.
		return 0, fmt.Errorf("%s: %w", name, ErrNoRanges)
	}
	return 0, statusErr(name, resp)
}

// Open opens the file at p after a probe of its size and range support.
func (s *HTTPStore) Open(ctx context.Context, p string) (Object, error) {
	size, err := s.Stat(ctx, p)
	if err != nil {
		return nil, err
	}
	return &httpObject{s: s, name: s.url(p), size: size}, nil
}

func statusErr(name string, resp *http.Response) error {
	err := fmt.Errorf("%s: %s", name, resp.Status)
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return notExist(name)
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return Transient(err)
	}
	return err
}

// netErr marks the errors of the transport (a refused connection, a
// reset, a timeout) transient; those of TLS verification are not.
func netErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var pe *pinError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &pe) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return Transient(err)
}

// pinError: the server's certificate is not the pinned one.
type pinError struct{ host, got string }

func (e *pinError) Error() string {
	return fmt.Sprintf("%s: certificate thumbprint %s does not match --thumbprint", e.host, e.got)
}

type httpObject struct {
	s    *HTTPStore
	name string
	size int64
}

func (o *httpObject) Name() string { return o.name }
func (o *httpObject) Size() int64  { return o.size }

// ReadRange asks for bytes off..off+len(p)-1 and requires a 206 for
// exactly that range of a file of the size opened.
func (o *httpObject) ReadRange(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 || off > o.size {
		return 0, fmt.Errorf("%s: offset %d outside the file (%d bytes)", o.name, off, o.size)
	}
	want := int64(len(p))
	if want > o.size-off {
		want = o.size - off
	}
	if want == 0 {
		return 0, io.EOF
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.name, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", o.name, err)
	}
	req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+want-1, 10))
	resp, err := o.s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", o.name, netErr(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		return 0, fmt.Errorf("%s: %w", o.name, ErrNoRanges)
	default:
		return 0, statusErr(o.name, resp)
	}
	cr, err := ParseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", o.name, err)
	}
	if cr.Size != o.size {
		return 0, fmt.Errorf("%s: the file changed size (%d bytes, now %d) while being read", o.name, o.size, cr.Size)
	}
	if cr.First != off || cr.Last != off+want-1 {
		return 0, fmt.Errorf("%s: asked for bytes %d-%d, got %d-%d", o.name, off, off+want-1, cr.First, cr.Last)
	}
	n, err := io.ReadFull(resp.Body, p[:want])
	if err != nil {
		return n, fmt.Errorf("%s: reading bytes %d-%d: %w", o.name, off, off+want-1, Transient(err))
	}
	if want < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

// ContentRange is a Content-Range header's bytes First..Last of Size
// (Size -1: unknown; First, Last -1: an unsatisfied range, "*").
type ContentRange struct {
	First, Last, Size int64
}

// ParseContentRange reads "bytes FIRST-LAST/SIZE", "bytes FIRST-LAST/*"
// or "bytes */SIZE".
func ParseContentRange(h string) (ContentRange, error) {
	bad := fmt.Errorf("Content-Range %q is not bytes FIRST-LAST/SIZE", h)
	unit, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return ContentRange{}, bad
	}
	rng, size, ok := strings.Cut(strings.TrimSpace(rest), "/")
	if !ok {
		return ContentRange{}, bad
	}
	cr := ContentRange{First: -1, Last: -1, Size: -1}
	if size != "*" {
		v, err := parseNum(size)
		if err != nil {
			return ContentRange{}, bad
		}
		cr.Size = v
	}
	if rng == "*" {
		if cr.Size < 0 {
			return ContentRange{}, bad
		}
		return cr, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return ContentRange{}, bad
	}
	first, err1 := parseNum(a)
	last, err2 := parseNum(b)
	if err1 != nil || err2 != nil || last < first || (cr.Size >= 0 && last >= cr.Size) {
		return ContentRange{}, bad
	}
	cr.First, cr.Last = first, last
	return cr, nil
}

// parseNum reads a decimal without sign (strconv accepts "+1").
func parseNum(s string) (int64, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, errors.New("not a number")
	}
	return strconv.ParseInt(s, 10, 64)
}
