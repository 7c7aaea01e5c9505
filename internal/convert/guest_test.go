package convert

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vmfs/vmfs/internal/testenv"
)

// debianGuest is the convertible test guest (testdata/convert-guest).
type debianGuest struct {
	dir string
	env map[string]string
}

// buildDebianGuest builds (or finds in the cache) the Debian 12 guest.
// It needs root and Debian's archive; the first build takes minutes.
func buildDebianGuest(t *testing.T) debianGuest {
	t.Helper()
	testenv.NeedCommands(t, "debootstrap", "qemu-img", "sfdisk", "mkfs.ext4", "guestfish", "virt-v2v-in-place", "qemu-system-x86_64")
	if os.Geteuid() != 0 {
		testenv.Need(t, "building the convertible guest needs root (debootstrap)")
	}
	script := filepath.Join(testenv.RepoRoot(t), "testdata", "convert-guest", "build.sh")
	start := time.Now()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	g := debianGuest{dir: lines[len(lines)-1], env: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(g.dir, "guest.env"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			g.env[k] = v
		}
	}
	t.Logf("convertible guest %s (ready in %v; built in %s s)", g.dir, time.Since(start).Round(time.Second), g.env["BUILD_SECONDS"])
	return g
}

// vm copies the guest's VMware VM into a temp dir and returns its .vmx.
func (g debianGuest) vm(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "debian12")
	if out, err := exec.Command("cp", "-r", "--sparse=always", filepath.Join(g.dir, "vmware", "debian12"), dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return filepath.Join(dst, "debian12.vmx")
}

// bootMount boots the mount's libvirt descriptor under QEMU (its disks
// through the mount; snapshot: writes thrown away) and waits for the
// machine to stop; it returns the serial output.
func bootMount(t *testing.T, mnt string, snapshot bool) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(mnt, "debian12.xml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := testenv.MachineFromDomain(b)
	if err != nil {
		t.Fatal(err)
	}
	m.Accel = testenv.AccelReal()
	m.MemoryMiB = 1024
	for i := range m.Disks {
		m.Disks[i].Snapshot = snapshot
	}
	vm := testenv.Boot(t, m)
	took := vm.WaitExit(t, 2*testenv.BootTimeout())
	t.Logf("boot (%s, %s) ended after %v", m.Accel, strings.Join(vm.Args, " "), took.Round(time.Second))
	return strings.ReplaceAll(vm.Output(), "\r\n", "\n")
}

// statusOf is `vmfs status --json MNT`'s one mount.
func statusOf(t *testing.T, mnt string) map[string]any {
	t.Helper()
	out, err := testenv.VMFS(t, "status", "--json", mnt)
	if err != nil {
		t.Fatal(err)
	}
	// The document docs/vmfs.schema.json describes.
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	schema, err := c.Compile(filepath.Join(testenv.RepoRoot(t), "docs", "vmfs.schema.json") + "#/$defs/status")
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("status --json: %v %s", err, out)
	}
	if err := schema.Validate(v); err != nil {
		t.Errorf("status --json does not follow docs/vmfs.schema.json: %v\n%s", err, out)
	}
	var doc struct {
		Mounts []map[string]any `json:"mounts"`
	}
	if err := json.Unmarshal(out, &doc); err != nil || len(doc.Mounts) != 1 {
		t.Fatalf("status --json: %v %s", err, out)
	}
	return doc.Mounts[0]
}

// noBoot checks that a boot of the unconverted guest on virtio stops in
// its initramfs, which has no driver for the disk.
func noBoot(t *testing.T, serial, uuid string) {
	t.Helper()
	if !strings.Contains(serial, "ALERT!  UUID="+uuid+" does not exist") || strings.Contains(serial, "VMFS-CONVERT-DONE") {
		t.Fatalf("the unconverted guest did not stop for want of its root device:\n%s", tailLines(serial, 40))
	}
}

