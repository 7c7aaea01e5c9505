package e2e

// Faults while mounted: the source changes or fails under a running mount,
// the overlay's file system fills up. Reads of what is gone fail with EIO,
// everything else keeps reading right, nothing panics, and `vmfs unmount`
// still works.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	mrand "math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/testenv"
)

// faultDiskSize: 4 MiB of partly random content with zero runs and a hole.
const faultDiskSize = 4 << 20

// faultRaw is the content of the fault tests' disk: 64 KiB blocks of random
// data, except every fifth block zero, so that a sparse VMDK holds both.
func faultRaw(size int) []byte {
	b := make([]byte, size)
	r := mrand.New(mrand.NewSource(42))
	for off := 0; off < size; off += 64 << 10 {
		if (off>>16)%5 != 3 {
			r.Read(b[off:min(off+64<<10, size)])
		}
	}
	return b
}

// uniqueMountDir is a new empty mountpoint with a unique base name (the
// daemon names its log after it).
func uniqueMountDir(t *testing.T) string {
	t.Helper()
	var r [6]byte
	rand.Read(r[:])
	mnt := filepath.Join(t.TempDir(), "vmfs-e2e-"+hex.EncodeToString(r[:]))
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.Traversable(t, mnt)
	t.Cleanup(func() { os.Remove(daemonLog(mnt)) })
	return mnt
}

// daemonLog is where `vmfs mount --daemon` logs for mnt.
func daemonLog(mnt string) string {
	return mount.LogPath(mnt)
}

// checkDaemonLog fails on a panic in the daemon's log and returns the
// number of "I/O error" lines it holds. A daemon that unmounted cleanly
// with nothing to log removed its log: that counts as an empty one.
func checkDaemonLog(t *testing.T, mnt string) int {
	t.Helper()
	b, err := os.ReadFile(daemonLog(mnt))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Errorf("daemon log: %v", err)
		return 0
	}
	s := string(b)
	for _, bad := range []string{"panic", "goroutine ", "fatal error"} {
		if strings.Contains(s, bad) {
			t.Errorf("daemon log %s holds %q:\n%s", daemonLog(mnt), bad, s)
		}
	}
	return strings.Count(s, "I/O error")
}

// vmwareVM writes raw as a VMware VM in dir with its disk as a
// monolithicFlat ("flat") or monolithicSparse ("sparse") VMDK and returns
// the .vmx and the file holding the disk's data.
func vmwareVM(t *testing.T, dir, kind string, raw []byte) (vmx, extent string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "src.raw"), raw)
	switch kind {
	case "flat":
		qemuImg(t, dir, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", "src.raw", "disk.vmdk")
		extent = filepath.Join(dir, "disk-flat.vmdk")
	case "sparse":
		qemuImg(t, dir, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", "src.raw", "disk.vmdk")
		extent = filepath.Join(dir, "disk.vmdk")
	default:
		t.Fatalf("vmwareVM: kind %q", kind)
	}
	if err := os.Remove(filepath.Join(dir, "src.raw")); err != nil {
		t.Fatal(err)
	}
	return writeVMX(t, dir, "vm.vmx", "disk.vmdk"), extent
}

// mapEntry is one line of `qemu-img map --output=json`.
type mapEntry struct {
	Start    int64  `json:"start"`
	Length   int64  `json:"length"`
	Data     bool   `json:"data"`
	Zero     bool   `json:"zero"`
	Offset   *int64 `json:"offset"`
	Filename string `json:"filename"`
}

func qemuMap(t *testing.T, path string) []mapEntry {
	t.Helper()
	out, err := exec.Command("qemu-img", "map", "--output=json", path).Output()
	if err != nil {
		t.Fatalf("qemu-img map %s: %v", path, err)
	}
	var m []mapEntry
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("qemu-img map %s: %v", path, err)
	}
	return m
}

// faultBlock is the unit of the fault tests' reads; readaheadBlocks after
// the blocks read before a fault may be in the page cache.
const (
	faultBlock      = 64 << 10
	readaheadBlocks = 1 << 20 / faultBlock
)

