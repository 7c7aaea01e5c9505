package partscan

import (
	"slices"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/partscan/partscantest"
)

// TestNTFS: the dirty flag of a volume's $Volume and a hibernation file
// in its root are found; a clean volume says nothing; a torn record is an
// error naming it.
func TestNTFS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flags   uint16
		torn    bool
		hiber   []byte
		want    []string
		wantErr string
	}{
		{"dirty", 0x0001, false, nil, []string{NTFSDirty}, ""},
		{"clean", 0x0000, false, nil, nil, ""},
		{"other flags", 0x0020, false, nil, nil, ""},
		{"hibernated", 0x0000, false, []byte("HIBR"), []string{Hibernated}, ""},
		{"resumed already", 0x0000, false, []byte("wake"), nil, ""},
		{"dirty and hibernated", 0x0001, false, []byte("hibr"), []string{NTFSDirty, Hibernated}, ""},
		{"hiberfil zeroed", 0x0000, false, []byte{0, 0, 0, 0}, nil, ""},
		{"torn", 0x0001, true, nil, nil, "torn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Scan(layouts.Bytes("raw", partscantest.NTFSVolume(tc.flags, tc.torn, tc.hiber, false)))
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

// TestNTFSIndexBlock: hiberfil.sys listed in an index block of the root,
// not in its record, is found.
func TestNTFSIndexBlock(t *testing.T) {
	got, err := Scan(layouts.Bytes("raw", partscantest.NTFSVolume(0, false, []byte("HIBR"), true)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Kind != Hibernated {
		t.Errorf("found %+v, want hibernated", got)
	}
}

// FuzzScan: damaged NTFS structures and partition tables give an error
// or findings, never a panic or a read outside the disk.
func FuzzScan(f *testing.F) {
	f.Add(partscantest.NTFSVolume(1, false, []byte("HIBR"), false))
	f.Add(partscantest.NTFSVolume(0, false, []byte("HIBR"), true))
	f.Fuzz(func(t *testing.T, b []byte) {
		Scan(layouts.Bytes("raw", b))
	})
}
