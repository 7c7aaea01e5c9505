package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMissingDisks: for every descriptor kind, a missing disk is listed
// by OpenMissing (what inspect uses), with the machine, and refused by
// Open (mount, materialize) naming the disk: the one check of
// translate.CheckDisks, made for all four parsers.
func TestMissingDisks(t *testing.T) {
	for _, tc := range []struct {
		name, file, text, where string
	}{
		{"vmx", "vm.vmx", ".encoding = \"UTF-8\"\nconfig.version = \"8\"\nvirtualHW.version = \"19\"\ndisplayName = \"vm\"\nmemsize = \"256\"\nscsi0.present = \"TRUE\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"gone.vmdk\"\n", "scsi0:0"},
		{"libvirt", "vm.xml", `<domain type="kvm"><name>vm</name><memory unit="MiB">256</memory><devices><disk type="file" device="disk"><source file="DIR/gone.qcow2"/><target dev="vda" bus="virtio"/></disk></devices></domain>`, "virtio0:0"},
		{"vbox", "vm.vbox", `<VirtualBox xmlns="http://www.virtualbox.org/" version="1.19-linux"><Machine uuid="{11111111-2222-3333-4444-555555555555}" name="vm" OSType="Debian_64"><MediaRegistry><HardDisks><HardDisk uuid="{aaaaaaaa-0000-0000-0000-000000000001}" location="gone.vdi" format="VDI"/></HardDisks></MediaRegistry><Hardware><CPU count="1"/><Memory RAMSize="256"/><StorageControllers><StorageController name="SATA" type="AHCI"><AttachedDevice type="HardDisk" port="0" device="0"><Image uuid="{aaaaaaaa-0000-0000-0000-000000000001}"/></AttachedDevice></StorageController></StorageControllers></Hardware></Machine></VirtualBox>`, "sata0:0"},
		{"ovf", "vm.ovf", `<?xml version="1.0"?><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"><References><File ovf:href="gone.vmdk" ovf:id="f1"/></References><DiskSection><Info>d</Info><Disk ovf:capacity="8" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d1" ovf:fileRef="f1"/></DiskSection><VirtualSystem ovf:id="vm"><Info>v</Info><Name>vm</Name><VirtualHardwareSection><Info>h</Info><Item><rasd:ElementName>mem</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:VirtualQuantity>256</rasd:VirtualQuantity></Item><Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item><Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>disk</rasd:ElementName><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item></VirtualHardwareSection></VirtualSystem></Envelope>`, "scsi0:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, tc.file)
			if err := os.WriteFile(src, []byte(strings.ReplaceAll(tc.text, "DIR", dir)), 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := OpenMissing(src, nil)
			if err != nil {
				t.Fatalf("OpenMissing: %v", err)
			}
			if l.Machine.Name != "vm" || len(l.Missing) != 1 || l.Missing[0].Where != tc.where || !strings.HasPrefix(filepath.Base(l.Missing[0].Path), "gone.") {
				t.Errorf("OpenMissing: machine %q, missing %+v", l.Machine.Name, l.Missing)
			}
			_, err = Open(src, nil)
			if err == nil || !strings.Contains(err.Error(), "on "+tc.where+" is missing") || !strings.Contains(err.Error(), "gone.") {
				t.Errorf("Open: err = %v", err)
			}
		})
	}
}
