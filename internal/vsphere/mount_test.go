package vsphere_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/internal/vsphere/vspheretest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// mountStatus is one mount of `vmfs status --json`.
type mountStatus struct {
	Mountpoint string `json:"mountpoint"`
	Source     string `json:"source"`
	PID        int    `json:"pid"`
}

func statusOf(t *testing.T, mnt string) (mountStatus, string) {
	t.Helper()
	out, err := testenv.VMFS(t, "status", "--json", mnt)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Mounts []mountStatus }
	if err := json.Unmarshal(out, &doc); err != nil || len(doc.Mounts) != 1 {
		t.Fatalf("vmfs status --json %s: %v\n%s", mnt, err, out)
	}
	text, err := testenv.VMFS(t, "status")
	if err != nil {
		t.Fatal(err)
	}
	return doc.Mounts[0], string(out) + string(text)
}

// compare checks with qemu-img compare that the raw image in the mount
// holds what the local VMDK holds.
func compare(t *testing.T, mounted, local string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "vmdk", mounted, local).CombinedOutput()
	if err != nil {
		t.Errorf("qemu-img compare %s %s: %v\n%s", mounted, local, err, out)
	}
}

// TestMount mounts a VM on vcsim by its vsphere:// URL: each disk (a
// monolithicSparse VMDK, a flat one, a delta on a base) equals the
// local file it was uploaded from, and the password shows nowhere: not in
// the daemon's command line, its log, or vmfs status.
func TestMount(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	srv := vspheretest.Start(t)
	dir, disks := vspheretest.TestVM(t, 16)
	srv.AddVM(t, "testvm", dir, disks)
	t.Setenv("VMFS_VSPHERE_PASSWORD", vspheretest.Password)
	url := srv.URL("vm/testvm")
	mnt := testenv.Mount(t, "--read-only", "--format", "raw", "--thumbprint", srv.Thumbprint, url, testenv.MountDir(t))
	for i, d := range disks {
		compare(t, filepath.Join(mnt, fmt.Sprintf("testvm-disk%d.raw", i)), filepath.Join(dir, d))
	}
	st, status := statusOf(t, mnt)
	if st.Source != url {
		t.Errorf("status source %q, want %q", st.Source, url)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID))
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := exec.Command("ps", "-eo", "args").Output()
	logged, _ := os.ReadFile(mount.LogPath(mnt))
	for what, b := range map[string][]byte{"the daemon's command line": cmdline, "ps": ps, "the log": logged, "vmfs status": []byte(status)} {
		if bytes.Contains(b, []byte(vspheretest.Password)) {
			t.Errorf("the password shows in %s", what)
		}
	}
}
