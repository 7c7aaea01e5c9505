package vsphere_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"testing"

	"github.com/vmfs/vmfs/internal/corpus"
	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/internal/vsphere/vspheretest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// mountStatus is one mount of `vmfs status --json`.
type mountStatus struct {
	Mountpoint string `json:"mountpoint"`
	Source     string `json:"source"`
	PID        int    `json:"pid"`
}

func statusOf(t *testing.T, mnt string) (mountStatus, string) {
	t.Helper()
	out, err := testenv.VMFS(t, "status", "--json", mnt)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Mounts []mountStatus }
	if err := json.Unmarshal(out, &doc); err != nil || len(doc.Mounts) != 1 {
		t.Fatalf("vmfs status --json %s: %v\n%s", mnt, err, out)
	}
	text, err := testenv.VMFS(t, "status")
	if err != nil {
		t.Fatal(err)
	}
	return doc.Mounts[0], string(out) + string(text)
}

// compare checks with qemu-img compare that the raw image in the mount
// holds what the local VMDK holds.
func compare(t *testing.T, mounted, local string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "vmdk", mounted, local).CombinedOutput()
	if err != nil {
		t.Errorf("qemu-img compare %s %s: %v\n%s", mounted, local, err, out)
	}
}

// TestMount mounts a VM on vcsim by its vsphere:// URL: each disk (a
// monolithicSparse VMDK, a flat one, a delta on a base) equals the
// local file it was uploaded from, and the password shows nowhere: not in
// the daemon's command line, its log, or vmfs status.
func TestMount(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img", "ps")
	srv := vspheretest.Start(t)
	dir, disks := vspheretest.TestVM(t, 16)
	onHost := srv.AddVM(t, "testvm", dir, disks)
	t.Setenv("VMFS_VSPHERE_PASSWORD", vspheretest.Password)
	url := srv.URL("vm/testvm")
	srv.RequireSession(t, "testvm")
	t.Setenv("VMFS_VSPHERE_PASSWORD", "not-the-password")
	_, err := testenv.TryMount(t, "--read-only", "--thumbprint", srv.Thumbprint, url, testenv.MountDir(t))
	if err == nil || !strings.HasSuffix(err.Error(), url+": login refused: wrong user or password") || strings.Contains(err.Error(), "not-the-password") {
		t.Fatalf("mount with a wrong password: %v", err)
	}
	t.Setenv("VMFS_VSPHERE_PASSWORD", vspheretest.Password)
	before := testenv.SHA256Tree(t, onHost)
	mnt := testenv.Mount(t, "--read-only", "--format", "raw", "--thumbprint", srv.Thumbprint, url, testenv.MountDir(t))
	// The host ends the mount's session: its reads log in again.
	srv.ExpireSessions(t)
	for i, d := range disks {
		compare(t, filepath.Join(mnt, fmt.Sprintf("testvm-disk%d.raw", i)), filepath.Join(dir, d))
	}
	// materialize writes the same disks; inspect reads the VM too.
	out := t.TempDir()
	if _, err := testenv.VMFS(t, "materialize", "--format", "raw", "--progress", "none", "--thumbprint", srv.Thumbprint, url, out); err != nil {
		t.Fatal(err)
	}
	for i, d := range disks {
		compare(t, filepath.Join(out, fmt.Sprintf("testvm-disk%d.raw", i)), filepath.Join(dir, d))
	}
	js, err := testenv.VMFS(t, "inspect", "--json", "--thumbprint", srv.Thumbprint, url)
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		DiskInfo []struct {
			Chain []struct{ File string }
		} `json:"disk_info"`
	}
	if err := json.Unmarshal(js, &in); err != nil || len(in.DiskInfo) != 3 || len(in.DiskInfo[2].Chain) != 2 {
		t.Errorf("vmfs inspect --json: %v\n%s", err, js)
	}
	// Nothing was written to the datastore.
	testenv.CheckSame(t, "the VM's folder on the datastore", before, testenv.SHA256Tree(t, onHost))
	st, status := statusOf(t, mnt)
	if st.Source != url {
		t.Errorf("status source %q, want %q", st.Source, url)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := exec.Command("ps", "-eo", "args").Output()
	if err != nil || !bytes.Contains(ps, []byte(url)) {
		t.Errorf("ps does not list the daemon serving %s: %v", url, err)
	}
	logged, _ := os.ReadFile(mount.LogPath(mnt))
	for what, b := range map[string][]byte{"the daemon's command line": cmdline, "ps": ps, "the log": logged, "vmfs status": []byte(status)} {
		if bytes.Contains(b, []byte(vspheretest.Password)) {
			t.Errorf("the password shows in %s", what)
		}
	}
}

