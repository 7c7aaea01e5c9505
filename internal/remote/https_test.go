package remote_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/remote"
	"github.com/vmfs/vmfs/internal/remote/remotetest"
)

func serveFile(t *testing.T, size int) (*remotetest.Server, []byte) {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i/4096)
	}
	if err := os.WriteFile(filepath.Join(dir, "disk.raw"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return remotetest.Start(t, dir), data
}

func openStore(t *testing.T, url string, o remote.Options) (remote.Store, string) {
	t.Helper()
	st, p, err := remote.OpenHTTPS(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.(io.Closer).Close() })
	return st, p
}

// TestHTTPSReads: a file served with ranges reads back whole and in
// pieces; its size comes from the probe; a missing file is ErrNotExist.
func TestHTTPSReads(t *testing.T) {
	srv, data := serveFile(t, 3<<20+17)
	st, p := openStore(t, srv.URL+"/disk.raw", remote.Options{Thumbprint: srv.Thumbprint})
	if p != "/disk.raw" || st.Display(p) != srv.URL+"/disk.raw" {
		t.Fatalf("path %q display %q", p, st.Display(p))
	}
	obj, err := st.Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size() != int64(len(data)) {
		t.Fatalf("size %d, want %d", obj.Size(), len(data))
	}
	c := remote.NewCached(obj, remote.CacheOptions{BlockSize: 256 << 10, CacheSize: 1 << 20})
	t.Cleanup(func() { c.Close() })
	got := make([]byte, len(data))
	if n, err := c.ReadAt(got, 0); n != len(data) || err != nil || !bytes.Equal(got, data) {
		t.Fatalf("whole read: %d, %v, equal %v", n, err, bytes.Equal(got, data))
	}
	buf := make([]byte, 100)
	if n, err := obj.ReadRange(context.Background(), buf, int64(len(data)-40)); n != 40 || err != io.EOF || !bytes.Equal(buf[:40], data[len(data)-40:]) {
		t.Fatalf("tail ReadRange: %d, %v", n, err)
	}
	if _, err := st.Stat(context.Background(), "/gone.raw"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestHTTPSRefusals: what is refused, and that each error says why.
func TestHTTPSRefusals(t *testing.T) {
	srv, _ := serveFile(t, 1<<20)
	wrong := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, url string
		o         remote.Options
		noRanges  bool
		want      string
	}{
		{"no ranges", srv.URL + "/disk.raw", remote.Options{Thumbprint: srv.Thumbprint}, true, "server does not support range requests; vmfs reads in place and will not download the whole file"},
		{"wrong thumbprint", srv.URL + "/disk.raw", remote.Options{Thumbprint: wrong}, false, "does not match --thumbprint"},
		{"self-signed unverified", srv.URL + "/disk.raw", remote.Options{}, false, "certificate"},
		{"plain http", "http://127.0.0.1:1/disk.raw", remote.Options{}, false, "pass --insecure"},
		{"credentials", "https://u:secret@127.0.0.1/disk.raw", remote.Options{}, false, "credentials in the URL"},
		{"folder", srv.URL + "/", remote.Options{}, false, "names a folder"},
		{"bad thumbprint", srv.URL + "/disk.raw", remote.Options{Thumbprint: "12:34"}, false, "not a SHA-256 fingerprint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.NoRanges.Store(tc.noRanges)
			t.Cleanup(func() { srv.NoRanges.Store(false) })
			st, p, err := remote.OpenHTTPS(context.Background(), tc.url, tc.o)
			if err == nil {
				_, err = st.Open(context.Background(), p)
				st.(io.Closer).Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows the password: %v", err)
			}
			if remote.IsTransient(err) {
				t.Errorf("a refusal is marked transient: %v", err)
			}
		})
	}
}

// TestHTTPSThumbprintForms: the pin is accepted in hex with colons, and
// --insecure reads a server no root vouches for.
func TestHTTPSThumbprintForms(t *testing.T) {
	srv, _ := serveFile(t, 4096)
	var colons []string
	for i := 0; i < len(srv.Thumbprint); i += 2 {
		colons = append(colons, strings.ToUpper(srv.Thumbprint[i:i+2]))
	}
	for _, o := range []remote.Options{{Thumbprint: strings.Join(colons, ":")}, {Insecure: true}} {
		st, p := openStore(t, srv.URL+"/disk.raw", o)
		if _, err := st.Stat(context.Background(), p); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// TestHTTPSServerGone: a server stopped mid-read gives EIO, never wrong
// bytes, once the retries are spent; when it is back, the same reads
// succeed with the right bytes.
func TestHTTPSServerGone(t *testing.T) {
	srv, data := serveFile(t, 4<<20)
	st, p := openStore(t, srv.URL+"/disk.raw", remote.Options{Thumbprint: srv.Thumbprint})
	obj, err := st.Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	c := remote.NewCached(obj, remote.CacheOptions{BlockSize: 64 << 10, CacheSize: 256 << 10, Attempts: 3, Backoff: 10 * time.Millisecond, ReadAhead: -1})
	t.Cleanup(func() { c.Close() })
	buf := make([]byte, 64<<10)
	if _, err := c.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, data[:len(buf)]) {
		t.Fatalf("first read: %v", err)
	}
	srv.Stop()
	off := int64(2 << 20)
	n, err := c.ReadAt(buf, off)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read from a stopped server: %d, %v; want EIO", n, err)
	}
	if n > 0 && !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
		t.Fatal("wrong bytes from a stopped server")
	}
	if s := c.Stats().Snapshot(); s.Errors == 0 || s.Retries != 2 {
		t.Errorf("stats after the fault: %+v", s)
	}
	srv.Restart(t)
	if _, err := c.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
		t.Fatalf("read after the restart: %v", err)
	}
}

// TestHTTPSStalled: a server that answers a range and then sends nothing
// fails the read with EIO once the per-request timeout and the attempts
// are spent, instead of hanging it.
func TestHTTPSStalled(t *testing.T) {
	srv, _ := serveFile(t, 1<<20)
	st, p := openStore(t, srv.URL+"/disk.raw", remote.Options{Thumbprint: srv.Thumbprint})
	obj, err := st.Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stall.Store(true)
	c := remote.NewCached(obj, remote.CacheOptions{Attempts: 2, Backoff: time.Millisecond, Timeout: 200 * time.Millisecond, ReadAhead: -1})
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	_, err = c.ReadAt(make([]byte, 4096), 0)
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "no answer within") {
		t.Fatalf("err = %v, want EIO after the timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the stalled read took %v", d)
	}
	if r := c.Stats().Retries.Load(); r != 1 {
		t.Errorf("retries = %d, want 1", r)
	}
}
