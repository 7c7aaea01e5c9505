package vbox

import (
	"os"
	"slices"
	"strings"
	"testing"

	corpusdir "github.com/vmfs/vmfs/internal/corpus"
)

// TestPreflightFacts: a .vbox's TPM and its snapshots, nested as
// VirtualBox nests them, reach the machine for the pre-flight report.
func TestPreflightFacts(t *testing.T) {
	const vm = `<VirtualBox xmlns="http://www.virtualbox.org/" version="1.19-linux"><Machine uuid="{11111111-2222-3333-4444-555555555555}" name="t" OSType="Windows11_64">
<MediaRegistry><HardDisks><HardDisk uuid="{aaaaaaaa-0000-0000-0000-000000000001}" location="d.vdi" format="VDI"/></HardDisks></MediaRegistry>
<Hardware><CPU count="2"/><Memory RAMSize="2048"/><Firmware type="EFI"/>%s
<StorageControllers><StorageController name="SATA" type="AHCI"><AttachedDevice type="HardDisk" port="0" device="0"><Image uuid="{aaaaaaaa-0000-0000-0000-000000000001}"/></AttachedDevice></StorageController></StorageControllers>
</Hardware>%s</Machine></VirtualBox>`
	for _, tc := range []struct {
		name, tpm, snaps string
		wantTPM          bool
		wantSnaps        []string
	}{
		{"plain", "", "", false, nil},
		{"tpm 2.0", `<TrustedPlatformModule type="v2_0" location=""/>`, "", true, nil},
		{"no tpm", `<TrustedPlatformModule type="None"/>`, "", false, nil},
		{"snapshots", "", `<Snapshot uuid="{1}" name="one"><Snapshots><Snapshot uuid="{2}" name="two"/></Snapshots></Snapshot>`, false, []string{"one", "two"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseBytes("/vm/t.vbox", []byte(strings.Replace(strings.Replace(vm, "%s", tc.tpm, 1), "%s", tc.snaps, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if m.TPM != tc.wantTPM || !slices.Equal(m.Snapshots, tc.wantSnaps) {
				t.Errorf("TPM %v, snapshots %q; want %v, %q", m.TPM, m.Snapshots, tc.wantTPM, tc.wantSnaps)
			}
		})
	}
	b, err := os.ReadFile(corpusdir.Path("vbox", "Marvint-dev__Samba-AD__Debian.vbox"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseBytes("/vm/Debian.vbox", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Snapshots) != 5 || m.Snapshots[0] != "Instantánea 1" {
		t.Errorf("corpus: snapshots %q, want Instantánea 1 to 5", m.Snapshots)
	}
}