// blocksLost says, for every faultBlock of the disk, whether its data lies
// at or beyond byte cut of the extent file (per qemu-img map).
func blocksLost(t *testing.T, vmdk, extent string, cut int64) []bool {
	t.Helper()
	lost := make([]bool, faultDiskSize/faultBlock)
	for _, e := range qemuMap(t, vmdk) {
		// qemu-img names the file only when it is not the image itself.
		if !e.Data || e.Offset == nil || (e.Filename != "" && filepath.Base(e.Filename) != filepath.Base(extent)) {
			continue
		}
		for off := e.Start; off < e.Start+e.Length; off += 512 {
			if *e.Offset+(off-e.Start)+512 > cut {
				lost[off/faultBlock] = true
			}
		}
	}
	return lost
}

// readBlock reads block i of the mounted disk (a fresh descriptor each
// time, so no read is served from an earlier file's state).
func readBlock(path string, i int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, faultBlock)
	n, err := f.ReadAt(b, int64(i)*faultBlock)
	return b[:n], err
}

// TestSourceFaults mounts a VMware VM, changes its source under the mount
// and checks what the mount serves afterwards. Blocks are read at most once
// after the fault and never before it (except the first ones, read to see
// that the mount works), so that the page cache holds none of them.
func TestSourceFaults(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	raw := faultRaw(faultDiskSize)
	type fault struct {
		name string
		// do changes the source; it returns the blocks whose reads must
		// fail (nil: every block must still read right).
		do func(t *testing.T, vmdk, extent string) []bool
		// eitherOK: a block may read right or fail with EIO (the file
		// vmfs holds open may or may not be the one changed).
		eitherOK bool
	}
	faults := []fault{
		{name: "shrink", do: func(t *testing.T, vmdk, extent string) []bool {
			st, err := os.Stat(extent)
			if err != nil {
				t.Fatal(err)
			}
			cut := st.Size() / 2
			lost := blocksLost(t, vmdk, extent, cut)
			if err := os.Truncate(extent, cut); err != nil {
				t.Fatal(err)
			}
			return lost
		}},
		{name: "shrink-to-zero", do: func(t *testing.T, vmdk, extent string) []bool {
			lost := blocksLost(t, vmdk, extent, 0)
			if err := os.Truncate(extent, 0); err != nil {
				t.Fatal(err)
			}
			return lost
		}},
		// vmfs holds the file open: unlinking or renaming another file over
		// it leaves the bytes it serves in place.
		{name: "delete", do: func(t *testing.T, vmdk, extent string) []bool {
			if err := os.Remove(extent); err != nil {
				t.Fatal(err)
			}
			return nil
		}, eitherOK: true},
		{name: "replace", do: func(t *testing.T, vmdk, extent string) []bool {
			junk := make([]byte, 1<<20)
			mrand.New(mrand.NewSource(7)).Read(junk)
			tmp := extent + ".new"
			writeFile(t, tmp, junk)
			if err := os.Rename(tmp, extent); err != nil {
				t.Fatal(err)
			}
			return nil
		}, eitherOK: true},
	}
	// A writable mount reads through its overlay; a read-only one serves
	// the source directly (and may splice from it).
	for _, kind := range []string{"flat", "sparse", "flat-ro", "sparse-ro"} {
		for _, f := range faults {
			t.Run(kind+"/"+f.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				vmx, extent := vmwareVM(t, dir, strings.TrimSuffix(kind, "-ro"), raw)
				mnt := uniqueMountDir(t)
				mode := []string{"--overlay", t.TempDir()}
				if strings.HasSuffix(kind, "-ro") {
					mode = []string{"--read-only"}
				}
				testenv.Mount(t, append(append([]string{"--to", "libvirt", "--format", "raw"}, mode...), vmx, mnt)...)
				disk := mountedDisk(t, mnt, "raw")
				const pre = 4 // blocks read before the fault
				for i := 0; i < pre; i++ {
					b, err := readBlock(disk, i)
					if err != nil || !bytes.Equal(b, raw[i*faultBlock:(i+1)*faultBlock]) {
						size := int64(-1)
						if st, serr := os.Stat(disk); serr == nil {
							size = st.Size()
						}
						t.Fatalf("block %d before the fault: %d bytes, %v (equal: %v); the mounted file's size is now %d",
							i, len(b), err, bytes.Equal(b, raw[i*faultBlock:(i+1)*faultBlock]), size)
					}
				}
				lost := f.do(t, filepath.Join(dir, "disk.vmdk"), extent)
				nLost := checkFaultReads(t, disk, raw, pre, lost, f.eitherOK, false)
				if lost != nil && nLost == 0 {
					t.Errorf("the fault lost no block: the test proves nothing")
				}
				if err := testenv.Unmount(t, mnt); err != nil {
					t.Errorf("after the fault: %v", err)
				}
				logged := checkDaemonLog(t, mnt)
				t.Logf("daemon log: %d \"I/O error\" lines", logged)
				if nLost > 0 && logged == 0 {
					t.Errorf("%d reads failed with EIO and the daemon logged none", nLost)
				}
				if logged > 2 {
					t.Errorf("the daemon logged %d I/O errors for one bad source file, want it once", logged)
				}
			})
		}
	}
	t.Run("io-error-source", func(t *testing.T) {
		// A source whose reads fail with EIO (not a short file): another
		// vmfs mount whose own source shrank. A device-mapper "error"
		// target would do too but needs the dm driver, which containers
		// and CI runners usually lack.
		t.Parallel()
		dirA := t.TempDir()
		vmxA, extent := vmwareVM(t, dirA, "flat", raw)
		mntA := uniqueMountDir(t)
		testenv.Mount(t, "--to", "libvirt", "--format", "raw", "--read-only", vmxA, mntA)
		diskA := mountedDisk(t, mntA, "raw")
		dirB := t.TempDir()
		vmxB := writeVMX(t, dirB, "vm.vmx", diskA)
		mntB := uniqueMountDir(t)
		testenv.Mount(t, "--to", "libvirt", "--format", "raw", "--overlay", t.TempDir(), "--allow-path", mntA, vmxB, mntB)
		diskB := mountedDisk(t, mntB, "raw")
		const pre = 4
		for i := 0; i < pre; i++ {
			if b, err := readBlock(diskB, i); err != nil || !bytes.Equal(b, raw[i*faultBlock:(i+1)*faultBlock]) {
				t.Fatalf("block %d before the fault: %v", i, err)
			}
		}
		cut := int64(len(raw) / 2)
		lost := blocksLost(t, filepath.Join(dirA, "disk.vmdk"), extent, cut)
		if err := os.Truncate(extent, cut); err != nil {
			t.Fatal(err)
		}
		if checkFaultReads(t, diskB, raw, pre, lost, false, true) == 0 {
			t.Errorf("the fault lost no block: the test proves nothing")
		}
		for _, m := range []string{mntB, mntA} {
			if err := testenv.Unmount(t, m); err != nil {
				t.Errorf("after the fault: %v", err)
			}
			t.Logf("%s: daemon logged %d I/O errors", filepath.Base(m), checkDaemonLog(t, m))
		}
	})
}

