package session

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
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
			v, err := Open(src, Options{To: "libvirt", Format: format, Dir: "/mnt/view"})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			var names []string
			var desc []byte
			for _, f := range v.View.Files {
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
		opts Options
		want string
	}{
		{"unknown target", Options{To: "bogus"}, "bogus"},
		{"unknown format", Options{To: "libvirt", Format: "bogus"}, "bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Open(src, tc.opts)
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

// TestViewSources: the view lists the source files it reads, each once by
// resolved path: the descriptor, the disk's descriptor, its extents (one in
// an allowed directory outside the VM's), an .ovf's manifest; a bare disk
// lists itself. A nil Env records as well.
func TestViewSources(t *testing.T) {
	root := t.TempDir()
	vm, ext := filepath.Join(root, "vm"), filepath.Join(root, "ext")
	os.Mkdir(vm, 0o755)
	os.Mkdir(ext, 0o755)
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(vm, "a-flat.vmdk"), strings.Repeat("a", 4096))
	write(filepath.Join(ext, "b-flat.vmdk"), strings.Repeat("b", 4096))
	write(filepath.Join(vm, "disk.vmdk"), "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n"+
		"RW 8 FLAT \"a-flat.vmdk\" 0\nRW 8 FLAT \"../ext/b-flat.vmdk\" 0\n\nddb.adapterType = \"lsilogic\"\n")
	vmx := filepath.Join(vm, "vm.vmx")
	write(vmx, "config.version = \"8\"\nvirtualHW.version = \"19\"\ndisplayName = \"vm\"\nmemsize = \"256\"\nnumvcpus = \"1\"\n"+
		"scsi0.present = \"TRUE\"\nscsi0.virtualDev = \"lsilogic\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"disk.vmdk\"\n")
	bare := filepath.Join(root, "bare.img")
	write(bare, strings.Repeat("\x00", 8192))
	for _, c := range []struct {
		name, src string
		env       *layouts.Env
		want      []string
	}{
		{"vmx", vmx, &layouts.Env{AllowDirs: []string{ext}},
			[]string{vmx, filepath.Join(vm, "disk.vmdk"), filepath.Join(vm, "a-flat.vmdk"), filepath.Join(ext, "b-flat.vmdk")}},
		{"bare disk, nil env", bare, nil, []string{bare}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := Open(c.src, Options{To: "qemu", Format: "raw", Dir: "/mnt/view", Env: c.env})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			got := v.View.Sources.Paths()
			slices.Sort(got)
			want := slices.Clone(c.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("sources %q, want %q", got, want)
			}
			if c.env != nil && c.env.Sources != nil {
				t.Error("Open set the caller's Env.Sources")
			}
		})
	}
}
