package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// LoopFS makes a file system of the kind fstype (made by the command mkfs,
// which gets the image's path as its last argument) on a loop device over
// a sparse image file of 1 GiB, and returns where it is mounted; unmounted
// and detached when t ends. Without root or a free loop device the test is
// skipped (CI's mount namespace has a few loop devices, perhaps all busy).
func LoopFS(t testing.TB, fstype string, mkfs ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		Need(t, "loop mounts need root")
	}
	NeedCommands(t, mkfs[0], "losetup", "mount", "umount")
	dir := t.TempDir()
	img := filepath.Join(dir, fstype+".img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 30)
	f.Close()
	if out, err := exec.Command(mkfs[0], append(mkfs[1:], img)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(mkfs, " "), err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("no free loop device for a %s image: losetup: %v: %s", fstype, err, strings.TrimSpace(string(out)))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", fstype, dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s on %s: %v\n%s", dev, mnt, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
	return mnt
}

// ReflinkFS is LoopFS for the file systems that share blocks: XFS with
// reflink=1 and btrfs, by name.
func ReflinkFS(t testing.TB, fstype string) string {
	t.Helper()
	switch fstype {
	case "xfs":
		return LoopFS(t, "xfs", "mkfs.xfs", "-q", "-m", "reflink=1")
	case "btrfs":
		return LoopFS(t, "btrfs", "mkfs.btrfs", "-q")
	}
	t.Fatalf("no reflink file system %q", fstype)
	return ""
}
