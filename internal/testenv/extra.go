package testenv

import (
	"crypto/rand"
	"os"
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