func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestConvertDebianGuest is `make test-convert`: the Debian 12 guest made
// for VMware (pvscsi, vmxnet3; an initramfs without virtio_blk; a static
// address on ens192), mounted with --devices virtio, does not boot; after
// vmfs convert it boots from the mount, its NIC named ens192 with its
// address; the source is unchanged; a remount keeps the conversion and
// --fresh brings the unconverted guest back.
func TestConvertDebianGuest(t *testing.T) {
	if os.Getenv("VMFS_TEST_CONVERT") != "1" {
		t.Skip("VMFS_TEST_CONVERT=1 (make test-convert) runs it: about 10 minutes under TCG")
	}
	g := buildDebianGuest(t)
	vmx := g.vm(t)
	srcDir := filepath.Dir(vmx)
	src := testenv.SHA256Tree(t, srcDir)
	ov := filepath.Join(t.TempDir(), "overlay")
	mntDir := testenv.MountDir(t)
	mnt := testenv.Mount(t, "--devices", "virtio", "--overlay", ov, vmx, mntDir)

	start := time.Now()
	noBoot(t, bootMount(t, mnt, true), g.env["ROOT_UUID"])
	t.Logf("before vmfs convert: no root device on virtio (%v)", time.Since(start).Round(time.Second))

	start = time.Now()
	out, err := testenv.VMFS(t, "convert", mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vmfs convert (%v):\n%s", time.Since(start).Round(time.Second), out)
	for _, w := range []string{"converted " + mnt + ": ", "NIC " + g.env["NIC_MAC"] + " keeps the name " + g.env["NIC_NAME"],
		"virt-v2v: Converting", "inspection and NIC names (libguestfs appliance)", "the source is unchanged"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("vmfs convert's summary lacks %q", w)
		}
	}
	st := statusOf(t, mnt)
	conv, _ := st["converted"].(map[string]any)
	if conv == nil || !strings.Contains(strings.Join(strs(conv["nic_names"]), " "), g.env["NIC_MAC"]+"="+g.env["NIC_NAME"]) {
		t.Errorf("status --json after the conversion: %v", st)
	}
	if text, err := testenv.VMFS(t, "status", mnt); err != nil || !strings.Contains(string(text), "serving, converted") {
		t.Errorf("status: %s %v", text, err)
	}

	serial := bootMount(t, mnt, false)
	want := []string{
		"VMFS-CONVERT-ROOT dev=/dev/vda1 drivers=virtio_blk,",
		"VMFS-CONVERT-NIC name=" + g.env["NIC_NAME"] + " mac=" + g.env["NIC_MAC"] + " driver=virtio_net addr=" + g.env["NIC_ADDR"] + "\n",
		"VMFS-CONVERT-DONE",
	}
	for _, w := range want {
		if !strings.Contains(serial, w) {
			t.Fatalf("the converted guest's serial lacks %q:\n%s", w, tailLines(serial, 60))
		}
	}
	t.Logf("after vmfs convert:\n%s", grepLines(serial, "VMFS-CONVERT-"))
	testenv.CheckSame(t, "source "+srcDir, src, testenv.SHA256Tree(t, srcDir))

	// The conversion is in the overlay: materialize carries it, a
	// remount keeps it, --fresh discards it.
	if err := testenv.Unmount(t, mnt); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if out, err := testenv.VMFS(t, "materialize", "--devices", "virtio", "--overlay", ov, vmx, dest); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("materialize: %s", out)
	}
	mnt = testenv.Mount(t, "--devices", "virtio", "--overlay", ov, vmx, mntDir)
	if statusOf(t, mnt)["converted"] == nil {
		t.Errorf("the remount lost the conversion's record")
	}
	if out, err := exec.Command("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2",
		filepath.Join(mnt, "debian12-disk0.qcow2"), filepath.Join(dest, "debian12-disk0.qcow2")).CombinedOutput(); err != nil {
		t.Errorf("the materialized disk differs from the converted mount's: %v %s", err, out)
	}
	if err := testenv.Unmount(t, mnt); err != nil {
		t.Fatal(err)
	}
	mnt = testenv.Mount(t, "--devices", "virtio", "--overlay", ov, "--fresh", vmx, mntDir)
	if c := statusOf(t, mnt)["converted"]; c != nil {
		t.Errorf("--fresh kept the conversion's record: %v", c)
	}
	noBoot(t, bootMount(t, mnt, true), g.env["ROOT_UUID"])
	testenv.CheckSame(t, "source "+srcDir, src, testenv.SHA256Tree(t, srcDir))
}

func strs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