// TestMountHostGone: the host going away mid-use makes reads fail with
// EIO, never with wrong bytes, and reads work again once it is back.
func TestMountHostGone(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	srv := vspheretest.Start(t)
	dir, disks := vspheretest.TestVM(t, 64)
	srv.AddVM(t, "testvm", dir, disks)
	proxy := srv.StartProxy(t)
	t.Setenv("VMFS_VSPHERE_PASSWORD", vspheretest.Password)
	url := "vsphere://" + vspheretest.User + "@" + proxy.Addr + "/" + vspheretest.Datacenter + "/vm/testvm"
	mnt := testenv.Mount(t, "--read-only", "--format", "raw", "--thumbprint", srv.Thumbprint, url, testenv.MountDir(t))
	// disk1 is flat: every read of it goes to the host; 40 MiB is far
	// from what opening the disk read (its first and last blocks).
	f, err := os.Open(filepath.Join(mnt, "testvm-disk1.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// One FUSE read per ReadAt: no kernel read-ahead to retry too.
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
	proxy.Down()
	buf := make([]byte, 4<<10)
	start := time.Now()
	n, err := f.ReadAt(buf, 40<<20)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with the host gone: %d bytes, %v; want EIO", n, err)
	}
	t.Logf("EIO after %v", time.Since(start))
	proxy.Up(t)
	if n, err := f.ReadAt(buf, 40<<20); err != nil || n != len(buf) || !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Fatalf("read with the host back: %d bytes, %v, first bytes % x", n, err, buf[:8])
	}
	if n, err := f.ReadAt(buf, 2<<20); err != nil || n != len(buf) || !bytes.Equal(buf, bytes.Repeat([]byte{0x33}, len(buf))) {
		t.Fatalf("read with the host back: %d bytes, %v, first bytes % x", n, err, buf[:8])
	}
	compare(t, filepath.Join(mnt, "testvm-disk1.raw"), filepath.Join(dir, "disk1.vmdk"))
}

// TestMountPoweredOn: a running VM is refused; with --snapshot it is read
// through a snapshot, named in the log, that the unmount removes.
func TestMountPoweredOn(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	srv := vspheretest.Start(t)
	dir, disks := vspheretest.TestVM(t, 8)
	srv.AddVM(t, "testvm", dir, disks)
	srv.PowerOn(t, "testvm")
	t.Setenv("VMFS_VSPHERE_PASSWORD", vspheretest.Password)
	url := srv.URL("vm/testvm")
	_, err := testenv.TryMount(t, "--read-only", "--thumbprint", srv.Thumbprint, url, testenv.MountDir(t))
	if err == nil || !strings.Contains(err.Error(), "VM testvm is powered on") || !strings.Contains(err.Error(), "--snapshot") {
		t.Fatalf("powered-on VM mounted, or not the error: %v", err)
	}
	if got := srv.Snapshots(t, "testvm"); len(got) != 0 {
		t.Fatalf("a refused mount left snapshots: %q", got)
	}
	mnt := testenv.Mount(t, "--read-only", "--format", "raw", "--snapshot", "--thumbprint", srv.Thumbprint, url, testenv.MountDir(t))
	snaps := srv.Snapshots(t, "testvm")
	if len(snaps) != 1 || !strings.HasPrefix(snaps[0], "vmfs-") {
		t.Fatalf("snapshots while mounted: %q", snaps)
	}
	logged, _ := os.ReadFile(mount.LogPath(mnt))
	if !strings.Contains(string(logged), snaps[0]) {
		t.Errorf("the log does not name the snapshot %s:\n%s", snaps[0], logged)
	}
	st, _ := statusOf(t, mnt)
	if !strings.Contains(st.Source, snaps[0]) {
		t.Errorf("status source %q does not name the snapshot %s", st.Source, snaps[0])
	}
	for i, d := range disks {
		compare(t, filepath.Join(mnt, fmt.Sprintf("testvm-disk%d.raw", i)), filepath.Join(dir, d))
	}
	if err := testenv.Unmount(t, mnt); err != nil {
		t.Fatal(err)
	}
	if got := srv.Snapshots(t, "testvm"); len(got) != 0 {
		t.Errorf("snapshots after unmount: %q", got)
	}
}

