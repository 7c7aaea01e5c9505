package materialize_test

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/testenv"
)

// reflinkSources writes, under dir, a raw disk of 128 MiB holding 48 MiB
// of random data (with a hole between), and the same disk as a flat and
// as a sparse VMDK.
func reflinkSources(t *testing.T, dir string) (raw string, srcs map[string]string) {
	t.Helper()
	raw = filepath.Join(dir, "disk.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 24<<20)
	for _, off := range []int64{0, 96 << 20} {
		rand.Read(chunk)
		if _, err := f.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Truncate(128 << 20)
	f.Close()
	flat := filepath.Join(dir, "flat.vmdk")
	sparse := filepath.Join(dir, "sparse.vmdk")
	qemuImg(t, "convert", "-O", "vmdk", "-o", "subformat=monolithicFlat", raw, flat)
	qemuImg(t, "convert", "-O", "vmdk", "-o", "subformat=monolithicSparse", raw, sparse)
	// The same disk in a flat extent that starts 512 bytes into its file:
	// no block of it aligns with the output's.
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	u, err := os.Create(filepath.Join(dir, "unaligned-flat.bin"))
	if err != nil {
		t.Fatal(err)
	}
	u.Truncate(512 + int64(len(b)))
	for _, off := range []int64{0, 96 << 20} { // sparse, like the raw disk
		if _, err := u.WriteAt(b[off:off+24<<20], 512+off); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	unaligned := filepath.Join(dir, "unaligned.vmdk")
	desc := "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n" +
		"RW 262144 FLAT \"unaligned-flat.bin\" 1\n\nddb.adapterType = \"ide\"\n"
	if err := os.WriteFile(unaligned, []byte(desc), 0o644); err != nil {
		t.Fatal(err)
	}
	return raw, map[string]string{"raw": raw, "flat": flat, "sparse": sparse, "unaligned": unaligned}
}

// used is the space in use on the file system of dir, after a sync.
func used(t *testing.T, dir string) int64 {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	unix.Syncfs(int(d.Fd()))
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(d.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// materializeRaw runs materialize --format raw and returns the written
// disk and the bytes the summary says were shared with the source.
func materializeRaw(t *testing.T, src, dest string) (disk string, shared int64) {
	t.Helper()
	out, err := testenv.VMFS(t, "materialize", "--format", "raw", "--progress", "json", src, dest)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var last struct {
		Event  string
		Shared *int64
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Event != "done" || last.Shared == nil {
		t.Fatalf("last progress line %q (%v): want a done event that says what was shared", lines[len(lines)-1], err)
	}
	disks, _ := filepath.Glob(filepath.Join(dest, "*-disk0.raw"))
	if len(disks) != 1 {
		t.Fatalf("%s: disks %v, want one", dest, disks)
	}
	return disks[0], *last.Shared
}

// TestMaterializeReflink: on XFS (reflink=1) and btrfs, materialize of a
// raw disk, a flat and a sparse VMDK to raw on the same file system shares
// every data block with the source (the summary says so; the file system's
// used space grows by at most 1 % of the data), the output equals the
// source per qemu-img compare, and a write to the output leaves the source
// as it was. (A write to the source cannot be tried, as the source is never
// written, in a test either; that it never shows in the output is the file
// system's copy-on-write promise for shared extents.)
func TestMaterializeReflink(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	const data = 48 << 20
	for _, fs := range []struct {
		name string
		mkfs []string
	}{
		{"xfs", []string{"mkfs.xfs", "-q", "-m", "reflink=1"}},
		{"btrfs", []string{"mkfs.btrfs", "-q"}},
	} {
		t.Run(fs.name, func(t *testing.T) {
			mnt := testenv.LoopFS(t, fs.name, fs.mkfs...)
			srcDir := filepath.Join(mnt, "src")
			os.Mkdir(srcDir, 0o755)
			raw, srcs := reflinkSources(t, srcDir)
			before := testenv.SHA256Tree(t, srcDir)
			for _, kind := range []string{"raw", "flat", "sparse", "unaligned"} {
				t.Run(kind, func(t *testing.T) {
					u0 := used(t, mnt)
					disk, shared := materializeRaw(t, srcs[kind], filepath.Join(mnt, "out-"+kind))
					extra := used(t, mnt) - u0
					// At least the data; XFS may report blocks it
					// preallocated past a write as data too.
					if kind == "unaligned" {
						// Nothing can be shared: all read and written.
						if shared != 0 {
							t.Errorf("%s: %d bytes shared, none aligns", kind, shared)
						}
					} else if shared < data || shared > 2*data {
						t.Errorf("%s: %d bytes shared with the source, want all %d bytes of data", kind, shared, data)
					}
					if kind != "unaligned" && extra > data/100 {
						t.Errorf("%s: the file system's used space grew by %d bytes for %d bytes of shared data, want at most 1 %%", kind, extra, data)
					}
					qemuImg(t, "compare", "-f", "raw", "-F", "raw", raw, disk)
					// The output is its own: writing it changes it, and
					// leaves the source alone.
					f, err := os.OpenFile(disk, os.O_WRONLY, 0)
					if err != nil {
						t.Fatal(err)
					}
					mark := []byte(strings.Repeat("output only ", 512))
					if _, err := f.WriteAt(mark, 1<<20); err != nil {
						t.Fatal(err)
					}
					if err := f.Close(); err != nil {
						t.Fatal(err)
					}
					got, err := os.ReadFile(disk)
					if err != nil {
						t.Fatal(err)
					}
					if string(got[1<<20:1<<20+len(mark)]) != string(mark) {
						t.Error("the write to the output does not read back")
					}
					testenv.CheckSame(t, "source after a write to the output", before, testenv.SHA256Tree(t, srcDir))
				})
			}
		})
	}
}

// TestMaterializeNoReflink: where the file system has no reflinks (ext4,
// tmpfs) or the output is on another one, the same run copies, the output
// equals the source and the summary says nothing was shared.
func TestMaterializeNoReflink(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	dirs := map[string]string{"tempdir": t.TempDir()}
	if os.Geteuid() == 0 {
		tmpfs := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512m", "vmfs-test", tmpfs).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", tmpfs).Run() })
		dirs["tmpfs"] = tmpfs
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			raw, srcs := reflinkSources(t, filepath.Join(dir))
			for _, kind := range []string{"raw", "flat", "sparse", "unaligned"} {
				disk, shared := materializeRaw(t, srcs[kind], filepath.Join(dir, "out-"+kind))
				if shared != 0 {
					t.Errorf("%s: %d bytes shared on a file system without reflinks", kind, shared)
				}
				qemuImg(t, "compare", "-f", "raw", "-F", "raw", raw, disk)
			}
		})
	}
}

// TestMaterializeReflinkSpace: bytes a run will share with the source need
// no free space: a cutover of more data than the file system has free
// succeeds where the blocks are shared.
func TestMaterializeReflinkSpace(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	mnt := testenv.LoopFS(t, "xfs", "mkfs.xfs", "-q", "-m", "reflink=1")
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	data := free * 3 / 5 / (1 << 20) * (1 << 20) // then less than data is left free
	raw := filepath.Join(mnt, "big.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte(strings.Repeat("vmfs", 1<<18))
	for off := int64(0); off < data; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	disk, shared := materializeRaw(t, raw, filepath.Join(mnt, "out"))
	if shared < data {
		t.Errorf("%d bytes shared, want all %d", shared, data)
	}
	qemuImg(t, "compare", "-f", "raw", "-F", "raw", raw, disk)
}

// TestMaterializeReflinkOverlay: with an overlay, the blocks written
// through a mount come from the overlay and the rest is shared with the
// source: the output holds the writes, and equals the source elsewhere.
func TestMaterializeReflinkOverlay(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	mnt := testenv.LoopFS(t, "xfs", "mkfs.xfs", "-q", "-m", "reflink=1")
	srcDir := filepath.Join(mnt, "src")
	os.Mkdir(srcDir, 0o755)
	raw, _ := reflinkSources(t, srcDir)
	before := testenv.SHA256Tree(t, srcDir)
	ov := filepath.Join(t.TempDir(), "overlay")
	fuseMnt := testenv.MountDir(t)
	testenv.Mount(t, "--format", "raw", "--overlay", ov, raw, fuseMnt)
	disks, _ := filepath.Glob(filepath.Join(fuseMnt, "*-disk0.raw"))
	if len(disks) != 1 {
		t.Fatalf("mount shows disks %v", disks)
	}
	mark := []byte(strings.Repeat("overlay ", 1<<17)) // 1 MiB
	f, err := os.OpenFile(disks[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(mark, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testenv.Unmount(t, fuseMnt); err != nil {
		t.Fatal(err)
	}
	out, err := testenv.VMFS(t, "materialize", "--format", "raw", "--overlay", ov, "--progress", "json", raw, filepath.Join(mnt, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"shared":`) || strings.Contains(string(out), `"shared":0`) {
		t.Errorf("nothing shared with the source: %s", out)
	}
	outDisks, _ := filepath.Glob(filepath.Join(mnt, "out", "*-disk0.raw"))
	if len(outDisks) != 1 {
		t.Fatalf("output disks %v", outDisks)
	}
	got, err := os.ReadFile(outDisks[0])
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	copy(want[8<<20:], mark)
	if len(got) != len(want) {
		t.Fatalf("output %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("output differs from the source with the overlay's write at byte %d", i)
		}
	}
	testenv.CheckSame(t, "source", before, testenv.SHA256Tree(t, srcDir))
}