// checkFaultReads reads every block of the mounted disk from pre on, once,
// after a fault: lost blocks must fail with EIO, the others read right (or,
// with eitherOK, fail with EIO). It returns the number of lost blocks read.
//
// lostMayBeCached: a lost block may still read right, as its bytes may be
// in a page cache below vmfs (a source on another FUSE mount).
func checkFaultReads(t *testing.T, disk string, raw []byte, pre int, lost []bool, eitherOK, lostMayBeCached bool) int {
	t.Helper()
	// The lost blocks first: a readahead from a good block must not be
	// what fails (or fills) them.
	nLost, nGood, nEIO, nCached := 0, 0, 0, 0
	order := make([]int, 0, len(raw)/faultBlock)
	for i := pre; i < len(raw)/faultBlock; i++ {
		if lost != nil && lost[i] {
			order = append(order, i)
		}
	}
	for i := pre; i < len(raw)/faultBlock; i++ {
		if lost == nil || !lost[i] {
			order = append(order, i)
		}
	}
	for _, i := range order {
		want := raw[i*faultBlock : (i+1)*faultBlock]
		b, err := readBlock(disk, i)
		eio := errors.Is(err, syscall.EIO)
		// The kernel's readahead after the first reads may hold the next
		// blocks in the page cache: old bytes or EIO.
		cached := i < pre+readaheadBlocks
		switch {
		case cached && (eio || err == nil && bytes.Equal(b, want)):
			nCached++
		case lost != nil && lost[i] && lostMayBeCached && err == nil && bytes.Equal(b, want):
			nCached++
		case lost != nil && lost[i]:
			nLost++
			if !eio {
				t.Errorf("block %d (data past the cut): err %v, want EIO", i, err)
			}
		case err == nil && bytes.Equal(b, want):
			nGood++
		case eitherOK && eio:
			nEIO++
		case err != nil:
			t.Errorf("block %d: %v, want its bytes", i, err)
		default:
			t.Errorf("block %d: wrong bytes (%d read)", i, len(b))
		}
	}
	t.Logf("%d blocks lost and EIO, %d read right, %d EIO where either was fine, %d maybe in a page cache", nLost, nGood, nEIO, nCached)
	return nLost
}

