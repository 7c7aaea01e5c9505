package convert

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/testenv"
)

func TestMain(m *testing.M) {
	// libguestfs's appliance is a real kernel: on hosts where nested KVM
	// fails for those (docs/TEST-GUEST.md), it runs under TCG, as the
	// guests of the other tests do.
	if testenv.AccelReal() != "kvm" && os.Getenv("LIBGUESTFS_BACKEND_SETTINGS") == "" {
		os.Setenv("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
	}
	testenv.Main(m)
}

// busyboxMount mounts the busybox test guest (which libguestfs cannot
// inspect: no root file system) with args, and returns the mountpoint and
// its overlay directory ("" for --read-only).
func busyboxMount(t *testing.T, args ...string) (mnt, ov string) {
	t.Helper()
	testenv.NeedCommands(t, "qemu-img")
	vmx := testenv.Guest(t).VM(t, testenv.VMLinuxBIOS)
	if !contains(args, "--read-only") {
		ov = filepath.Join(t.TempDir(), "overlay")
		args = append(args, "--overlay", ov)
	}
	mnt = testenv.Mount(t, append(args, vmx, testenv.MountDir(t))...)
	return mnt, ov
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// refused runs vmfs convert on mnt and checks it fails with one line
// holding want, leaving the overlay ov as it was.
func refused(t *testing.T, mnt, ov, want string, args ...string) {
	t.Helper()
	var before map[string]string
	if ov != "" {
		before = testenv.SHA256Tree(t, ov)
	}
	out, err := testenv.VMFS(t, append(append([]string{"convert"}, args...), mnt)...)
	if err == nil {
		t.Fatalf("vmfs convert %s: not refused:\n%s", mnt, out)
	}
	msg := err.Error()
	if !strings.Contains(msg, want) {
		t.Errorf("refusal %q lacks %q", msg, want)
	}
	if !strings.Contains(msg, "exit status 1") {
		t.Errorf("refusal %q: exit status is not 1", msg)
	}
	_, stderr, _ := strings.Cut(msg, "exit status 1: ")
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(l, "vmfs: convert: [") { // progress
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "vmfs: ") {
		t.Errorf("the error is not one line: %q", stderr)
	}
	if ov != "" {
		testenv.CheckSame(t, "overlay "+ov, before, testenv.SHA256Tree(t, ov))
	}
	if m, err := ReadMarker(ov); err != nil || m != nil {
		t.Errorf("a refused conversion is recorded: %+v %v", m, err)
	}
}

// The refusals that need no appliance: each is one line, exit 1, and
// leaves the overlay as it was.
func TestConvertRefusals(t *testing.T) {
	t.Run("read-only", func(t *testing.T) {
		mnt, _ := busyboxMount(t, "--read-only", "--devices", "virtio")
		refused(t, mnt, "", "mounted --read-only: a conversion writes to the guest's disks")
	})
	t.Run("not-virtio", func(t *testing.T) {
		mnt, ov := busyboxMount(t, "--devices", "preserve")
		refused(t, mnt, ov, "gives the guest a scsi disk (vmfs-test-linux-bios-disk0.qcow2): the conversion makes the guest ready for virtio; mount with --devices virtio")
	})
	t.Run("not-libvirt", func(t *testing.T) {
		mnt, ov := busyboxMount(t, "--to", "qemu", "--devices", "virtio")
		refused(t, mnt, ov, "a --to qemu mount: the conversion reads a libvirt descriptor")
	})
	t.Run("not-a-mount", func(t *testing.T) {
		dir := t.TempDir()
		refused(t, dir, "", dir+": no vmfs mount recorded there")
	})
	t.Run("virtio-win-missing", func(t *testing.T) {
		mnt, ov := busyboxMount(t, "--devices", "virtio")
		refused(t, mnt, ov, "--virtio-win /nonexistent/virtio-win.iso: no such file or directory", "--virtio-win", "/nonexistent/virtio-win.iso")
	})
	t.Run("running", func(t *testing.T) {
		testenv.NeedCommands(t, "qemu-system-x86_64")
		mnt, ov := busyboxMount(t, "--devices", "virtio")
		disk := filepath.Join(mnt, "vmfs-test-linux-bios-disk0.qcow2")
		// A guest that holds its disk and runs nothing (-S: stopped
		// before its first instruction).
		ctx, cancel := context.WithCancel(context.Background())
		qemu := exec.CommandContext(ctx, "qemu-system-x86_64", "-S", "-machine", "q35", "-accel", "tcg",
			"-nodefaults", "-display", "none", "-m", "64",
			"-drive", "if=virtio,format=qcow2,file="+disk)
		if err := qemu.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); qemu.Wait() })
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, _, _, ok := holder(map[string]bool{disk: true}); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("qemu did not open %s within 30 s", disk)
			}
			time.Sleep(100 * time.Millisecond)
		}
		refused(t, mnt, ov, "the guest is running: process "+strconv.Itoa(qemu.Process.Pid)+" (qemu-system-x86) has "+disk+" open; shut the guest down")
	})
}

