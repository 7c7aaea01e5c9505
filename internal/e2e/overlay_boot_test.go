package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/testenv"
)

// The helpers of the boot tests in overlay_boot_test.go, sources_boot_test.go
// and cutover_boot_test.go: each boots the real Linux guest under TCG, one
// boot at a time.

// vmfsRun runs the vmfs binary and returns its stdout and stderr; err holds
// the command line and stderr.
func vmfsRun(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(testenv.BuildVMFS(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		_ = cmd.Process.Kill()
		err = <-done
	}
	if err != nil {
		err = &vmfsError{args: args, err: err, stderr: strings.TrimSpace(e.String())}
	}
	return o.String(), e.String(), err
}

type vmfsError struct {
	args   []string
	err    error
	stderr string
}

func (e *vmfsError) Error() string {
	return "vmfs " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + e.stderr
}

// bootMountDir is a new empty mountpoint, traversable by libvirt's QEMU;
// the daemon's log is removed with it.
func bootMountDir(t *testing.T) string {
	t.Helper()
	var r [6]byte
	rand.Read(r[:])
	mnt := filepath.Join(t.TempDir(), "vmfs-boot-"+hex.EncodeToString(r[:]))
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.Traversable(t, mnt)
	t.Cleanup(func() { os.Remove(bootDaemonLog(mnt)) })
	return mnt
}

// bootDaemonLog is where `vmfs mount --daemon` logs for mnt.
func bootDaemonLog(mnt string) string { return mount.LogPath(mnt) }

// bootMount mounts src with `vmfs mount --daemon --to libvirt ARGS` on a
// new unique mountpoint and returns the mount's XML and disks (checked as
// mountVM does). Unmounting is registered with t.Cleanup.
func bootMount(t *testing.T, src string, args ...string) *mounted {
	t.Helper()
	mnt := bootMountDir(t)
	full := append([]string{"--to", "libvirt"}, args...)
	full = append(full, src, mnt)
	if _, err := testenv.TryMount(t, full...); err != nil {
		if notSupported(err) {
			t.Skipf("not supported yet: %v", err)
		}
		t.Fatal(err)
	}
	return describeMount(t, mnt)
}

func describeMount(t *testing.T, mnt string) *mounted {
	t.Helper()
	xmls, _ := filepath.Glob(filepath.Join(mnt, "*.xml"))
	if len(xmls) != 1 {
		ls, _ := os.ReadDir(mnt)
		t.Fatalf("mount %s holds %d .xml files, want 1: %v", mnt, len(xmls), ls)
	}
	b, err := os.ReadFile(xmls[0])
	if err != nil {
		t.Fatal(err)
	}
	m, err := testenv.MachineFromDomain(b)
	if err != nil {
		t.Fatalf("%s: %v\n%s", xmls[0], err, b)
	}
	for _, d := range m.Disks {
		if filepath.Dir(d.Path) != mnt {
			t.Fatalf("%s: disk source %s is not in the mount %s", xmls[0], d.Path, mnt)
		}
	}
	return &mounted{Dir: mnt, XML: xmls[0], Disks: m.Disks}
}

// unmountNow runs `vmfs unmount MNT` and checks the mount is gone.
func unmountNow(t *testing.T, mnt string) {
	t.Helper()
	if _, _, err := vmfsRun(t, "unmount", mnt); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for testenv.IsMounted(mnt) {
		if time.Now().After(deadline) {
			t.Fatalf("vmfs unmount %s returned but it is still mounted", mnt)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bootQEMU boots the domain XML at xml under plain QEMU (TCG) until the
// guest powers off, checks its serial output (it read the record of boot
// prev and wrote prev+1) and returns it.
func bootQEMU(t *testing.T, xml string, fw testenv.Firmware, prev int) string {
	t.Helper()
	vm := testenv.BootDomainXML(t, xml, testenv.AccelReal())
	checkFlushingCache(t, vm.Args)
	vm.WaitFor(t, testenv.GuestDone, testenv.BootTimeout())
	d := vm.WaitExit(t, testenv.BootTimeout())
	out := vm.Output()
	drivers := testenv.CheckLinuxBoot(t, out, fw, prev)
	t.Logf("boot after record %d: QEMU powered off after %v; disk through %s", prev, d.Round(time.Millisecond), drivers)
	return out
}

// bootLibvirt is bootQEMU under libvirt (domain type qemu, serial to a file).
func bootLibvirt(t *testing.T, xml string, fw testenv.Firmware, prev int) string {
	t.Helper()
	testenv.ReviveLibvirt(t)
	dom := testenv.StartDomain(t, xml, testenv.AccelReal())
	checkDomainCache(t, dom.XMLPath)
	dom.WaitFor(t, testenv.GuestDone, testenv.BootTimeout())
	d := dom.WaitShutoff(t, testenv.BootTimeout())
	out := dom.Output()
	drivers := testenv.CheckLinuxBoot(t, out, fw, prev)
	t.Logf("boot after record %d: libvirt domain shut off after %v; disk through %s", prev, d.Round(time.Millisecond), drivers)
	return out
}

// checkFlushingCache checks that QEMU's drives use a cache mode that passes
// the guest's flushes to the image file (writeback, the default, none or
// directsync or writethrough; never unsafe), so a guest sync reaches vmfs
// as an fsync on the FUSE file.
func checkFlushingCache(t *testing.T, args []string) {
	t.Helper()
	for i, a := range args {
		if i > 0 && args[i-1] == "-drive" && (strings.Contains(a, "cache=unsafe") || strings.Contains(a, "cache.no-flush=on")) {
			t.Fatalf("QEMU drive %q drops the guest's flushes", a)
		}
	}
}

var unsafeCache = regexp.MustCompile(`<driver[^>]*cache=["']unsafe["']`)

// checkDomainCache is checkFlushingCache for a libvirt domain XML.
func checkDomainCache(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if unsafeCache.Match(b) {
		t.Fatalf("%s: a disk uses cache=unsafe, which drops the guest's flushes", path)
	}
}

// mountStatus is one entry of `vmfs status --json`.
type mountStatus struct {
	Mountpoint string `json:"mountpoint"`
	Source     string `json:"source"`
	Overlay    string `json:"overlay"`
	PID        int    `json:"pid"`
	Alive      bool   `json:"alive"`
	Mounted    bool   `json:"mounted"`
}

// statusOf returns the `vmfs status --json` entry of mnt.
func statusOf(t *testing.T, mnt string) (mountStatus, bool) {
	t.Helper()
	out, _, err := vmfsRun(t, "status", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var all struct {
		Mounts []mountStatus `json:"mounts"`
	}
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatalf("vmfs status --json: %v\n%s", err, out)
	}
	for _, s := range all.Mounts {
		if s.Mountpoint == mnt {
			return s, true
		}
	}
	return mountStatus{}, false
}

// TestOverlayBoot boots the BIOS guest from the mounted qcow2 under QEMU,
// unmounts, mounts again on the same overlay and boots again: the second
// boot reads the first one's record. The source never changes.
func TestOverlayBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Linux under TCG")
	}
	g := testenv.Guest(t)
	vmx := g.VM(t, testenv.VMLinuxBIOS)
	sourceUnchanged(t, filepath.Dir(vmx))
	overlay := t.TempDir()
	start := time.Now()
	for boot := 0; boot < 2; boot++ {
		m := bootMount(t, vmx, "--format", "qcow2", "--overlay", overlay)
		bootQEMU(t, m.XML, testenv.BIOS, boot)
		unmountNow(t, m.Dir)
	}
	t.Logf("two boots with an unmount between: %v", time.Since(start).Round(time.Millisecond))
}

// TestOverlayBootKill boots the BIOS guest from the mount (with
// --fuse-debug, to see the guest's flush reach vmfs as an FSYNC), and once
// the guest printed that its record was written and synced, SIGKILLs the
// vmfs daemon. `vmfs unmount` cleans up the dead mount; a mount on the same
// overlay shows the record, and the next boot reads it.
func TestOverlayBootKill(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Linux under TCG")
	}
	g := testenv.Guest(t)
	vmx := g.VM(t, testenv.VMLinuxBIOS)
	sourceUnchanged(t, filepath.Dir(vmx))
	overlay := t.TempDir()
	start := time.Now()

	m := bootMount(t, vmx, "--format", "qcow2", "--overlay", overlay, "--fuse-debug")
	st, ok := statusOf(t, m.Dir)
	if !ok || st.PID <= 1 || !st.Alive {
		t.Fatalf("vmfs status --json: no live daemon for %s: %+v", m.Dir, st)
	}
	vm := testenv.BootDomainXML(t, m.XML, testenv.AccelReal())
	checkFlushingCache(t, vm.Args)
	vm.WaitFor(t, testenv.GuestDataWritten+"1", testenv.BootTimeout())
	log, _ := os.ReadFile(bootDaemonLog(m.Dir))
	fsyncs := strings.Count(string(log), ": FSYNC ")
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", st.PID, err)
	}
	if fsyncs == 0 {
		time.Sleep(time.Second)
		later, _ := os.ReadFile(bootDaemonLog(m.Dir))
		t.Errorf("the guest synced but the daemon log %s showed no FSYNC request when it printed so (%d after the kill); %d WRITE, %d FLUSH requests:\n%s",
			bootDaemonLog(m.Dir), strings.Count(string(later), ": FSYNC "), strings.Count(string(log), ": WRITE "),
			strings.Count(string(log), ": FLUSH "), tailLines(string(later), 30))
	}
	t.Logf("SIGKILLed vmfs (pid %d) after the guest's write and %d FSYNC requests, %v after QEMU started", st.PID, fsyncs, time.Since(start).Round(time.Millisecond))
	for i := 0; i < 100 && syscall.Kill(st.PID, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	// The guest powers off by itself or hangs on the dead disk.
	if !vm.Wait(20*time.Second) && !vm.Kill(10*time.Second) {
		t.Fatal("QEMU does not die")
	}
	if st, ok := statusOf(t, m.Dir); ok && st.Alive {
		t.Errorf("vmfs status --json after SIGKILL: %+v, want alive=false", st)
	}
	unmountNow(t, m.Dir)

	m2 := bootMount(t, vmx, "--format", "qcow2", "--overlay", overlay)
	bootQEMU(t, m2.XML, testenv.BIOS, 1)
	unmountNow(t, m2.Dir)
	t.Logf("boot, SIGKILL, remount, boot: %v", time.Since(start).Round(time.Millisecond))
}

// TestOverlayBootLibvirt boots the UEFI guest with --devices virtio and the
// BIOS guest with --devices preserve from the mount under libvirt, then
// again after a remount on the same overlay.
func TestOverlayBootLibvirt(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Linux under TCG")
	}
	g := testenv.Guest(t)
	testenv.StartLibvirt(t)
	for _, c := range []struct {
		name, vm, devices string
		fw                testenv.Firmware
	}{
		{"uefi/virtio", testenv.VMLinuxUEFI, "virtio", testenv.UEFI},
		{"bios/preserve", testenv.VMLinuxBIOS, "preserve", testenv.BIOS},
	} {
		t.Run(c.name, func(t *testing.T) {
			vmx := g.VM(t, c.vm)
			sourceUnchanged(t, filepath.Dir(vmx))
			overlay := t.TempDir()
			m := bootMount(t, vmx, "--format", "qcow2", "--devices", c.devices, "--overlay", overlay)
			out := bootLibvirt(t, m.XML, c.fw, 0)
			if c.devices == "virtio" && !strings.Contains(out, "virtio") {
				t.Errorf("--devices virtio: the guest did not find its disk through virtio:\n%s", out)
			}
			unmountNow(t, m.Dir)
		})
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