// mountedDisk is the one <name>-disk0.<format> file of a mount.
func mountedDisk(t *testing.T, mnt, format string) string {
	t.Helper()
	disks, _ := filepath.Glob(filepath.Join(mnt, "*-disk0."+format))
	if len(disks) != 1 {
		ls, _ := os.ReadDir(mnt)
		t.Fatalf("mount %s holds %v, want one *-disk0.%s", mnt, ls, format)
	}
	return disks[0]
}

// TestOverlayFull puts the overlay on a 4 MiB tmpfs and writes through the
// mount until the overlay's file system is full: the failing write (or the
// fsync after it) says ENOSPC, the mount keeps serving what was written
// and synced before, and so does a remount on the same full overlay.
func TestOverlayFull(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	if os.Geteuid() != 0 {
		testenv.Need(t, "mounting a tmpfs needs root")
	}
	ov := filepath.Join(t.TempDir(), "overlay")
	if err := os.Mkdir(ov, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", ov).CombinedOutput(); err != nil {
		testenv.Need(t, "mount -t tmpfs: %v %s", err, out)
	}
	// Registered first, so it runs after the vmfs mounts' cleanups.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", ov).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", ov, err, out)
		}
	})
	const size = 16 << 20
	raw := faultRaw(size)
	dir := t.TempDir()
	vmx, _ := vmwareVM(t, dir, "flat", raw)
	sourceUnchanged(t, dir)

	mnt := uniqueMountDir(t)
	testenv.Mount(t, "--to", "libvirt", "--format", "raw", "--overlay", ov, vmx, mnt)
	disk := mountedDisk(t, mnt, "raw")

	// Write 256 KiB chunks of new data, each followed by fsync, until
	// one fails; every chunk before it is durable.
	const chunk = 256 << 10
	newData := make([]byte, size)
	mrand.New(mrand.NewSource(99)).Read(newData)
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	synced := 0
	var failErr error
	for off := 0; off+chunk <= size; off += chunk {
		if _, err := f.WriteAt(newData[off:off+chunk], int64(off)); err != nil {
			failErr = err
			break
		}
		if err := f.Sync(); err != nil {
			failErr = err
			break
		}
		synced = off + chunk
	}
	f.Close()
	t.Logf("overlay full after %d KiB written and synced: %v", synced>>10, failErr)
	if failErr == nil {
		t.Fatalf("wrote all %d MiB through a 4 MiB overlay without an error", size>>20)
	}
	if !errors.Is(failErr, syscall.ENOSPC) {
		t.Errorf("the write that filled the overlay failed with %v, want ENOSPC", failErr)
	}
	if synced == 0 {
		t.Fatalf("not one chunk fitted the overlay")
	}
	check := func(when string) {
		t.Helper()
		got := make([]byte, size)
		g, err := os.Open(disk)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		defer g.Close()
		if _, err := g.ReadAt(got[:synced], 0); err != nil {
			t.Fatalf("%s: reading the synced data: %v", when, err)
		}
		if !bytes.Equal(got[:synced], newData[:synced]) {
			t.Errorf("%s: the %d KiB written and synced read back different", when, synced>>10)
		}
		// Past the failed chunk the disk is the source's, untouched.
		from := synced + chunk
		if _, err := g.ReadAt(got[from:], int64(from)); err != nil {
			t.Fatalf("%s: reading the unwritten end: %v", when, err)
		}
		if !bytes.Equal(got[from:], raw[from:]) {
			t.Errorf("%s: the unwritten end of the disk is not the source's", when)
		}
	}
	check("full overlay, still mounted")
	if err := testenv.Unmount(t, mnt); err != nil {
		t.Fatalf("unmount with the overlay full: %v", err)
	}
	checkDaemonLog(t, mnt)
	testenv.Mount(t, "--to", "libvirt", "--format", "raw", "--overlay", ov, vmx, mnt)
	disk = mountedDisk(t, mnt, "raw")
	check("remounted on the full overlay")
}