// TestBootFromVSphere boots the test guest's boot-sector VM, uploaded to
// vcsim, from its vsphere:// mount under QEMU (TCG where KVM is hidden).
func TestBootFromVSphere(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img", "qemu-system-x86_64")
	g := testenv.Guest(t)
	vmx := g.VM(t, testenv.VMBootSector)
	srv := vspheretest.Start(t)
	srv.AddVM(t, testenv.VMBootSector, filepath.Dir(vmx), []string{"bootsector.vmdk"})
	t.Setenv("VMFS_VSPHERE_PASSWORD", vspheretest.Password)
	mnt := testenv.Mount(t, "--to", "libvirt", "--format", "raw", "--thumbprint", srv.Thumbprint, srv.URL("vm/"+testenv.VMBootSector), testenv.MountDir(t))
	xmls, _ := filepath.Glob(filepath.Join(mnt, "*.xml"))
	if len(xmls) != 1 {
		t.Fatalf("the mount holds %d .xml files", len(xmls))
	}
	disk, _ := filepath.Glob(filepath.Join(mnt, "*-disk0.raw"))
	if len(disk) != 1 {
		t.Fatalf("the mount holds %d disks", len(disk))
	}
	out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", disk[0], g.BootSectorRaw).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img compare: %v\n%s", err, out)
	}
	vm := testenv.BootDomainXML(t, xmls[0], testenv.AccelTiny())
	d := vm.WaitFor(t, testenv.BootSectorEnd, testenv.BootTimeout())
	if want := testenv.BootSectorRead + g.BootSectorText; !strings.Contains(vm.Output(), want) {
		t.Fatalf("serial lacks %q:\n%s", want, vm.Output())
	}
	t.Logf("booted from the vsphere:// mount in %v", d)
}

// TestMountPasswordPipe: --password-file may be a pipe, read once: the
// --daemon child gets the password in its environment, not the pipe.
func TestMountPasswordPipe(t *testing.T) {
	srv := vspheretest.Start(t)
	dir, disks := vspheretest.TestVM(t, 8)
	srv.AddVM(t, "testvm", dir, disks)
	t.Setenv("VMFS_VSPHERE_PASSWORD", "")
	fifo := filepath.Join(t.TempDir(), "pw")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString(vspheretest.Password + "\n")
			f.Close()
		}
		wrote <- err
	}()
	t.Cleanup(func() {
		// Unblock the writer should vmfs never have opened the pipe.
		if f, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-wrote
	})
	mnt := testenv.Mount(t, "--read-only", "--format", "raw", "--password-file", fifo, "--thumbprint", srv.Thumbprint, srv.URL("vm/testvm"), testenv.MountDir(t))
	compare(t, filepath.Join(mnt, "testvm-disk1.raw"), filepath.Join(dir, "disk1.vmdk"))
	st, _ := statusOf(t, mnt)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cmdline, []byte(vspheretest.Password)) || bytes.Contains(cmdline, []byte("password-file")) {
		t.Errorf("the daemon's command line: %q", cmdline)
	}
}

// TestMountSESparseAndAbsolute: a VM whose .vmx names a disk of another
// folder by its absolute /vmfs/volumes path, as ESXi writes such a
// reference, and a seSparse disk (the corpus sample under a descriptor):
// both resolve in the datastore namespace and read as the local files do.
func TestMountSESparseAndAbsolute(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	gz, err := os.Open(corpus.Path("images", "fox-it__dissect.hypervisor__sesparse.vmdk.gz"))
	if err != nil {
		testenv.Need(t, "no corpus: %v", err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		t.Fatal(err)
	}
	srv := vspheretest.Start(t)
	dir, disks := vspheretest.TestVM(t, 8)
	srv.AddVM(t, "testvm", dir, disks)
	se := t.TempDir()
	ext, err := os.Create(filepath.Join(se, "se-sesparse.vmdk"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(ext, zr); err != nil {
		t.Fatal(err)
	}
	ext.Close()
	files := map[string]string{
		"se.vmdk": "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"seSparse\"\n\nRW 1048576 SESPARSE \"se-sesparse.vmdk\"\n",
		"sevm.vmx": ".encoding = \"UTF-8\"\ndisplayName = \"sevm\"\nguestOS = \"other-64\"\nmemsize = \"256\"\nscsi0.present = \"TRUE\"\nscsi0.virtualDev = \"lsilogic\"\n" +
			"scsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"se.vmdk\"\n" +
			"scsi0:1.present = \"TRUE\"\nscsi0:1.fileName = \"/vmfs/volumes/" + vspheretest.Datastore + "/testvm/disk2.vmdk\"\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(se, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv.AddVM(t, "sevm", se, []string{"se.vmdk", "../testvm/disk2.vmdk"})
	t.Setenv("VMFS_VSPHERE_PASSWORD", vspheretest.Password)
	mnt := testenv.Mount(t, "--read-only", "--format", "raw", "--thumbprint", srv.Thumbprint, srv.URL("vm/sevm"), testenv.MountDir(t))
	compare(t, filepath.Join(mnt, "sevm-disk1.raw"), filepath.Join(dir, "disk2.vmdk"))
	// The seSparse disk as vmfs reads the same files locally (qemu-img
	// reads this sample's header as 1 GiB, its descriptor says 512 MiB).
	local := testenv.Mount(t, "--read-only", "--format", "raw", filepath.Join(se, "se.vmdk"), testenv.MountDir(t))
	if out, err := exec.Command("cmp", filepath.Join(mnt, "sevm-disk0.raw"), filepath.Join(local, "se-disk0.raw")).CombinedOutput(); err != nil {
		t.Errorf("the seSparse disk read from vcsim differs from the local one: %v %s", err, out)
	}
}
