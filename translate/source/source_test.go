package source

import (
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/translate"
)

const linuxType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

// rawImage writes a raw disk of size bytes (partly random, with zero runs)
// and partitions it with sfdisk when script is not "".
func rawImage(t *testing.T, p string, size int64, script string) {
	t.Helper()
	b := make([]byte, size)
	r := rand.New(rand.NewSource(size))
	for off := int64(0); off < size; off += 32 << 10 {
		if (off/(32<<10))%2 == 0 {
			r.Read(b[off:min(off+16<<10, size)])
		}
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if script != "" {
		if _, err := exec.LookPath("sfdisk"); err != nil {
			t.Skip("sfdisk not installed")
		}
		cmd := exec.Command("sfdisk", "-q", "--wipe", "always", p)
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sfdisk: %v %s", err, out)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	disk := filepath.Join(dir, "disk.raw")
	rawImage(t, disk, 3<<20+3*512, "label: gpt\nsize=1MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\ntype="+linuxType+"\n")
	bios := filepath.Join(dir, "bios.img")
	rawImage(t, bios, 2<<20+512, "label: dos\ntype=83\n")
	blank := filepath.Join(dir, "blank.bin")
	rawImage(t, blank, 1<<20+1000, "")
	qcow := filepath.Join(dir, "vm disk.qcow2")
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", disk, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	vmxText := "config.version = \"8\"\nvirtualHW.version = \"14\"\ndisplayName = \"from vmx\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"disk.raw\"\n"
	domXML := "<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE.\n-->\n<domain type='kvm'><name>from-xml</name><memory unit='MiB'>512</memory><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='" + qcow + "'/><target dev='vda' bus='virtio'/></disk></devices></domain>\n"

	tests := []struct {
		name    string
		path    string
		wantErr string
		check   func(t *testing.T, m *translate.Machine)
	}{
		{name: "vmx", path: write("a.vmx", vmxText), check: func(t *testing.T, m *translate.Machine) {
			if m.SourceFormat != "vmx" || m.Name != "from vmx" || m.Disks[0].Path != disk {
				t.Errorf("%+v", m)
			}
		}},
		{name: "vmx without its extension", path: write("a.cfg", vmxText), check: func(t *testing.T, m *translate.Machine) {
			if m.SourceFormat != "vmx" {
				t.Errorf("%+v", m)
			}
		}},
		{name: "vmx with a missing disk", path: write("b.vmx", strings.ReplaceAll(vmxText, "disk.raw", "gone.vmdk")), wantErr: "disk gone.vmdk on scsi0:0 is missing"},
		{name: "libvirt xml", path: write("a.xml", domXML), check: func(t *testing.T, m *translate.Machine) {
			if m.SourceFormat != "libvirt" || m.Name != "from-xml" || m.Disks[0].Path != qcow {
				t.Errorf("%+v", m)
			}
		}},
		{name: "libvirt xml under another name", path: write("domain.txt", domXML), check: func(t *testing.T, m *translate.Machine) {
			if m.SourceFormat != "libvirt" {
				t.Errorf("%+v", m)
			}
		}},
		{name: "bare raw disk with ESP", path: disk, check: func(t *testing.T, m *translate.Machine) {
			if m.SourceFormat != "disk" || m.Name != "disk" || m.Firmware != translate.UEFI || m.CPUs != BareDiskCPUs || m.MemoryMiB != BareDiskMemoryMiB {
				t.Errorf("%+v", m)
			}
			if len(m.Disks) != 1 || m.Disks[0].Path != disk || m.Disks[0].Format != "raw" || m.Disks[0].Size != 3<<20+3*512 {
				t.Errorf("disks %+v", m.Disks)
			}
			if len(m.NICs) != 1 || m.NICs[0].MAC != "" {
				t.Errorf("nics %+v", m.NICs)
			}
			if len(m.Warnings) == 0 || m.Warnings[len(m.Warnings)-1].Code != WarnBareDisk {
				t.Errorf("warnings %v", m.Warnings)
			}
		}},
		{name: "bare qcow2 disk", path: qcow, check: func(t *testing.T, m *translate.Machine) {
			if m.Name != "vm disk" || m.Firmware != translate.UEFI || m.Disks[0].Format != "qcow2" {
				t.Errorf("%+v", m)
			}
		}},
		{name: "bare MBR disk", path: bios, check: func(t *testing.T, m *translate.Machine) {
			if m.Firmware != translate.BIOS {
				t.Errorf("%+v", m)
			}
		}},
		{name: "bare disk without a table", path: blank, check: func(t *testing.T, m *translate.Machine) {
			if m.Firmware != translate.BIOS || m.Name != "blank" {
				t.Errorf("%+v", m)
			}
		}},
		{name: "xml that is no domain", path: write("net.xml", "<network><name>n</name></network>"), wantErr: "not a libvirt <domain>"},
		{name: "directory", path: dir, wantErr: "is a directory"},
		{name: "missing", path: filepath.Join(dir, "none.vmx"), wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Load(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m)
		})
	}
}