// One appliance run: the busybox guest has no operating system libguestfs
// can inspect, and vmfs convert says so in one line, the overlay as it was.
func TestConvertRefusesUninspectable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a libguestfs appliance (25-40 s under TCG)")
	}
	testenv.NeedCommands(t, "guestfish", "virt-v2v-in-place")
	t.Parallel()
	mnt, ov := busyboxMount(t, "--devices", "virtio")
	refused(t, mnt, ov, mnt+": cannot convert: libguestfs found no operating system on the guest's disks")
}

// One appliance run: what libguestfs writes through a mount lands in its
// overlay; the source stays as it was, and the mount reads the write back.
func TestGuestfishWritesLandInOverlay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a libguestfs appliance (25-40 s under TCG)")
	}
	testenv.NeedCommands(t, "guestfish", "qemu-img", "mtype")
	t.Parallel()
	g := testenv.Guest(t)
	vmx := g.VM(t, testenv.VMLinuxBIOS)
	src := testenv.SHA256Tree(t, filepath.Dir(vmx))
	ov := filepath.Join(t.TempDir(), "overlay")
	mnt := testenv.Mount(t, "--devices", "virtio", "--overlay", ov, vmx, testenv.MountDir(t))
	disk := filepath.Join(mnt, "vmfs-test-linux-bios-disk0.qcow2")
	before := testenv.SHA256Tree(t, ov)

	f, err := StartFish(context.Background(), []Drive{{Path: disk, Format: "qcow2"}}, false, engineEnv(Options{NoKVM: testenv.AccelReal() != "kvm"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	t.Logf("appliance started in %v", f.Launch.Round(100*time.Millisecond))
	const text = "written by libguestfs through a vmfs mount\n"
	for _, c := range [][]string{{"mount", "/dev/sda1", "/"}} {
		if _, err := f.Do(c...); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WriteFile("/VMFSWRIT.TXT", text); err != nil {
		t.Fatal(err)
	}
	got, err := f.ReadFile("/VMFSWRIT.TXT", 1<<10)
	if err != nil || got != text {
		t.Fatalf("read back in the appliance: %q, %v", got, err)
	}
	// A failing command is an error naming it, from libguestfs.
	if _, err := f.Do("cat", "/no-such-file"); err == nil || !strings.Contains(err.Error(), "guestfish cat:") || !strings.Contains(err.Error(), "No such file or directory") {
		t.Errorf("a failing command: %v", err)
	}
	f.Close()

	testenv.CheckSame(t, "source "+filepath.Dir(vmx), src, testenv.SHA256Tree(t, filepath.Dir(vmx)))
	after := testenv.SHA256Tree(t, ov)
	data := "f-vmfs-test-linux-bios-disk0.qcow2.data"
	if after[data] == before[data] {
		t.Errorf("overlay %s: %s unchanged by the write", ov, data)
	}
	if _, ok := after["f-vmfs-test-linux-bios-disk0.qcow2.map"]; !ok {
		t.Errorf("overlay %s has no map for the disk", ov)
	}
	// The mount reads the write back (the FAT partition at 1 MiB).
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("qemu-img", "convert", "-f", "qcow2", "-O", "raw", disk, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v %s", err, out)
	}
	out, err := exec.Command("mtype", "-i", raw+"@@1048576", "::VMFSWRIT.TXT").CombinedOutput()
	if err != nil || string(out) != text {
		t.Errorf("mtype ::VMFSWRIT.TXT through the mount: %q %v", out, err)
	}
}
