package httpexport_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/httpexport"
	"github.com/vmfs/vmfs/internal/servestat"
	"github.com/vmfs/vmfs/internal/testcerts"
	"github.com/vmfs/vmfs/internal/viewfile"
)

// TestClientCertificates: with a client CA, a client that shows a
// certificate it signed is served; one without a certificate, or with
// one of another CA, fails the handshake before any HTTP; a plain HTTP
// client gets no file.
func TestClientCertificates(t *testing.T) {
	certs, other := testcerts.New(t), testcerts.New(t)
	h, err := httpexport.New([]httpexport.VM{{Name: "web", Files: []viewfile.File{{Name: "web.xml", Content: content{b: []byte("<domain/>")}}}}}, httpexport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pool := func(path string) *x509.CertPool {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(b)
		return p
	}
	kp, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{kp}, ClientCAs: pool(certs.CA), ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- httpexport.Serve(ctx, ln, h, httpexport.ServeOptions{TLS: cfg, Stats: &servestat.Counters{}})
	}()
	t.Cleanup(func() { cancel(); <-done })
	url := "https://" + ln.Addr().String() + "/web/web.xml"

	client := func(cert, key string) *http.Client {
		c := &tls.Config{RootCAs: pool(certs.CA)}
		if cert != "" {
			ck, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			c.Certificates = []tls.Certificate{ck}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c}}
	}
	resp, err := client(certs.ClientCert, certs.ClientKey).Get(url)
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "<domain/>" {
		t.Errorf("with a client certificate: %d %q", resp.StatusCode, b)
	}
	for name, c := range map[string]*http.Client{
		"no certificate":    client("", ""),
		"another CA's":      client(other.ClientCert, other.ClientKey),
		"plain HTTP to TLS": {Timeout: 10 * time.Second},
	} {
		u := url
		if name == "plain HTTP to TLS" {
			u = "http://" + ln.Addr().String() + "/web/web.xml"
		}
		resp, err := c.Get(u)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || string(b) == "<domain/>" {
			t.Errorf("%s: served %d %q", name, resp.StatusCode, b)
		}
	}
}
