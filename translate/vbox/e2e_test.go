package vbox_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	e2eBlock = 1 << 20
	e2eSize  = 4*e2eBlock + 5*512 // 5 VDI blocks, the last one partial
)

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// writeBlocks writes a raw image of e2eSize bytes: random data in the 1
// MiB blocks whose pattern byte is 'D' (with a zero run), zeros elsewhere.
func writeBlocks(t *testing.T, path string, seed int64, pattern string) []byte {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	data := make([]byte, e2eSize)
	for i := range pattern {
		lo := int64(i) * e2eBlock
		if pattern[i] != 'D' || lo >= e2eSize {
			continue
		}
		blk := data[lo:min(lo+e2eBlock, e2eSize)]
		rng.Read(blk)
		if len(blk) > 8192 {
			clear(blk[4096:8192])
		}
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// vdiUUID is a VirtualBox UUID string and its on-disk form (first three
// fields little-endian).
func vdiUUID(s string) [16]byte {
	var u [16]byte
	var a uint32
	var b, c uint16
	var d, e uint64
	fmt.Sscanf(s, "%08x-%04x-%04x-%04x-%012x", &a, &b, &c, &d, &e)
	binary.LittleEndian.PutUint32(u[0:], a)
	binary.LittleEndian.PutUint16(u[4:], b)
	binary.LittleEndian.PutUint16(u[6:], c)
	binary.BigEndian.PutUint16(u[8:], uint16(d))
	for i := range 6 {
		u[10+i] = byte(e >> (8 * (5 - i)))
	}
	return u
}

// patchHeader writes documented VDI 1.1 header fields: the image type
// (0x4c) when typ is not 0, uuidCreate (0x188), uuidModify (0x198),
// uuidLinkage (0x1a8) and uuidParentModify (0x1b8).
func patchHeader(t *testing.T, path string, typ uint32, create, modify, link, parentModify [16]byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := make([]byte, 0x1d8)
	if _, err := f.ReadAt(h, 0); err != nil {
		t.Fatal(err)
	}
	if typ != 0 {
		binary.LittleEndian.PutUint32(h[0x4c:], typ)
	}
	copy(h[0x188:], create[:])
	copy(h[0x198:], modify[:])
	copy(h[0x1a8:], link[:])
	copy(h[0x1b8:], parentModify[:])
	if _, err := f.WriteAt(h, 0); err != nil {
		t.Fatal(err)
	}
}

// blockMap reads the block map of the VDI at path.
func blockMap(t *testing.T, path string) []uint32 {
	t.Helper()
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := binary.LittleEndian.Uint32(img[0x154:])
	n := binary.LittleEndian.Uint32(img[0x180:])
	m := make([]uint32, n)
	for i := range m {
		m[i] = binary.LittleEndian.Uint32(img[off+4*uint32(i):])
	}
	return m
}

// TestDiffVDIMount mounts a .vbox whose disk is a differencing VDI in
// Snapshots/ over a base VDI in the VM folder, and compares the mounted
// raw disk with the content expected from the two raw images.
func TestDiffVDIMount(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	vm := t.TempDir()
	snap := filepath.Join(vm, "Snapshots")
	os.Mkdir(snap, 0o755)
	const (
		baseID  = "0a1b2c3d-0000-4000-8000-00000000b45e"
		baseMod = "0a1b2c3d-0000-4000-8000-0000000b0d1f"
		childID = "0a1b2c3d-0000-4000-8000-0000000c41d0"
		childMd = "0a1b2c3d-0000-4000-8000-0000000c0d1f"
	)
	baseRaw := filepath.Join(vm, "base.raw")
	childRaw := filepath.Join(vm, "child.raw")
	base := writeBlocks(t, baseRaw, 1, "DDDDD")
	child := writeBlocks(t, childRaw, 2, ".D.D.")
	basePath := filepath.Join(vm, "base.vdi")
	childPath := filepath.Join(snap, "{"+childID+"}.vdi")
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "vdi", baseRaw, basePath)
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "vdi", childRaw, childPath)
	os.Remove(baseRaw)
	os.Remove(childRaw)
	patchHeader(t, basePath, 0, vdiUUID(baseID), vdiUUID(baseMod), [16]byte{}, [16]byte{})
	patchHeader(t, childPath, 4, vdiUUID(childID), vdiUUID(childMd), vdiUUID(baseID), vdiUUID(baseMod))

	// Expected: the child's allocated blocks, the parent's for free ones.
	want := make([]byte, e2eSize)
	fromChild := 0
	for i, e := range blockMap(t, childPath) {
		lo := int64(i) * e2eBlock
		if lo >= e2eSize {
			break
		}
		hi := min(lo+e2eBlock, e2eSize)
		switch {
		case e == 0xffffffff:
			copy(want[lo:hi], base[lo:hi])
		case e == 0xfffffffe:
		default:
			copy(want[lo:hi], child[lo:hi])
			fromChild++
		}
	}
	if fromChild == 0 || bytes.Equal(want, base) {
		t.Fatal("the child holds no block of its own: the test tests too little")
	}
	wantPath := filepath.Join(t.TempDir(), "want.raw")
	if err := os.WriteFile(wantPath, want, 0o644); err != nil {
		t.Fatal(err)
	}

	vbox := fmt.Sprintf(`<?xml version="1.0"?>
<VirtualBox xmlns="http://www.virtualbox.org/" version="1.19-linux">
<Machine uuid="{11111111-2222-3333-4444-555555555555}" name="snapvm" OSType="Debian_64" snapshotFolder="Snapshots">
<MediaRegistry><HardDisks>
<HardDisk uuid="{%s}" location="base.vdi" format="VDI" type="Normal">
<HardDisk uuid="{%s}" location="Snapshots/{%s}.vdi" format="VDI"/>
</HardDisk>
</HardDisks></MediaRegistry>
<Hardware><CPU count="1"/><Memory RAMSize="256"/>
<StorageControllers><StorageController name="SATA" type="AHCI" PortCount="1">
<AttachedDevice type="HardDisk" port="0" device="0"><Image uuid="{%s}"/></AttachedDevice>
</StorageController></StorageControllers>
</Hardware></Machine></VirtualBox>
`, baseID, childID, childID, childID)
	vboxPath := filepath.Join(vm, "snapvm.vbox")
	if err := os.WriteFile(vboxPath, []byte(vbox), 0o644); err != nil {
		t.Fatal(err)
	}

	// The base lies outside the snapshot's own directory: the VM folder
	// is allowed explicitly (see the report on the view's policy).
	mnt := testenv.MountDir(t)
	testenv.Mount(t, "--to", "qemu", "--format", "raw", "--read-only", vboxPath, mnt)
	ents, _ := os.ReadDir(mnt)
	var disks []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".raw") || strings.HasSuffix(e.Name(), ".img") {
			disks = append(disks, filepath.Join(mnt, e.Name()))
		}
	}
	if len(disks) != 1 {
		t.Fatalf("mounted disks %v in %v", disks, ents)
	}
	run(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", wantPath, disks[0])
}
