package proxmox_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/translate"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// checkOutput checks a materialized or mounted proxmox directory: the
// config has the documented forms, the script imports the disk file the
// directory holds (by its absolute path) and nothing else, and that file
// is the source's disk.
func checkOutput(t *testing.T, dir, name, raw string) {
	t.Helper()
	base := translate.FileName(name)
	conf, err := os.ReadFile(filepath.Join(dir, base+".conf"))
	if err != nil {
		ents, _ := os.ReadDir(dir)
		t.Fatalf("%v (directory holds %v)", err, ents)
	}
	script, err := os.ReadFile(filepath.Join(dir, base+"-import.sh"))
	if err != nil {
		t.Fatal(err)
	}
	c := checkConf(t, string(conf), 4321, "tank")
	disk := filepath.Join(dir, "vm-4321-disk-0.raw")
	st, err := os.Stat(disk)
	if err != nil {
		t.Fatal(err)
	}
	checkScript(t, string(script), c, 4321, "tank", []translate.TargetDisk{{Path: disk, Size: st.Size()}})
	for k, want := range map[string]string{
		"bios": "ovmf", "machine": "q35", "ostype": "win10", "boot": "order=sata0", "sockets": "1", "cores": "2",
		"net0": "e1000e=00:50:56:01:02:03,bridge=vmbr7", "efidisk0": "tank:vm-4321-disk-1,efitype=4m,size=4M",
	} {
		if c[k] != want {
			t.Errorf("%s: %q, want %q\n%s", k, c[k], want, conf)
		}
	}
	if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", disk, raw).CombinedOutput(); err != nil {
		t.Errorf("qemu-img compare: %v\n%s", err, out)
	}
}

// TestEndToEnd materializes and mounts a VMware VM as a Proxmox VE VM (its
// UEFI boot disk moves from SAS to SATA, which OVMF boots).
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs vmfs")
	}
	const name = "e2e vm's"
	vmx, raw := testenv.UEFIVMwareVM(t, name, "numvcpus = \"2\"\ncpuid.coresPerSocket = \"2\"\nethernet0.networkName = \"VM Network\"\n")
	opts := []string{"--to", "proxmox", "--vmid", "4321", "--storage", "tank", "--network-map", "VM Network=vmbr7"}
	t.Run("materialize", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		if _, err := testenv.VMFS(t, append(append([]string{"materialize", "--progress", "none", "--discard-overlay"}, opts...), vmx, out)...); err != nil {
			t.Fatal(err)
		}
		checkOutput(t, out, name, raw)
	})
	t.Run("mount", func(t *testing.T) {
		mnt := testenv.MountDir(t)
		testenv.Mount(t, append(append(opts, "--read-only"), vmx, mnt)...)
		checkOutput(t, mnt, name, raw)
	})
}
