package session

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/remote"
	"github.com/vmfs/vmfs/internal/remote/remotetest"
	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
)

const remoteOVF = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="disk.vmdk" ovf:id="f1"/></References>
  <DiskSection><Info/><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="8" ovf:capacityAllocationUnits="byte * 2^20"/></DiskSection>
  <VirtualSystem ovf:id="app"><Info/><Name>app</Name><VirtualHardwareSection><Info/>
    <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>20</rasd:ResourceType></Item>
    <Item><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
  </VirtualHardwareSection></VirtualSystem>
</Envelope>`

const remoteVMX = `.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
displayName = "web"
memsize = "256"
scsi0.present = "TRUE"
scsi0.virtualDev = "lsilogic"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "disk.vmdk"
ide1:0.present = "TRUE"
ide1:0.deviceType = "cdrom-image"
ide1:0.fileName = "tools.iso"
`

// remoteFixture writes, in a fresh directory, a raw disk with data, the
// same disk as qcow2, VMDK, VHDX, VHD and VDI, a qcow2 over the qcow2, a .vmx naming the VMDK, and an .ova
// holding an .ovf, the VMDK and a manifest.
func remoteFixture(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(8 << 20)
	for i := int64(0); i < 8; i += 3 {
		f.WriteAt(bytes.Repeat([]byte(fmt.Sprintf("remote block %d ", i)), 1000), i<<20)
	}
	f.Close()
	for _, c := range [][]string{
		{"convert", "-f", "raw", "-O", "qcow2", raw, filepath.Join(dir, "disk.qcow2")},
		{"convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", raw, filepath.Join(dir, "disk.vmdk")},
		{"convert", "-f", "raw", "-O", "vhdx", raw, filepath.Join(dir, "disk.vhdx")},
		{"convert", "-f", "raw", "-O", "vpc", raw, filepath.Join(dir, "disk.vhd")},
		{"convert", "-f", "raw", "-O", "vdi", raw, filepath.Join(dir, "disk.vdi")},
		{"create", "-q", "-f", "qcow2", "-b", "disk.qcow2", "-F", "qcow2", filepath.Join(dir, "top.qcow2")},
	} {
		if out, err := exec.Command("qemu-img", c...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v\n%s", c, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "web.vmx"), []byte(remoteVMX), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tools.iso"), make([]byte, 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	vmdk, err := os.ReadFile(filepath.Join(dir, "disk.vmdk"))
	if err != nil {
		t.Fatal(err)
	}
	sum := func(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
	mf := fmt.Sprintf("SHA256(app.ovf)= %s\nSHA256(disk.vmdk)= %s\n", sum([]byte(remoteOVF)), sum(vmdk))
	var ova bytes.Buffer
	tw := tar.NewWriter(&ova)
	for _, m := range []struct {
		name string
		b    []byte
	}{{"app.ovf", []byte(remoteOVF)}, {"app.mf", []byte(mf)}, {"disk.vmdk", vmdk}} {
		tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.b)), Typeflag: tar.TypeReg})
		tw.Write(m.b)
	}
	tw.Close()
	if err := os.WriteFile(filepath.Join(dir, "app.ova"), ova.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The same package unpacked: an .ovf and its manifest beside the disk.
	if err := os.WriteFile(filepath.Join(dir, "app.ovf"), []byte(remoteOVF), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.mf"), []byte(mf), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRemoteHTTPSSources: an https:// source of each kind (each disk
// format, a qcow2 with a backing file, a .vmx naming a VMDK, .ova, .ovf) builds the very files the same source
// read locally builds, and records its files by URL.
func TestRemoteHTTPSSources(t *testing.T) {
	dir := remoteFixture(t)
	srv := remotetest.Start(t, dir)
	for _, name := range []string{"disk.raw", "disk.qcow2", "disk.vmdk", "disk.vhdx", "disk.vhd", "disk.vdi", "top.qcow2", "web.vmx", "app.ova", "app.ovf"} {
		t.Run(name, func(t *testing.T) {
			o := Options{To: "libvirt", Format: "raw", Dir: "/mnt/view"}
			local, err := Open(filepath.Join(dir, name), o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { local.Close() })
			o.Remote = remote.Options{Thumbprint: srv.Thumbprint, CacheSize: 4 << 20}
			url := srv.URL + "/" + name
			rs, err := Open(url, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rs.Close() })
			want, got := contents(t, local.Files()), contents(t, rs.Files())
			for n := range got {
				if _, ok := want[n]; !ok && !strings.HasSuffix(n, ".warnings.txt") {
					t.Errorf("files remote %v, local %v", names(rs.Files()), names(local.Files()))
				}
			}
			for n, b := range want {
				g, ok := got[n]
				if !ok {
					t.Errorf("files remote %v, local %v", names(rs.Files()), names(local.Files()))
				}
				if strings.HasSuffix(n, ".xml") || strings.HasSuffix(n, ".txt") {
					// The domain names the source, the warnings differ
					// by the remote's own: compare the disks.
					continue
				}
				if !bytes.Equal(g, b) {
					t.Errorf("%s differs from the local source's", n)
				}
			}
			for _, c := range rs.View.Machine.CDROMs {
				if c.Path != "" {
					t.Errorf("a remote CD-ROM image is kept as %s", c.Path)
				}
			}
			if name == "web.vmx" && !strings.Contains(string(got["web.warnings.txt"])+warnings(rs), "SOURCE_REMOTE_CDROM") {
				t.Errorf("no SOURCE_REMOTE_CDROM warning: %s", warnings(rs))
			}
			r, ok := rs.Remote()
			if !ok || r.Name != url {
				t.Errorf("Remote() = %+v, %v", r, ok)
			}
			if st := r.Stats.Snapshot(); st.Requests == 0 || st.BytesFetched == 0 {
				t.Errorf("stats %+v", st)
			}
			for _, p := range rs.View.Sources.Paths() {
				if !strings.HasPrefix(p, srv.URL+"/") {
					t.Errorf("source %q is not a URL of the server", p)
				}
			}
			for _, sf := range rs.View.Sources.Files() {
				if sf.Dev != 0 || sf.Ino != 0 {
					t.Errorf("remote source %s recorded with dev/ino", sf.Path)
				}
			}
		})
	}
}

// TestRemoteStaysRemote: a remote descriptor that names a file by an
// absolute path finds it on the remote, never on this host, and a
// missing one is a clear error.
func TestRemoteStaysRemote(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(t.TempDir(), "secret.raw")
	if err := os.WriteFile(local, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	vmx := strings.Replace(remoteVMX, `"disk.vmdk"`, `"`+local+`"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "web.vmx"), []byte(vmx), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := remotetest.Start(t, dir)
	_, err := Open(srv.URL+"/web.vmx", Options{To: "libvirt", Dir: "/mnt/view", Remote: remote.Options{Thumbprint: srv.Thumbprint}})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("err = %v, want the disk missing on the remote", err)
	}
	if !strings.Contains(err.Error(), srv.URL) {
		t.Errorf("the error does not name the remote source: %v", err)
	}
}

