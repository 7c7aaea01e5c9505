package partscan

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// ntfsVolume returns the first bytes of an NTFS volume as Windows lays
// it out (512-byte sectors, 4 KiB clusters, 1 KiB MFT records, the MFT
// at cluster 4) whose $Volume record carries flags; torn breaks the
// record's update sequence.
func ntfsVolume(flags uint16, torn bool) []byte {
	le := binary.LittleEndian
	v := make([]byte, 64<<10)
	copy(v, "\xeb\x52\x90NTFS    ")
	le.PutUint16(v[11:], 512)
	v[13] = 8               // sectors per cluster
	le.PutUint64(v[48:], 4) // MFT cluster
	v[64] = 0xF6            // 2^10-byte records
	rec := v[4*4096+3*1024:][:1024]
	copy(rec, "FILE")
	le.PutUint16(rec[4:], 48) // update sequence array offset
	le.PutUint16(rec[6:], 3)  // 1 + one per 512 bytes
	le.PutUint16(rec[20:], 56)
	a := rec[56:]
	le.PutUint32(a[0:], 0x70) // $VOLUME_INFORMATION
	le.PutUint32(a[4:], 40)
	a[8] = 0                 // resident
	le.PutUint32(a[16:], 12) // content length
	le.PutUint16(a[20:], 24) // content offset
	a[24+8], a[24+9] = 3, 1  // NTFS 3.1
	le.PutUint16(a[24+10:], flags)
	le.PutUint32(rec[96:], 0xFFFFFFFF)
	// The update sequence: number 7 at the end of each 512-byte stride,
	// the bytes it covers in the array.
	le.PutUint16(rec[48:], 7)
	copy(rec[50:52], rec[510:512])
	copy(rec[52:54], rec[1022:1024])
	le.PutUint16(rec[510:], 7)
	le.PutUint16(rec[1022:], 7)
	if torn {
		le.PutUint16(rec[1022:], 8)
	}
	return v
}

// TestNTFSDirty: the dirty flag of a volume's $Volume is found, a clean
// volume says nothing, a torn record is an error naming it.
func TestNTFSDirty(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flags   uint16
		torn    bool
		want    []string
		wantErr string
	}{
		{"dirty", 0x0001, false, []string{NTFSDirty}, ""},
		{"clean", 0x0000, false, nil, ""},
		{"other flags", 0x0020, false, nil, ""},
		{"torn", 0x0001, true, nil, "torn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Scan(layouts.Bytes("raw", ntfsVolume(tc.flags, tc.torn)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, f := range got {
				kinds = append(kinds, f.Kind)
			}
			if !slices.Equal(kinds, tc.want) {
				t.Errorf("found %v, want %v", kinds, tc.want)
			}
		})
	}
}
