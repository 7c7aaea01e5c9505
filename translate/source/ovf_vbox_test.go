package source

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

const dispatchOVF = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="d.raw" ovf:id="f1"/></References>
  <DiskSection><Info/><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="4096"/></DiskSection>
  <VirtualSystem ovf:id="o"><Info/><VirtualHardwareSection><Info/>
    <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>20</rasd:ResourceType></Item>
    <Item><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
  </VirtualHardwareSection></VirtualSystem>
</Envelope>`

const dispatchVBox = `<?xml version="1.0"?>
<VirtualBox xmlns="http://www.virtualbox.org/" version="1.16-linux"><Machine uuid="{11111111-2222-3333-4444-555555555555}" name="v" OSType="Other">
<MediaRegistry><HardDisks><HardDisk uuid="{aaaaaaaa-0000-0000-0000-000000000001}" location="d.raw" format="RAW"/></HardDisks></MediaRegistry>
<Hardware><CPU count="2"/><Memory RAMSize="256"/></Hardware>
<StorageControllers><StorageController name="SATA" type="AHCI"><AttachedDevice type="HardDisk" port="0" device="0"><Image uuid="{aaaaaaaa-0000-0000-0000-000000000001}"/></AttachedDevice></StorageController></StorageControllers>
</Machine></VirtualBox>`

// TestLoadOVFVBox: .ovf, .ova and .vbox sources, under their own names
// and under others, reach their parsers.
func TestLoadOVFVBox(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("d.raw", make([]byte, 4096))
	var ova bytes.Buffer
	tw := tar.NewWriter(&ova)
	for _, f := range []struct {
		name string
		data []byte
	}{{"o.ovf", []byte(dispatchOVF)}, {"d.raw", make([]byte, 4096)}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg})
		tw.Write(f.data)
	}
	tw.Close()
	cases := []struct {
		file, format, name string
		data               []byte
	}{
		{"a.ovf", "ovf", "o", []byte(dispatchOVF)},
		{"a.xml", "ovf", "o", []byte(dispatchOVF)},
		{"a.ova", "ova", "o", ova.Bytes()},
		{"a.bin", "ova", "o", ova.Bytes()},
		{"a.vbox", "vbox", "v", []byte(dispatchVBox)},
		{"a-vbox.xml", "vbox", "v", []byte(dispatchVBox)},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			m, err := Load(write(c.file, c.data))
			if err != nil {
				t.Fatal(err)
			}
			if m.SourceFormat != c.format || m.Name != c.name || len(m.Disks) != 1 {
				t.Fatalf("format %s name %s disks %d", m.SourceFormat, m.Name, len(m.Disks))
			}
		})
	}
}