// TestRemoteSchemes: URLs of unknown schemes are refused naming the
// scheme; Inspect reads an https:// source.
func TestRemoteSchemes(t *testing.T) {
	_, err := Open("ftp://h/x.ova", Options{To: "libvirt", Dir: "/mnt/view"})
	if err == nil || !strings.Contains(err.Error(), "ftp://") {
		t.Fatalf("err = %v", err)
	}
	for _, c := range []struct {
		src    string
		remote bool
	}{{"https://h/a", true}, {"vsphere://u@h/dc", true}, {"/tmp/a://b", false}, {"a.vmx", false}, {"1x://y", false}} {
		if got := IsRemote(c.src); got != c.remote {
			t.Errorf("IsRemote(%q) = %v", c.src, got)
		}
	}
	dir := remoteFixture(t)
	srv := remotetest.Start(t, dir)
	in, err := InspectRemote(srv.URL+"/app.ova", &layouts.Env{}, "", remote.Options{Thumbprint: srv.Thumbprint})
	if err != nil {
		t.Fatal(err)
	}
	if in.Machine.Name != "app" || len(in.Disks) != 1 {
		t.Fatalf("inspect: %s, %d disks", in.Machine.Name, len(in.Disks))
	}
	if in.Machine.Source != srv.URL+"/app.ova" || !strings.HasPrefix(in.Disks[0].Path, srv.URL+"/app.ova/") {
		t.Errorf("inspect names the source %s and its disk %s, not by URL", in.Machine.Source, in.Disks[0].Path)
	}
	found := false
	for _, w := range in.Machine.Warnings {
		found = found || w.Code == "OVF_MANIFEST_REMOTE"
	}
	if !found {
		t.Errorf("no OVF_MANIFEST_REMOTE warning: %v", in.Machine.Warnings)
	}
}

func names(fs []viewfile.File) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

func warnings(s *Session) string {
	var b strings.Builder
	for _, w := range s.View.Warnings {
		b.WriteString(w.String() + "\n")
	}
	return b.String()
}
