package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vmfs/vmfs/internal/remote/remotetest"
	"github.com/vmfs/vmfs/internal/testenv"
)

// remoteTree serves, over HTTPS on loopback, the boot sector VM as a
// folder (its .vmx and VMDK) and as an .ova, its disk as qcow2, and the
// Linux guest's raw disk.
func remoteTree(t *testing.T, g *testenv.Guests) *remotetest.Server {
	t.Helper()
	testenv.NeedCommands(t, "qemu-img")
	vmx := g.VM(t, testenv.VMBootSector)
	root := t.TempDir()
	ova := makeOVA(t, vmx, t.TempDir())
	for link, target := range map[string]string{
		"app.ova":   ova,
		"vm":        filepath.Dir(vmx),
		"linux.raw": g.LinuxBIOSRaw,
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", g.BootSectorRaw, filepath.Join(root, "boot.qcow2")).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	return remotetest.Start(t, root)
}

// TestRemoteHTTPSMount: `vmfs mount https://...` of an .ova, a .vmx, a
// VMDK, a qcow2 and a raw image serves disks equal to the local ones
// (qemu-img compare), the boot sector guest boots from the OVA's mount,
// and status shows the remote source's counters.
func TestRemoteHTTPSMount(t *testing.T) {
	g := testenv.Guest(t)
	srv := remoteTree(t, g)
	for _, c := range []struct {
		name, path, raw string
		boot            bool
	}{
		{"ova", "/app.ova", g.BootSectorRaw, true},
		{"vmx", "/vm/" + testenv.VMBootSector + ".vmx", g.BootSectorRaw, false},
		{"vmdk", "/vm/" + testenv.VMBootSector + ".vmdk", g.BootSectorRaw, false},
		{"qcow2", "/boot.qcow2", g.BootSectorRaw, false},
		{"raw", "/linux.raw", g.LinuxBIOSRaw, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := mountVM(t, srv.URL+c.path, t.TempDir(), "--format", "qcow2", "--thumbprint", srv.Thumbprint)
			compareDisk(t, m.Disks[0], c.raw)
			out, err := testenv.VMFS(t, "status", m.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), "remote source "+srv.URL+c.path) || !strings.Contains(string(out), "requests") {
				t.Errorf("status lacks the remote source's counters:\n%s", out)
			}
			if !c.boot {
				return
			}
			vm := testenv.BootDomainXML(t, m.XML, testenv.AccelTiny())
			vm.WaitFor(t, testenv.BootSectorEnd, testenv.BootTimeout())
			if want := testenv.BootSectorRead + g.BootSectorText; !strings.Contains(vm.Output(), want) {
				t.Fatalf("serial lacks %q:\n%s", want, vm.Output())
			}
		})
	}
}

// TestRemoteHTTPSMaterialize: `vmfs materialize https://....ova` writes
// the disk the local OVA gives (qemu-img compare).
func TestRemoteHTTPSMaterialize(t *testing.T) {
	g := testenv.Guest(t)
	srv := remoteTree(t, g)
	dest := filepath.Join(t.TempDir(), "out")
	materializeTo(t, srv.URL+"/app.ova", dest, "--to", "qemu", "--format", "qcow2", "--thumbprint", srv.Thumbprint)
	disks, _ := filepath.Glob(filepath.Join(dest, "*-disk0.qcow2"))
	if len(disks) != 1 {
		t.Fatalf("materialize wrote %v", disks)
	}
	compareDisk(t, testenv.Disk{Path: disks[0], Format: "qcow2"}, g.BootSectorRaw)
}

// TestRemoteHTTPSRefused: a server that ignores ranges, a wrong
// thumbprint and an unverifiable certificate are refused with one line
// saying so; a malformed --thumbprint or --cache-size is a usage error.
func TestRemoteHTTPSRefused(t *testing.T) {
	dir := t.TempDir()
	testenv.SmallRaw(t, filepath.Join(dir, "d.raw"))
	srv := remotetest.Start(t, dir)
	url := srv.URL + "/d.raw"
	for _, c := range []struct {
		name     string
		args     []string
		noRanges bool
		want     string
		code     int
	}{
		{"no ranges", []string{"--thumbprint", srv.Thumbprint}, true, "server does not support range requests; vmfs reads in place and will not download the whole file", 1},
		{"wrong thumbprint", []string{"--thumbprint", strings.Repeat("0", 64)}, false, "does not match --thumbprint", 1},
		{"unverified", nil, false, "certificate", 1},
		{"bad thumbprint", []string{"--thumbprint", "xyz"}, false, "--thumbprint", 2},
		{"bad cache size", []string{"--cache-size", "12Q"}, false, "--cache-size", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv.NoRanges.Store(c.noRanges)
			t.Cleanup(func() { srv.NoRanges.Store(false) })
			cmd := exec.Command(testenv.BuildVMFS(t), append(append([]string{"inspect"}, c.args...), url)...)
			var e bytes.Buffer
			cmd.Stderr = &e
			err := cmd.Run()
			stderr := e.String()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.code {
				t.Fatalf("err = %v, want exit %d\n%s", err, c.code, stderr)
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n"); lines > 0 {
				t.Errorf("the error is %d lines:\n%s", lines+1, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, stderr)
			}
		})
	}
}

// TestRemoteHTTPSServerGone: with the server stopped, a read of the
// mount that the cache cannot answer fails with EIO (never wrong bytes);
// once the server is back, the same read gives the right bytes.
func TestRemoteHTTPSServerGone(t *testing.T) {
	g := testenv.Guest(t)
	dir := t.TempDir()
	if err := os.Symlink(g.LinuxBIOSRaw, filepath.Join(dir, "linux.raw")); err != nil {
		t.Fatal(err)
	}
	srv := remotetest.Start(t, dir)
	m := mountVM(t, srv.URL+"/linux.raw", t.TempDir(), "--format", "raw", "--thumbprint", srv.Thumbprint, "--cache-size", "4M")
	want, err := os.ReadFile(g.LinuxBIOSRaw)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(m.Disks[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	buf := make([]byte, 64<<10)
	if _, err := f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, want[:len(buf)]) {
		t.Fatalf("first read: %v", err)
	}
	srv.Stop()
	const off = 40 << 20
	n, err := f.ReadAt(buf, off)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with the server gone: %d bytes, %v; want EIO", n, err)
	}
	if n > 0 && !bytes.Equal(buf[:n], want[off:off+n]) {
		t.Fatal("wrong bytes with the server gone")
	}
	srv.Restart(t)
	if _, err := f.ReadAt(buf, off); err != nil || !bytes.Equal(buf, want[off:off+len(buf)]) {
		t.Fatalf("read once the server is back: %v", err)
	}
}
