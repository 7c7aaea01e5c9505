package httpexport_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/httpexport"
	"github.com/vmfs/vmfs/internal/servestat"
	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
)

// content is a file's bytes; fail, when not nil, is returned by reads
// past 4096.
type content struct {
	b    []byte
	fail error
}

func (c content) ReadAt(p []byte, off int64) (int, error) {
	if c.fail != nil && off+int64(len(p)) > 4096 {
		return 0, c.fail
	}
	return bytes.NewReader(c.b).ReadAt(p, off)
}
func (c content) Size() int64    { return int64(len(c.b)) }
func (c content) Format() string { return "raw" }
func (c content) Close() error   { return nil }
func (c content) Extents(off, n int64) ([]layouts.Extent, error) {
	return []layouts.Extent{{Off: off, Len: n, Kind: layouts.Data}}, nil
}

func serve(t *testing.T, h http.Handler, st *servestat.Counters) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpexport.Serve(ctx, ln, h, httpexport.ServeOptions{Stats: st, MaxConns: 40}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return "http://" + ln.Addr().String()
}

// TestHandler: listings, whole files, ranges, HEAD, the token as bearer
// or basic-auth password, refusals, and read errors counted.
func TestHandler(t *testing.T) {
	disk := bytes.Repeat([]byte("0123456789abcdef"), 1<<12) // 64 KiB
	st := &servestat.Counters{}
	h, err := httpexport.New([]httpexport.VM{
		{Name: "web", Files: []viewfile.File{
			{Name: "web.xml", Content: content{b: []byte("<domain/>")}},
			{Name: "web-disk0.qcow2", Content: content{b: disk}, Disk: true},
		}},
		{Name: "db", Files: []viewfile.File{{Name: "broken.raw", Content: content{b: disk, fail: errors.New("bad sector")}, Disk: true}}},
	}, httpexport.Options{Token: "tok", Stats: st})
	if err != nil {
		t.Fatal(err)
	}
	base := serve(t, h, st)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		basic              string
		code               int
		body               string
		headers            map[string]string
	}{
		{"root", "GET", "/", nil, "", 200, "db/\nweb/\n", nil},
		{"vm", "GET", "/web/", nil, "", 200, "web-disk0.qcow2\nweb.xml\n", nil},
		{"vm without slash", "GET", "/web", nil, "", 301, "", map[string]string{"Location": "/web/"}},
		{"descriptor", "GET", "/web/web.xml", nil, "", 200, "<domain/>", map[string]string{"Content-Type": "application/xml"}},
		{"range", "GET", "/web/web-disk0.qcow2", map[string]string{"Range": "bytes=17-20"}, "", 206, "1234",
			map[string]string{"Content-Range": "bytes 17-20/65536", "Content-Type": "application/octet-stream"}},
		{"suffix range", "GET", "/web/web-disk0.qcow2", map[string]string{"Range": "bytes=-3"}, "", 206, "def", nil},
		{"range past the end", "GET", "/web/web-disk0.qcow2", map[string]string{"Range": "bytes=70000-"}, "", 416, "", nil},
		{"head", "HEAD", "/web/web-disk0.qcow2", nil, "", 200, "", map[string]string{"Content-Length": "65536", "Accept-Ranges": "bytes"}},
		{"basic auth", "GET", "/web/web.xml", nil, "tok\n", 200, "<domain/>", nil},
		{"no such vm", "GET", "/mail/", nil, "", 404, "", nil},
		{"no such file", "GET", "/web/web.vmx", nil, "", 404, "", nil},
		{"dot dot", "GET", "/web/%2e%2e/db/broken.raw", nil, "", 404, "", nil},
		{"put", "PUT", "/web/web.xml", nil, "", 405, "", map[string]string{"Allow": "GET, HEAD"}},
		{"no token", "GET", "/web/web.xml", map[string]string{"Authorization": ""}, "", 401, "", map[string]string{"WWW-Authenticate": `Bearer realm="vmfs", Basic realm="vmfs"`}},
		{"wrong token", "GET", "/", map[string]string{"Authorization": "Bearer tok2"}, "", 401, "", nil},
		{"empty token", "GET", "/", map[string]string{"Authorization": "Bearer "}, "", 401, "", nil},
		{"wrong basic", "GET", "/", nil, "tak", 401, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rq, err := http.NewRequest(tc.method, base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			rq.Header.Set("Authorization", "Bearer tok")
			if tc.basic != "" {
				rq.SetBasicAuth("someone", tc.basic)
			}
			for k, v := range tc.header {
				rq.Header.Set(k, v)
			}
			resp, err := noRedirect.Do(rq)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("%s %s: %d, want %d (%q)", tc.method, tc.path, resp.StatusCode, tc.code, body)
			}
			if tc.body != "" && string(body) != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			for k, v := range tc.headers {
				if got := resp.Header.Get(k); !strings.HasPrefix(got, v) {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if tc.code == 401 && strings.Contains(string(body), "domain") {
				t.Errorf("a refused request got the file: %q", body)
			}
		})
	}
	// A read error cuts the transfer and is counted.
	rq, _ := http.NewRequest("GET", base+"/db/broken.raw", nil)
	rq.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(rq)
	if err == nil {
		n, rerr := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if rerr == nil && n == int64(len(disk)) {
			t.Error("a file whose reads fail was served whole")
		}
	}
	figs := st.Snapshot()
	if figs.Refused != 4 || figs.Errors != 1 || figs.BytesRead == 0 || figs.Connections == 0 {
		t.Errorf("figures %+v: want 4 refused, 1 error, bytes and connections counted", figs)
	}
}

// TestNew: names that cannot be one path segment, and duplicates, are
// refused.
func TestNew(t *testing.T) {
	f := viewfile.File{Name: "a.raw", Content: content{b: []byte("x")}}
	for _, tc := range []struct {
		name string
		vms  []httpexport.VM
	}{
		{"slash in a VM", []httpexport.VM{{Name: "a/b", Files: []viewfile.File{f}}}},
		{"dot dot VM", []httpexport.VM{{Name: "..", Files: []viewfile.File{f}}}},
		{"two VMs of one name", []httpexport.VM{{Name: "a", Files: []viewfile.File{f}}, {Name: "a", Files: []viewfile.File{f}}}},
		{"two files of one name", []httpexport.VM{{Name: "a", Files: []viewfile.File{f, f}}}},
		{"empty file name", []httpexport.VM{{Name: "a", Files: []viewfile.File{{Content: f.Content}}}}},
	} {
		if _, err := httpexport.New(tc.vms, httpexport.Options{}); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
