package testenv

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Kill kills QEMU (SIGKILL) if it is still running and waits for it to be
// gone, for tests that must release the disk files before the guest is done
// (a vmfs daemon killed under a running guest).
func (vm *VM) Kill(timeout time.Duration) bool {
	select {
	case <-vm.done:
		return true
	default:
	}
	_ = vm.cmd.Process.Kill()
	select {
	case <-vm.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Wait waits up to timeout for QEMU to exit by itself and reports whether
// it did (without failing the test, unlike WaitExit).
func (vm *VM) Wait(timeout time.Duration) bool {
	select {
	case <-vm.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// ReviveLibvirt is StartLibvirt for a test that needs libvirt now: where
// libvirtd (or virtlogd) stopped answering since StartLibvirt ran — another
// test process that had started them stops them when it exits — it waits a
// moment and starts them again, stopped when Main returns.
func ReviveLibvirt(t testing.TB) {
	t.Helper()
	StartLibvirt(t)
	for i := 0; i < 20 && !libvirtAnswers(); i++ {
		time.Sleep(250 * time.Millisecond)
	}
	if libvirtAnswers() && virtlogdAnswers() {
		return
	}
	if os.Geteuid() != 0 {
		Need(t, "libvirtd stopped answering and only root can start it")
	}
	if !virtlogdAnswers() {
		if err := startDaemon("virtlogd", "/run/vmfs-test-virtlogd.pid"); err != nil {
			t.Logf("testenv: restarting virtlogd: %v", err)
		}
		waitVirtlogd(20 * time.Second)
	}
	if !libvirtAnswers() {
		if err := startDaemon("libvirtd", "/run/vmfs-test-libvirtd.pid"); err != nil {
			t.Logf("testenv: restarting libvirtd: %v", err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for !libvirtAnswers() {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: libvirtd stopped answering on %s and does not come back", libvirtURI)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("testenv: libvirtd had stopped answering (another test process stopped it?); restarted")
}

// SmallRaw writes a raw image at p of partly random content with a zero
// run and a hole, 3 MiB + 2560 bytes: a size that is a multiple of no
// block or cluster size of the formats.
func SmallRaw(t testing.TB, p string) {
	t.Helper()
	const size = 3<<20 + 5*512
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	rand.Read(buf)
	write := func(b []byte, off int64) {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	write(buf, 0)
	write(make([]byte, 128<<10), 256<<10) // zero run
	rand.Read(buf[:100<<10])
	write(buf[:100<<10], 2<<20+12345) // past a hole
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// UEFIVMwareVM writes, in a new temporary directory, a VMware VM for the
// targets' end-to-end tests: src.raw (SmallRaw), the same bytes as the
// monolithicSparse disk.vmdk of vm.vmx, a UEFI Windows guest named name
// with that disk on an LSI Logic SAS controller and an e1000e NIC of MAC
// 00:50:56:01:02:03. extra holds more .vmx lines (numvcpus, the NIC's
// networkName ...). It returns the .vmx and the raw image.
func UEFIVMwareVM(t testing.TB, name, extra string) (vmx, raw string) {
	t.Helper()
	NeedCommands(t, "qemu-img")
	dir := t.TempDir()
	raw = filepath.Join(dir, "src.raw")
	SmallRaw(t, raw)
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", raw, filepath.Join(dir, "disk.vmdk")).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	vmx = filepath.Join(dir, "vm.vmx")
	text := `.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
displayName = "` + name + `"
guestOS = "windows9-64"
firmware = "efi"
memsize = "256"
scsi0.present = "TRUE"
scsi0.virtualDev = "lsisas1068"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "disk.vmdk"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "e1000e"
ethernet0.addressType = "static"
ethernet0.address = "00:50:56:01:02:03"
` + extra
	if err := os.WriteFile(vmx, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return vmx, raw
}
