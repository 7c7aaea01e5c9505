package view

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildBareDisk: a bare raw disk becomes a libvirt view with a
// descriptor naming the disk file inside the view's directory, in the
// chosen format.
func TestBuildBareDisk(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "My Disk.img")
	f, _ := os.Create(src)
	f.Truncate(8 << 20)
	f.WriteAt([]byte("data"), 1<<20)
	f.Close()
	for _, format := range []string{"raw", "qcow2", "vmdk", "vhdx", "vhd", "vdi"} {
		t.Run(format, func(t *testing.T) {
			v, err := Build(src, BuildOptions{To: "libvirt", Options: Options{Format: format, Dir: "/mnt/view"}})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			var names []string
			var desc []byte
			for _, f := range v.Files {
				names = append(names, f.Name)
				if strings.HasSuffix(f.Name, ".xml") {
					desc = make([]byte, f.Content.Size())
					f.Content.ReadAt(desc, 0)
				}
			}
			disk := "My_Disk-disk0." + format
			if !contains(names, disk) || !contains(names, "My_Disk.xml") {
				t.Fatalf("files %v, want %s and My_Disk.xml", names, disk)
			}
			var dom struct {
				Disks []struct {
					Driver struct {
						Type string `xml:"type,attr"`
					} `xml:"driver"`
					Source struct {
						File string `xml:"file,attr"`
					} `xml:"source"`
				} `xml:"devices>disk"`
			}
			if err := xml.Unmarshal(desc, &dom); err != nil {
				t.Fatal(err)
			}
			qemuFormat := format
			if format == "vhd" {
				qemuFormat = "vpc"
			}
			if len(dom.Disks) != 1 || dom.Disks[0].Source.File != "/mnt/view/"+disk || dom.Disks[0].Driver.Type != qemuFormat {
				t.Fatalf("disks %+v", dom.Disks)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "d.img")
	os.WriteFile(src, make([]byte, 4096), 0o644)
	for _, tc := range []struct {
		name string
		opts BuildOptions
		want string
	}{
		{"unknown target", BuildOptions{To: "bogus"}, "bogus"},
		{"unknown format", BuildOptions{To: "libvirt", Options: Options{Format: "bogus"}}, "bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Build(src, tc.opts)
			if err == nil {
				v.Close()
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v does not mention %q", err, tc.want)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
