package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
)

// TestPassthroughBoot: a VMware VM whose disk is a monolithicFlat VMDK on
// XFS (reflink=1), mounted writable as raw with its overlay on the same
// file system, is served by FUSE passthrough from the overlay's clone of
// the extent (the mount says so). The guest boots from it twice, its
// writes reaching the clone: the second boot reads the record of the
// first. After the unmount, materialize with the overlay carries the
// writes; the source's bytes never change.
func TestPassthroughBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Linux under TCG")
	}
	g := testenv.Guest(t)
	testenv.NeedCommands(t, "qemu-img")
	off, err := strconv.ParseInt(g.Env["DATA_PART_OFFSET"], 10, 64)
	if err != nil {
		t.Fatalf("guest.env DATA_PART_OFFSET: %v", err)
	}
	fs := testenv.ReflinkFS(t, "xfs")
	vmdir := filepath.Join(fs, "linux-bios")
	if err := os.Mkdir(vmdir, 0o755); err != nil {
		t.Fatal(err)
	}
	vmxText, err := os.ReadFile(filepath.Join(g.Dir, "vmware", testenv.VMLinuxBIOS, testenv.VMLinuxBIOS+".vmx"))
	if err != nil {
		t.Fatal(err)
	}
	vmx := filepath.Join(vmdir, testenv.VMLinuxBIOS+".vmx")
	if err := os.WriteFile(vmx, vmxText, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat",
		g.LinuxBIOSRaw, filepath.Join(vmdir, testenv.VMLinuxBIOS+".vmdk")).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	sourceUnchanged(t, vmdir)
	overlay := filepath.Join(fs, "overlay")

	mnt := bootMountDir(t)
	t.Cleanup(func() {
		if err := testenv.Unmount(t, mnt); err != nil {
			t.Error(err)
		}
	})
	stdout, stderr, err := vmfsRun(t, "mount", "--daemon", "--to", "libvirt", "--format", "raw", "--overlay", overlay, vmx, mnt)
	if err != nil {
		t.Fatal(err)
	}
	if said := stdout + stderr; !strings.Contains(said, "read and written by FUSE passthrough") {
		if strings.Contains(said, "passthrough unavailable") {
			t.Skipf("FUSE passthrough unavailable here: %s", said)
		}
		t.Fatalf("the mount does not say passthrough serves the disk:\n%s", said)
	}
	m := describeMount(t, mnt)
	st, err := testenv.VMFS(t, "status", "--json", mnt)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Mounts []struct {
			Passthrough []string `json:"passthrough"`
		} `json:"mounts"`
	}
	if err := json.Unmarshal(st, &doc); err != nil || len(doc.Mounts) != 1 || len(doc.Mounts[0].Passthrough) != 1 ||
		doc.Mounts[0].Passthrough[0] != filepath.Base(m.Disks[0].Path) {
		t.Fatalf("vmfs status --json does not name the disk as served by passthrough (%v):\n%s", err, st)
	}
	for boot := 0; boot < 2; boot++ {
		bootQEMU(t, m.XML, testenv.BIOS, boot)
	}
	if got, want := dataRecord(t, m.Disks[0].Path, off), "VMFSDATA boot=2"; got != want {
		t.Fatalf("data record in the mount = %q, want %q", got, want)
	}
	unmountNow(t, mnt)

	dest := filepath.Join(t.TempDir(), "out")
	if _, _, err := vmfsRun(t, "materialize", "--to", "qemu", "--format", "raw", "--progress", "none", "--overlay", overlay, vmx, dest); err != nil {
		t.Fatal(err)
	}
	raws, _ := filepath.Glob(filepath.Join(dest, "*.raw"))
	if len(raws) != 1 {
		t.Fatalf("materialize wrote %v, want one raw disk", raws)
	}
	if got, want := dataRecord(t, raws[0], off), "VMFSDATA boot=2"; got != want {
		t.Fatalf("data record in the materialized disk = %q, want %q", got, want)
	}
}
