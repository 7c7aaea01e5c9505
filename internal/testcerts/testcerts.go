// Package testcerts makes, for tests, a certificate authority with a
// server and a client certificate signed by it, in the file layout the
// NBD and HTTP clients of the field expect (libnbd's and qemu's
// tls-creds-x509 directories): ca-cert.pem, server-cert.pem,
// server-key.pem, client-cert.pem, client-key.pem.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Set is one authority's files.
type Set struct {
	// Dir holds every file (what a server reads).
	Dir string
	// ClientDir holds ca-cert.pem, client-cert.pem and client-key.pem: a
	// client that trusts the authority and can show a certificate.
	ClientDir string
	// TrustDir holds ca-cert.pem alone: a client that trusts the
	// authority and has no certificate.
	TrustDir string

	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// New makes a fresh authority whose server certificate is valid for
// localhost, 127.0.0.1 and ::1, under t.TempDir().
func New(t testing.TB) *Set {
	t.Helper()
	root := t.TempDir()
	s := &Set{
		Dir: filepath.Join(root, "server"), ClientDir: filepath.Join(root, "client"),
		TrustDir: filepath.Join(root, "trust"),
	}
	for _, d := range []string{s.Dir, s.ClientDir, s.TrustDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	caKey := key(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vmfs test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, server bool) ([]byte, *ecdsa.PrivateKey) {
		k := key(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if server {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	srvDER, srvKey := leaf(2, "localhost", x509.ExtKeyUsageServerAuth, true)
	cliDER, cliKey := leaf(3, "vmfs test client", x509.ExtKeyUsageClientAuth, false)

	s.CA = filepath.Join(s.Dir, "ca-cert.pem")
	s.ServerCert = filepath.Join(s.Dir, "server-cert.pem")
	s.ServerKey = filepath.Join(s.Dir, "server-key.pem")
	s.ClientCert = filepath.Join(s.ClientDir, "client-cert.pem")
	s.ClientKey = filepath.Join(s.ClientDir, "client-key.pem")
	for _, d := range []string{s.Dir, s.ClientDir, s.TrustDir} {
		writePEM(t, filepath.Join(d, "ca-cert.pem"), "CERTIFICATE", caDER)
	}
	writePEM(t, s.ServerCert, "CERTIFICATE", srvDER)
	writePEM(t, s.ServerKey, "PRIVATE KEY", pkcs8(t, srvKey))
	writePEM(t, s.ClientCert, "CERTIFICATE", cliDER)
	writePEM(t, s.ClientKey, "PRIVATE KEY", pkcs8(t, cliKey))
	return s
}

func key(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pkcs8(t testing.TB, k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
