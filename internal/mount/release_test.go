package mount

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/testenv"
)

// holder starts a process in a mount namespace of its own, made as
// libvirt makes QEMU's (a private copy of this one, taken now), that runs
// script (sh) and is killed at cleanup.
func holder(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestUnmountWithCopies: a mount that another mount namespace holds a
// copy of (every QEMU libvirt starts while the mount exists does) is
// unmounted at once, its process and record gone, when no file of it is
// open there; when one is, `vmfs unmount` says at once who holds it and
// the mount keeps serving, and once that process is gone it unmounts.
func TestUnmountWithCopies(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Need(t, "root (mount namespaces)")
	}
	testenv.NeedCommands(t, "unshare", "fusermount3")
	src := filepath.Join(t.TempDir(), "disk.raw")
	testenv.SmallRaw(t, src)

	t.Run("no file open", func(t *testing.T) {
		mnt := testenv.Mount(t, "--format", "raw", src, testenv.MountDir(t))
		rec, ok := Lookup(mnt)
		if !ok {
			t.Fatal("no record")
		}
		h := holder(t, "exec sleep 600")
		waitCopy(t, h.Process.Pid, mnt)
		start := time.Now()
		if _, err := testenv.VMFS(t, "unmount", mnt); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("unmount took %v", d)
		}
		if m, _ := IsMounted(mnt); m {
			t.Errorf("%s still mounted", mnt)
		}
		if processAlive(rec.PID) {
			t.Errorf("vmfs process %d still runs", rec.PID)
		}
		if _, ok := Lookup(mnt); ok {
			t.Errorf("record of %s left", mnt)
		}
	})
	t.Run("file open in the copy", func(t *testing.T) {
		mnt := testenv.Mount(t, "--format", "raw", src, testenv.MountDir(t))
		disks, _ := filepath.Glob(filepath.Join(mnt, "*.raw"))
		if len(disks) != 1 {
			t.Fatalf("%s: disks %v", mnt, disks)
		}
		h := holder(t, "exec 3<"+disks[0]+"; exec sleep 600")
		waitOpen(t, h.Process.Pid, 3)
		start := time.Now()
		_, err := testenv.VMFS(t, "unmount", mnt)
		if err == nil || !strings.Contains(err.Error(), "busy") || !strings.Contains(err.Error(), "sleep (pid") {
			t.Fatalf("unmount with a file open elsewhere: %v, want busy naming the sleep process", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the busy answer took %v", d)
		}
		if _, err := os.ReadFile(filepath.Join(mnt, filepath.Base(disks[0]))); err != nil {
			t.Fatalf("the mount stopped serving: %v", err)
		}
		h.Process.Kill()
		h.Wait()
		if _, err := testenv.VMFS(t, "unmount", mnt); err != nil {
			t.Fatalf("unmount once the holder is gone: %v", err)
		}
		if m, _ := IsMounted(mnt); m {
			t.Errorf("%s still mounted", mnt)
		}
	})
}

// waitCopy waits until process pid's mount namespace holds mnt.
func waitCopy(t *testing.T, pid int, mnt string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile(filepathProc(pid, "mountinfo"))
		if strings.Contains(string(b), " "+mnt+" ") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d has no copy of %s", pid, mnt)
}

// waitOpen waits until process pid has descriptor fd open.
func waitOpen(t *testing.T, pid, fd int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if _, err := os.Readlink(filepathProc(pid, "fd/"+strconv.Itoa(fd))); err == nil {
			if comm, _ := os.ReadFile(filepathProc(pid, "comm")); strings.TrimSpace(string(comm)) == "sleep" {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d did not open fd %d", pid, fd)
}

func filepathProc(pid int, rest string) string { return "/proc/" + strconv.Itoa(pid) + "/" + rest }

// TestStopStaleRecord: the record of a vmfs process that is gone, whose
// mount is gone too, is dropped by Stop without an error, so that a
// later unmount does not say "not mounted" over a record that lies.
func TestStopStaleRecord(t *testing.T) {
	t.Setenv("VMFS_RUN_DIR", t.TempDir())
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	if err := Remember(Record{Mountpoint: mnt, PID: dead.Process.Pid, Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := Stop(mnt, time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, ok := Lookup(mnt); ok {
		t.Errorf("the stale record of %s is still there", mnt)
	}
	if err := Stop(mnt, time.Second); err == nil || !strings.Contains(err.Error(), "not mounted") {
		t.Errorf("Stop with neither mount nor record: %v, want not mounted", err)
	}
}

// TestUnmountRightAfterClose: a file read and closed just before `vmfs
// unmount` does not make the mount busy, though the kernel's release of
// it may reach the serving process after close(2) has returned.
func TestUnmountRightAfterClose(t *testing.T) {
	testenv.NeedCommands(t, "fusermount3")
	src := filepath.Join(t.TempDir(), "disk.raw")
	testenv.SmallRaw(t, src)
	for i := range 5 {
		mnt := testenv.Mount(t, "--read-only", "--format", "raw", src, testenv.MountDir(t))
		files, _ := filepath.Glob(filepath.Join(mnt, "*"))
		for _, f := range files {
			if _, err := os.ReadFile(f); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := testenv.VMFS(t, "unmount", mnt); err != nil {
			t.Fatalf("round %d: unmount right after reading %d files: %v", i, len(files), err)
		}
	}
}
