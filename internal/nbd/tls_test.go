package nbd_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/nbd"
	"github.com/vmfs/vmfs/internal/servestat"
	"github.com/vmfs/vmfs/internal/testcerts"
)

// serveWith starts srv on a loopback port, stopped at cleanup.
func serveWith(t *testing.T, srv *nbd.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
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
	return ln.Addr().String()
}

// serverTLS is the server's configuration from certs; with clientCA it
// requires a client certificate signed by the authority.
func serverTLS(t *testing.T, certs *testcerts.Set, clientCA bool) *tls.Config {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
	if clientCA {
		pem, err := os.ReadFile(certs.CA)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg
}

// nbdsURI is an nbds:// URI of export whose client reads its
// certificates from dir.
func nbdsURI(addr, export, dir string) string {
	return "nbds://" + addr + "/" + strings.ReplaceAll(export, "/", "%2F") + "?tls-certificates=" + dir
}

// TestTLS: with TLS configured, nbdinfo and qemu-img reach the exports
// through STARTTLS with the client files of the field's layout, and a
// plain client is refused: NBD_REP_ERR_TLS_REQD for every option but
// STARTTLS, the connection closed on NBD_OPT_EXPORT_NAME. With a client
// authority, a client without a certificate is refused.
func TestTLS(t *testing.T) {
	need(t, "nbdinfo", "qemu-img", "qemu-io")
	certs := testcerts.New(t)
	src := sparseImage(t, t.TempDir(), "one.qcow2", "qcow2")
	exps := exports(t, src)
	name := exps[0].Name()
	var st servestat.Counters
	addr := serveWith(t, &nbd.Server{Exports: exps, TLS: serverTLS(t, certs, false), Stats: &st})

	list := run(t, "nbdinfo", "--list", nbdsURI(addr, "", certs.TrustDir))
	if !strings.Contains(list, name) {
		t.Errorf("nbdinfo --list over TLS does not show %s:\n%s", name, list)
	}
	host, port, _ := net.SplitHostPort(addr)
	run(t, "qemu-img", "compare", "-q",
		"--object", "tls-creds-x509,id=tls0,endpoint=client,dir="+certs.TrustDir,
		"-f", "raw", "-F", "qcow2",
		`json:{"driver":"raw","file":{"driver":"nbd","tls-creds":"tls0","export":"`+name+`","server":{"type":"inet","host":"`+host+`","port":"`+port+`"}}}`,
		src)

	// Plain clients.
	if out, err := exec.Command("nbdinfo", "--list", "nbd://"+addr).CombinedOutput(); err == nil {
		t.Errorf("nbdinfo --list without TLS succeeded:\n%s", out)
	}
	if out, err := exec.Command("qemu-img", "info", nbdJSON(addr, name)).CombinedOutput(); err == nil {
		t.Errorf("qemu-img info without TLS succeeded:\n%s", out)
	}
	cl := dial(t, addr)
	for _, opt := range []uint32{3, 8, 7, 99} {
		data := []byte(nil)
		if opt == 7 {
			data = nameData(name, 0, 0)
		}
		if ty, _ := cl.option(opt, data); len(ty) != 1 || ty[0] != 1<<31+5 {
			t.Errorf("option %d before TLS: replies %#x, want NBD_REP_ERR_TLS_REQD", opt, ty)
		}
	}
	if ty, _ := cl.option(5, []byte("x")); ty[0] != 1<<31+3 {
		t.Errorf("STARTTLS with data: reply %#x, want NBD_REP_ERR_INVALID", ty[0])
	}
	cl.write(append(append([]byte("IHAVEOPT"), 0, 0, 0, 1, 0, 0, 0, uint8(len(name))), name...))
	cl.c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := cl.c.Read(make([]byte, 1)); err == nil {
		t.Errorf("NBD_OPT_EXPORT_NAME before TLS: %d bytes of answer, want the connection closed", n)
	}
	if got := st.Refused.Load(); got < 3 {
		t.Errorf("refused: %d, want at least 3 (nbdinfo, qemu-img, the raw client)", got)
	}
	if st.BytesRead.Load() == 0 {
		t.Error("no bytes counted for qemu-img compare")
	}

	// A client authority: a certificate is required.
	caddr := serveWith(t, &nbd.Server{Exports: exps, TLS: serverTLS(t, certs, true)})
	if out, err := exec.Command("nbdinfo", "--list", nbdsURI(caddr, "", certs.TrustDir)).CombinedOutput(); err == nil {
		t.Errorf("nbdinfo without a client certificate succeeded:\n%s", out)
	}
	list = run(t, "nbdinfo", "--list", nbdsURI(caddr, "", certs.ClientDir))
	if !strings.Contains(list, name) {
		t.Errorf("nbdinfo --list with a client certificate does not show %s:\n%s", name, list)
	}
}
