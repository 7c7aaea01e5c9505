package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/servestat"
	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/internal/testcerts"
	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/layouts"
)

// serveVM writes, in dir/name, a VMware VM of one sparse 16 MiB disk
// whose data is pattern at 1 MiB and 9 MiB, and returns the disk's path.
func serveVM(t *testing.T, dir, name string, pattern byte) string {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(d, name+".vmdk")
	qemuImg(t, "create", "-q", "-f", "vmdk", disk, "16M")
	p := fmt.Sprintf("%#x", pattern)
	if out, err := exec.Command("qemu-io", "-f", "vmdk", "-c", "write -P "+p+" 1M 1M", "-c", "write -P "+p+" 9M 64k", disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	write(t, filepath.Join(d, name+".vmx"), `.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "14"
displayName = "`+name+`"
guestOS = "other-64"
memsize = "256"
numvcpus = "1"
scsi0.present = "TRUE"
scsi0.virtualDev = "lsilogic"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "`+name+`.vmdk"
`)
	return disk
}

// server is a `vmfs serve` process of a test.
type server struct {
	cmd  *exec.Cmd
	run  string // its VMFS_RUN_DIR
	mu   sync.Mutex
	out  []string
	done chan struct{}
}

// startServer runs the vmfs binary's serve with args until the test
// ends, and waits until it serves (its status file is written).
func startServer(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	s := &server{run: t.TempDir(), done: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	s.cmd.Env = append(os.Environ(), "VMFS_RUN_DIR="+s.run)
	var stderr bytes.Buffer
	s.cmd.Stderr = &stderr
	pr, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			s.out = append(s.out, sc.Text())
			s.mu.Unlock()
		}
		s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
			t.Error("vmfs serve did not stop on SIGTERM")
		}
	})
	status := filepath.Join(s.run, "serve", fmt.Sprintf("%d.json", s.cmd.Process.Pid))
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(status); err == nil {
			break
		}
		select {
		case <-s.done:
			t.Fatalf("vmfs serve %s exited: %s", strings.Join(args, " "), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vmfs serve %s: no status file after 30s: %s", strings.Join(args, " "), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The URIs are printed before the status file is written; the
	// reader may lag a little.
	time.Sleep(100 * time.Millisecond)
	return s
}

// uris are the URIs the server printed that start with prefix.
func (s *server) uris(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.out {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// curl runs curl with args, trusting the test's CA, and returns its
// output with the HTTP status last (-w).
func curl(t *testing.T, ca string, args ...string) (body string, code string) {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS", "--cacert", ca, "-w", "\n%{http_code}"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	return s[:i], s[i+1:]
}

// TestServeExports: one `vmfs serve` of a folder of two VMs, with TLS and
// a token, serves each VM's disk over NBD (nbds) and its files over
// HTTPS; qemu-img compares both with the source, curl reads ranges and
// HEAD, a wrong or missing token and a plain NBD client are refused, and
// `vmfs status` shows the server with its figures.
func TestServeExports(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img", "qemu-io", "curl", "nbdinfo", "nbdcopy")
	bin := testenv.BuildVMFS(t)
	dir := t.TempDir()
	vms := filepath.Join(dir, "vms")
	disks := map[string]string{"alpha": serveVM(t, vms, "alpha", 0xa1), "beta": serveVM(t, vms, "beta", 0xb2)}
	certs := testcerts.New(t)
	tokenFile := filepath.Join(dir, "token")
	write(t, tokenFile, "s3cret-token\n")
	s := startServer(t, bin, "--nbd", "127.0.0.1:0", "--https", "127.0.0.1:0",
		"--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey, "--token-file", tokenFile, vms)

	nbds := s.uris("nbds://")
	https := s.uris("https://")
	if len(nbds) != 2 || len(https) != 4 {
		t.Fatalf("printed %q, want 2 nbds:// and 4 https:// URIs", append(nbds, https...))
	}
	u, _ := url.Parse(https[0])
	base := "https://" + u.Host
	auth := "Authorization: Bearer s3cret-token"

	// Listings.
	if body, code := curl(t, certs.CA, "-H", auth, base+"/"); code != "200" || body != "alpha/\nbeta/\n" {
		t.Errorf("GET /: %s %q, want 200 \"alpha/\\nbeta/\\n\"", code, body)
	}
	if body, code := curl(t, certs.CA, "-H", auth, base+"/alpha/"); code != "200" || body != "alpha-disk0.qcow2\nalpha.xml\n" {
		t.Errorf("GET /alpha/: %s %q", code, body)
	}
	if _, code := curl(t, certs.CA, "-H", auth, base+"/gamma/"); code != "404" {
		t.Errorf("GET /gamma/: %s, want 404", code)
	}
	// Refusals.
	for _, tc := range []struct{ name, header string }{
		{"no token", "X-None: 1"},
		{"wrong token", "Authorization: Bearer s3cret-tokem"},
		{"longer token", "Authorization: Bearer s3cret-token2"},
		{"wrong scheme", "Authorization: Token s3cret-token"},
	} {
		if _, code := curl(t, certs.CA, "-H", tc.header, base+"/alpha/alpha.xml"); code != "401" {
			t.Errorf("%s: %s, want 401", tc.name, code)
		}
	}
	if _, code := curl(t, certs.CA, "-u", "anyone:s3cret-token", base+"/alpha/alpha.xml"); code != "200" {
		t.Errorf("basic auth with the token as password: %s, want 200", code)
	}
	if _, code := curl(t, certs.CA, "-X", "PUT", "-H", auth, base+"/alpha/alpha.xml"); code != "405" {
		t.Errorf("PUT: %s, want 405", code)
	}
	if body, code := curl(t, certs.CA, "-H", auth, "http://"+u.Host+"/"); code != "400" || strings.Contains(body, "alpha") {
		t.Errorf("plain HTTP to the HTTPS port: %s %q, want 400 and no listing", code, body)
	}

	for _, vm := range []string{"alpha", "beta"} {
		disk := base + "/" + vm + "/" + vm + "-disk0.qcow2"
		// HEAD: the size, and ranges offered.
		head, code := curl(t, certs.CA, "-I", "-H", auth, disk)
		if code != "200" || !strings.Contains(head, "Accept-Ranges: bytes") || !strings.Contains(head, "Content-Length: ") {
			t.Errorf("HEAD %s: %s\n%s", disk, code, head)
		}
		// A range of the image equals the same range of the whole.
		whole := filepath.Join(dir, vm+".qcow2")
		if _, code := curl(t, certs.CA, "-H", auth, "-o", whole, disk); code != "200" {
			t.Fatalf("GET %s: %s", disk, code)
		}
		all, err := os.ReadFile(whole)
		if err != nil {
			t.Fatal(err)
		}
		part, code := curl(t, certs.CA, "-H", auth, "-r", "100-4195", disk)
		if code != "206" || part != string(all[100:4196]) {
			t.Errorf("range 100-4195 of %s: %s, %d bytes, not the whole's", disk, code, len(part))
		}
		qemuImg(t, "compare", "-q", "-f", "qcow2", "-F", "vmdk", whole, disks[vm])
		// qemu's curl driver reads the image itself, the token as its
		// basic-auth password.
		js, _ := json.Marshal(map[string]any{"driver": "qcow2", "file": map[string]any{
			"driver": "https", "url": disk, "sslverify": false, "username": "vmfs", "password-secret": "tok"}})
		qemuImg(t, "compare", "-q", "--object", "secret,id=tok,file="+tokenFile, "-f", "qcow2", "-F", "vmdk", "json:"+string(js), disks[vm])
	}

	// NBD: TLS required; with the CA, qemu-img and nbdcopy read the disks.
	for i, vm := range []string{"alpha", "beta"} {
		nu, _ := url.Parse(nbds[i])
		if want := "/" + vm + "%2Fdisk0"; nu.EscapedPath() != want {
			t.Errorf("NBD export %s, want the path %s", nbds[i], want)
		}
		js, _ := json.Marshal(map[string]any{"driver": "raw", "file": map[string]any{"driver": "nbd", "tls-creds": "tls0",
			"export": vm + "/disk0", "server": map[string]string{"type": "inet", "host": nu.Hostname(), "port": nu.Port()}}})
		qemuImg(t, "compare", "-q", "--object", "tls-creds-x509,id=tls0,endpoint=client,dir="+certs.TrustDir,
			"-f", "raw", "-F", "vmdk", "json:"+string(js), disks[vm])
		if out, err := exec.Command("nbdinfo", "--list", "nbd://"+nu.Host).CombinedOutput(); err == nil {
			t.Errorf("nbdinfo without TLS succeeded:\n%s", out)
		}
		cp := filepath.Join(dir, vm+".raw")
		if out, err := exec.Command("nbdcopy", nbds[i]+"?tls-certificates="+certs.TrustDir, cp).CombinedOutput(); err != nil {
			t.Fatalf("nbdcopy: %v\n%s", err, out)
		}
		qemuImg(t, "compare", "-q", "-f", "raw", "-F", "vmdk", cp, disks[vm])
	}

	// vmfs status: the server, with what it served and refused.
	time.Sleep(1200 * time.Millisecond) // the figures are rewritten every second
	stdout, stderr, code := runBinEnv(t, []string{"VMFS_RUN_DIR=" + s.run}, bin, "status", "--json")
	if code != 0 {
		t.Fatalf("vmfs status --json: exit %d: %s", code, stderr)
	}
	var st struct {
		Servers []servestat.Record `json:"servers"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil || len(st.Servers) != 1 {
		t.Fatalf("vmfs status --json: %v\n%s", err, stdout)
	}
	figs := map[string]servestat.Listener{}
	for _, l := range st.Servers[0].Serving {
		figs[l.Protocol] = l
	}
	if h := figs["https"]; h.BytesRead < 1<<20 || h.Refused != 4 || h.Requests < 10 {
		t.Errorf("https figures %+v: want more than 1 MiB served, 4 refused, 10 requests", h)
	}
	if n := figs["nbds"]; n.BytesRead < 4<<20 || n.Refused < 2 || n.Connections < 6 {
		t.Errorf("nbds figures %+v: want more than 4 MiB served, 2 refused, 6 connections", n)
	}
	if got := st.Servers[0].VMs; strings.Join(got, ",") != "alpha,beta" {
		t.Errorf("vms %q", got)
	}
	text, _, _ := runBinEnv(t, []string{"VMFS_RUN_DIR=" + s.run}, bin, "status")
	if !strings.Contains(text, "nbds://127.0.0.1:") || !strings.Contains(text, "https://127.0.0.1:") {
		t.Errorf("vmfs status shows no server:\n%s", text)
	}

	// SIGTERM: exit 0, the status file removed.
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("vmfs serve did not stop")
	}
	if c := s.cmd.ProcessState.ExitCode(); c != 0 {
		t.Errorf("vmfs serve exited %d on SIGTERM", c)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.run, "serve")); len(ents) != 0 {
		t.Errorf("status files left: %v", ents)
	}
}

// TestServeWritable: with --writable, an NBD client's writes land in the
// overlay and read back, also from a later server on the same overlay;
// the source never changes, and a read-only server shows it as it was.
func TestServeWritable(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	src := filepath.Join(dir, "w.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", src, "16M")
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", src).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	before := testenv.SHA256File(t, src)
	ov := filepath.Join(dir, "overlay")
	opts := func(writable bool) serveOptions {
		return serveOptions{srcs: []string{src}, nbdAddr: "127.0.0.1:0", maxConns: 4, writable: writable, overlay: ov,
			session: session.Options{To: "libvirt", Dir: dir, Env: &layouts.Env{}}}
	}
	qemuIO := func(uri string, cmds ...string) (string, error) {
		u, _ := url.Parse(uri)
		js, _ := json.Marshal(map[string]any{"driver": "raw", "file": map[string]any{"driver": "nbd", "export": "w/disk0",
			"server": map[string]string{"type": "inet", "host": u.Hostname(), "port": u.Port()}}})
		var args []string
		for _, c := range cmds {
			if c == "-r" {
				args = append(args, c)
				continue
			}
			args = append(args, "-c", c)
		}
		out, err := exec.Command("qemu-io", append(args, "json:"+string(js))...).CombinedOutput()
		return string(out), err
	}
	t.Run("write", func(t *testing.T) {
		uri := startServe(t, opts(true), 1)[0]
		if out, err := qemuIO(uri, "write -P 0x77 64k 128k", "write -z 512k 64k", "flush"); err != nil || strings.Contains(out, "error") {
			t.Fatalf("qemu-io write over NBD: %v\n%s", err, out)
		}
		if out, err := qemuIO(uri, "read -P 0x77 64k 128k", "read -P 0 512k 64k", "read -P 0x11 256k 256k"); err != nil || strings.Contains(out, "Pattern verification failed") {
			t.Errorf("qemu-io read back: %v\n%s", err, out)
		}
	})
	if after := testenv.SHA256File(t, src); after != before {
		t.Fatal("the source changed")
	}
	if ents, err := os.ReadDir(ov); err != nil || len(ents) == 0 {
		t.Fatalf("overlay %s holds nothing: %v", ov, err)
	}
	// The overlay is the raw view's, as a mount's: materialize --format
	// raw carries the writes over.
	out := filepath.Join(dir, "out")
	if code := run([]string{"vmfs", "materialize", "--format", "raw", "--overlay", ov, src, out}); code != 0 {
		t.Fatalf("materialize --format raw --overlay: exit %d", code)
	}
	got, err := os.ReadFile(filepath.Join(out, "w-disk0.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[64<<10:192<<10], bytes.Repeat([]byte{0x77}, 128<<10)) || !bytes.Equal(got[512<<10:576<<10], make([]byte, 64<<10)) || got[0] != 0x11 {
		t.Error("the materialized disk lacks the writes made over NBD")
	}
	t.Run("again", func(t *testing.T) {
		uri := startServe(t, opts(true), 1)[0]
		if out, err := qemuIO(uri, "read -P 0x77 64k 128k", "read -P 0 512k 64k"); err != nil || strings.Contains(out, "Pattern verification failed") {
			t.Errorf("a second server on the overlay: %v\n%s", err, out)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		uri := startServe(t, opts(false), 1)[0]
		if out, err := qemuIO(uri, "-r", "read -P 0x11 0 1M"); err != nil || strings.Contains(out, "Pattern verification failed") {
			t.Errorf("read-only server: %v\n%s", err, out)
		}
		if out, err := qemuIO(uri, "write -P 0x99 0 4k"); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("write to a read-only export succeeded:\n%s", out)
		}
	})
	if after := testenv.SHA256File(t, src); after != before {
		t.Error("the source changed")
	}
}

// TestServeUsage: the flags that do not go together, and listen
// addresses that need what is not given, are usage errors.
func TestServeUsage(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "d.raw")
	write(t, src, strings.Repeat("x", 4096))
	certs := testcerts.New(t)
	tok := filepath.Join(dir, "tok")
	write(t, tok, "t0k\n")
	empty := filepath.Join(dir, "empty")
	write(t, empty, "\n")
	noVMs := filepath.Join(dir, "novms")
	if err := os.Mkdir(noVMs, 0o755); err != nil {
		t.Fatal(err)
	}
	tlsArgs := []string{"--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{src}, exitUsage},
		{[]string{"--https", "127.0.0.1:0", src}, exitUsage},
		{[]string{"--nbd", "127.0.0.1:0", "--tls-cert", certs.ServerCert, src}, exitUsage},
		{[]string{"--nbd", "127.0.0.1:0", "--tls-ca", certs.CA, src}, exitUsage},
		{append([]string{"--https", "127.0.0.1:0", "--insecure-http"}, append(tlsArgs, src)...), exitUsage},
		{[]string{"--https", "0.0.0.0:0", "--insecure-http", src}, exitUsage},
		{append([]string{"--https", "0.0.0.0:0"}, append(tlsArgs, src)...), exitUsage},
		{[]string{"--nbd", "127.0.0.1:0", "--token-file", tok, src}, exitUsage},
		{append([]string{"--https", "127.0.0.1:0", "--token-file", empty}, append(tlsArgs, src)...), exitUsage},
		{[]string{"--https", "127.0.0.1:0", "--insecure-http", "--writable", src}, exitUsage},
		{[]string{"--nbd", "127.0.0.1:0", "--overlay", dir, src}, exitUsage},
		{[]string{"--nbd", "127.0.0.1:0", "--writable", "--overlay", filepath.Join(dir, "ov"), src, src}, exitUsage},
		{[]string{"--nbd", "127.0.0.1:0", "--tls-cert", certs.ServerKey, "--tls-key", certs.ServerKey, src}, exitUsage},
		{[]string{"--nbd", "127.0.0.1:0", noVMs}, exitError},
		{[]string{"--nbd", "127.0.0.1:0", src, src}, exitError},
	} {
		if got := run(append([]string{"vmfs", "serve"}, tc.args...)); got != tc.want {
			t.Errorf("serve %s: exit %d, want %d", strings.Join(tc.args, " "), got, tc.want)
		}
	}
}
