package partscan

import (
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/partscan/partscantest"
)

// TestScanWholeDisk: a disk without a partition table is one volume; an
// encrypted header at its start is found, plain bytes are not.
func TestScanWholeDisk(t *testing.T) {
	for _, tc := range []struct {
		name, head, want string
	}{
		{"luks", "LUKS\xba\xbe\x00\x01", LUKS},
		{"bitlocker", "\xeb\x58\x90-FVE-FS-", BitLocker},
		{"clean ntfs", string(partscantest.NTFSVolume(0, false, nil, false)), ""},
		{"zeros", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, 64<<10)
			copy(b, tc.head)
			got, err := Scan(layouts.Bytes("raw", b))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("found %+v", got)
			case tc.want != "" && (len(got) != 1 || got[0].Kind != tc.want || got[0].Partition != 0):
				t.Errorf("found %+v, want one %s on the whole disk", got, tc.want)
			}
		})
	}
}
