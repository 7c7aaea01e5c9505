package view

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/libvirt"
	"github.com/vmfs/vmfs/translate/source"
	"github.com/vmfs/vmfs/translate/targets"
)

// proxmoxLike is a made-up target that names its disks as Proxmox does,
// vm-<id>-disk-<N>: a libvirt target in all but its naming.
type proxmoxLike struct {
	libvirt.Target
	id int
}

func (proxmoxLike) Name() string { return "proxmox-like" }

func (p proxmoxLike) DiskName(_ *translate.Machine, i int) string {
	return fmt.Sprintf("vm-%d-disk-%d", p.id, i)
}

// twoDiskVMX writes a .vmx with two flat disks and returns its path.
func twoDiskVMX(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	vmx := "config.version = \"8\"\nvirtualHW.version = \"19\"\ndisplayName = \"two disks\"\nmemsize = \"256\"\nnumvcpus = \"1\"\n" +
		"scsi0.present = \"TRUE\"\nscsi0.virtualDev = \"lsilogic\"\n"
	for i := range 2 {
		name := fmt.Sprintf("d%d.img", i)
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		vmx += fmt.Sprintf("scsi0:%d.present = \"TRUE\"\nscsi0:%d.fileName = %q\n", i, i, name)
	}
	p := filepath.Join(dir, "vm.vmx")
	if err := os.WriteFile(p, []byte(vmx), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTargetNamesTheDisks: the view names each disk file as the target
// says, and the descriptor points at those names: a made-up target with
// Proxmox's vm-<id>-disk-<N>, and every registered target.
func TestTargetNamesTheDisks(t *testing.T) {
	src := twoDiskVMX(t)
	tgs := append(targets.All(), proxmoxLike{id: 104})
	for _, tg := range tgs {
		t.Run(tg.Name(), func(t *testing.T) {
			m, err := source.Load(src)
			if err != nil {
				t.Fatal(err)
			}
			v, err := New(m, tg, Options{Format: "raw", Dir: "/mnt/view"})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			var disks []string
			var desc strings.Builder
			for _, f := range v.Files {
				if f.Disk {
					disks = append(disks, f.Name)
					continue
				}
				b := make([]byte, f.Content.Size())
				f.Content.ReadAt(b, 0)
				desc.Write(b)
			}
			want := []string{tg.DiskName(m, 0) + ".raw", tg.DiskName(m, 1) + ".raw"}
			if !slices.Equal(disks, want) {
				t.Fatalf("disk files %q, want %q", disks, want)
			}
			if _, ok := tg.(proxmoxLike); ok && !slices.Equal(disks, []string{"vm-104-disk-0.raw", "vm-104-disk-1.raw"}) {
				t.Fatalf("disk files %q", disks)
			}
			for _, d := range disks {
				if !strings.Contains(desc.String(), d) {
					t.Errorf("the descriptor does not name %s:\n%s", d, desc.String())
				}
			}
		})
	}
}
