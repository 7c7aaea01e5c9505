package kubevirt_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	kv "kubevirt.io/api/core/v1"

	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/translate"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// checkDir checks a materialized or mounted kubevirt directory: the YAML
// decodes strictly, its DataVolume imports the one disk file the
// directory holds (by its name under the export, or by its path for an
// upload), and that file, a qcow2, is the source's disk.
func checkDir(t *testing.T, dir, name, raw string, upload bool) {
	t.Helper()
	base := translate.FileName(name)
	b, err := os.ReadFile(filepath.Join(dir, base+".yaml"))
	if err != nil {
		ents, _ := os.ReadDir(dir)
		t.Fatalf("%v (directory holds %v)", err, ents)
	}
	o := decode(t, string(b))
	disk := filepath.Join(dir, base+"-disk0.qcow2")
	st, err := os.Stat(disk)
	if err != nil {
		t.Fatal(err)
	}
	m := &translate.Machine{Name: name, CPUs: 2, MemoryMiB: 256, Firmware: translate.UEFI, SecureBoot: true,
		UUID: "564d0102-0304-0506-0708-090a0b0c0d0e",
		NICs: []translate.NIC{{MAC: "00:50:56:01:02:03"}}}
	opts := translate.Options{Namespace: "vms", ExportURL: "https://vmfs.example:8443", Upload: upload}
	if upload {
		opts.ExportURL = ""
	}
	// The DataVolume holds the source's virtual size.
	src, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, []translate.TargetDisk{{Path: disk, Size: src.Size()}}, opts, o)
	if upload && !strings.Contains(string(b), "--image-path='"+disk+"' -n vms\n") {
		t.Errorf("the upload does not name %s:\n%s", disk, b)
	}
	spec := o.vm.Spec.Template.Spec
	if ds := spec.Domain.Devices.Disks; len(ds) != 1 || ds[0].Disk.Bus != kv.DiskBusSATA {
		t.Errorf("disks %+v: the SAS boot disk belongs on SATA", ds)
	}
	if n := spec.Networks; len(n) != 1 || n[0].Multus == nil || n[0].Multus.NetworkName != "vlan7" {
		t.Errorf("networks %+v", n)
	}
	if st.Size() <= 0 {
		t.Fatalf("%s is empty", disk)
	}
	if out, err := exec.Command("qemu-img", "compare", "-f", "qcow2", "-F", "raw", disk, raw).CombinedOutput(); err != nil {
		t.Errorf("qemu-img compare: %v\n%s", err, out)
	}
}

// TestEndToEnd materializes and mounts a VMware VM for KubeVirt, with
// its disk imported from an export and uploaded.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs vmfs")
	}
	const name = "K8s VM_01"
	vmx, raw := testenv.UEFIVMwareVM(t, name, `uefi.secureBoot.enabled = "TRUE"
uuid.bios = "56 4d 01 02 03 04 05 06-07 08 09 0a 0b 0c 0d 0e"
numvcpus = "2"
ethernet0.networkName = "VM Network"
`)
	for _, upload := range []bool{false, true} {
		opts := []string{"--to", "kubevirt", "--namespace", "vms", "--network-map", "VM Network=vlan7"}
		suffix := "/export"
		if upload {
			opts, suffix = append(opts, "--upload"), "/upload"
		} else {
			opts = append(opts, "--export-url", "https://vmfs.example:8443")
		}
		t.Run("materialize"+suffix, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			if _, err := testenv.VMFS(t, append(append([]string{"materialize", "--progress", "none", "--discard-overlay"}, opts...), vmx, out)...); err != nil {
				t.Fatal(err)
			}
			checkDir(t, out, name, raw, upload)
		})
		t.Run("mount"+suffix, func(t *testing.T) {
			mnt := testenv.MountDir(t)
			testenv.Mount(t, append(append(opts, "--read-only"), vmx, mnt)...)
			checkDir(t, mnt, name, raw, upload)
		})
	}
}
