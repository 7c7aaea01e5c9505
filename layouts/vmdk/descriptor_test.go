package vmdk

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseDescriptor(t *testing.T) {
	cases := []struct {
		name string
		text string
		want Descriptor
	}{
		{
			name: "workstation",
			text: "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=86bd7e33\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n\n# Extent description\nRW 8323072 SPARSE \"Windows 10 x64-s001.vmdk\"\nRW 983040 SPARSE \"Windows 10 x64-s002.vmdk\"\n\n# The Disk Data Base \n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.geometry.cylinders = \"10443\"\n",
			want: Descriptor{Version: "1", CID: 0x86bd7e33, HasCID: true, ParentCID: noCID, CreateType: "twoGbMaxExtentSparse",
				Extents: []ExtentLine{{"RW", 8323072, "SPARSE", "Windows 10 x64-s001.vmdk", 0}, {"RW", 983040, "SPARSE", "Windows 10 x64-s002.vmdk", 0}},
				DDB:     map[string]string{"adapterType": "lsilogic", "geometry.cylinders": "10443"}},
		},
		{
			name: "crlf-tabs-spaces-bom",
			text: "\xef\xbb\xbf# Disk DescriptorFile\r\n  version = 1 \r\n\tCID = 0000abcd\r\nparentCID=12345678\r\ncreateType = \"vmfsSparse\"\r\nparentFileNameHint = \"base dir/base.vmdk\"\r\n  RW\t4096\tVMFSSPARSE\t\"a b-delta.vmdk\"  \r\nrdonly 100 zero\r\nRW 20 FLAT \"x-flat.vmdk\" 7\r\nRW 20 FLAT bare-flat.vmdk 9\r\nddb.uuid=\"60 00 C2 9b\"\r\n",
			want: Descriptor{Version: "1", CID: 0xabcd, HasCID: true, ParentCID: 0x12345678, CreateType: "vmfsSparse", ParentFileNameHint: "base dir/base.vmdk",
				Extents: []ExtentLine{{"RW", 4096, "VMFSSPARSE", "a b-delta.vmdk", 0}, {"RDONLY", 100, "ZERO", "", 0}, {"RW", 20, "FLAT", "x-flat.vmdk", 7}, {"RW", 20, "FLAT", "bare-flat.vmdk", 9}},
				DDB:     map[string]string{"uuid": "60 00 C2 9b"}},
		},
		{
			name: "nul-padded-embedded",
			text: "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\nRW 20 SPARSE \"d.vmdk\"\n\x00\x00\x00garbage",
			want: Descriptor{Version: "1", CID: 1, HasCID: true, ParentCID: noCID, CreateType: "monolithicSparse",
				Extents: []ExtentLine{{"RW", 20, "SPARSE", "d.vmdk", 0}}, DDB: map[string]string{}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseDescriptor("d.vmdk", []byte(c.text))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, c.want) {
				t.Errorf("got  %+v\nwant %+v", *got, c.want)
			}
		})
	}
}

func TestParseDescriptorErrors(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{"bad-cid", "CID=xyz\n", "bad CID"},
		{"bad-parent-cid", "parentCID=123456789\n", "bad parentCID"},
		{"bad-size", "RW -5 FLAT \"x\" 0\n", "bad extent size"},
		{"bad-offset", "RW 5 FLAT \"x\" -3\n", "bad extent offset"},
		{"no-type", "RW 5\n", "without type"},
		{"no-file", "RW 5 FLAT\n", "without file name"},
		{"open-quote", "RW 5 FLAT \"x\n", "unterminated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseDescriptor("d.vmdk", []byte(c.text))
			if err == nil {
				t.Fatal("parsed")
			}
			checkOneLine(t, err, c.want)
		})
	}
}

// TestLooksLikeDescriptor: descriptor text ends at its first NUL, as QEMU
// reads it, and what follows may be padding or old text but not binary;
// without the header line only clean text is taken.
func TestLooksLikeDescriptor(t *testing.T) {
	hdr := "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n"
	cases := []struct {
		name string
		b    string
		want bool
	}{
		{"plain", hdr, true},
		{"sector-padded", hdr + strings.Repeat("\x00", 512-len(hdr)), true},
		{"leftovers-after-nul", hdr + "\x00\x00RW 8 FLAT \"old-f001.vmdk\" 0\n", true},
		{"header-then-binary", "# Disk DescriptorFile\n\x00\x01\x02\x03", false},
		{"bom-and-blank-lines", "\xef\xbb\xbf\n\n" + hdr, true},
		{"createType-only", "createType=\"vmfs\"\n", true},
		{"createType-then-binary", "createType=\"vmfs\"\n\x00\x01\x02", false},
		{"binary", "\x7fELF\x02\x01\x01", false},
		{"empty", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := looksLikeDescriptor([]byte(c.b)); got != c.want {
				t.Fatalf("looksLikeDescriptor(%q) = %v, want %v", c.b, got, c.want)
			}
		})
	}
}
