// Package remotetest serves a directory over HTTPS on loopback for the
// tests of remote sources: ranges as net/http serves them, a server that
// ignores ranges, and one that stops and comes back on the same address.
package remotetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server serves Dir at URL until the test ends.
type Server struct {
	// URL is https://127.0.0.1:PORT (no trailing slash).
	URL string
	// Thumbprint is the SHA-256 of the server's certificate, hex.
	Thumbprint string
	Dir        string
	// NoRanges makes the server ignore Range headers: 200 and the
	// whole file, no Accept-Ranges.
	NoRanges atomic.Bool
	// Stall makes the server send the headers of a range and then
	// nothing, until the client gives up.
	Stall atomic.Bool
	// Requests counts the requests served.
	Requests atomic.Int64

	addr string
	cert tls.Certificate
	mu   sync.Mutex
	srv  *http.Server
}

// Start serves dir over HTTPS with a self-signed certificate for
// 127.0.0.1; the test's cleanup stops it.
func Start(t testing.TB, dir string) *Server {
	t.Helper()
	cert, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: dir, cert: cert}
	sum := sha256.Sum256(cert.Certificate[0])
	s.Thumbprint = hex.EncodeToString(sum[:])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.URL = "https://" + s.addr
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second}
	tl := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{s.cert}, NextProtos: []string{"http/1.1"}})
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(tl)
}

// Stop closes the listener and every connection: the server is gone.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Restart serves again on the same address.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.serve(ln)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	p := path.Clean("/" + r.URL.Path)
	f, err := os.Open(filepath.Join(s.Dir, filepath.FromSlash(p)))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	if s.NoRanges.Load() {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			io.Copy(w, f)
		}
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if s.Stall.Load() && r.Header.Get("Range") != "bytes=0-0" {
		// The range asked for, as asked ("bytes=A-B"), then no bytes.
		rng := strings.TrimPrefix(r.Header.Get("Range"), "bytes=")
		w.Header().Set("Content-Range", "bytes "+rng+"/"+strconv.FormatInt(st.Size(), 10))
		w.WriteHeader(http.StatusPartialContent)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "vmfs remote test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if len(der) == 0 {
		return tls.Certificate{}, errors.New("no certificate")
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
