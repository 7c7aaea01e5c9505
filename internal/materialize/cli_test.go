package materialize_test

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func qemuImg(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// sparseVM makes a VMware VM with one 256 MiB monolithicSparse disk holding
// 24 MiB of random data in three chunks, and returns the .vmx and the raw
// image it was made from.
func sparseVM(t *testing.T, dir string, dataMiB int) (vmx, raw string) {
	t.Helper()
	raw = filepath.Join(dir, "src.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(256<<20 + 512*3) // not a multiple of any block size
	chunk := make([]byte, dataMiB<<20/3)
	for i, off := range []int64{0, 100 << 20, 250 << 20} {
		rand.Read(chunk)
		if i == 1 {
			clear(chunk[len(chunk)/4 : len(chunk)/2]) // a zero run inside data
		}
		f.WriteAt(chunk, off)
	}
	f.Close()
	qemuImg(t, "convert", "-O", "vmdk", raw, filepath.Join(dir, "disk.vmdk"))
	vmx = filepath.Join(dir, "vm.vmx")
	os.WriteFile(vmx, []byte(`.encoding = "UTF-8"
displayName = "cutover"
memsize = "256"
numvcpus = "1"
firmware = "bios"
sata0.present = "TRUE"
sata0:0.present = "TRUE"
sata0:0.fileName = "disk.vmdk"
`), 0o644)
	return vmx, raw
}

func allocated(t *testing.T, path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestMaterializeFormats: for every target format, the written disk equals
// the source per qemu-img compare, is clean per qemu-img check, is sparse,
// and the descriptor names the new files.
func TestMaterializeFormats(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	src := t.TempDir()
	vmx, raw := sparseVM(t, src, 24)
	before := testenv.SHA256Tree(t, src)
	for _, tc := range []struct {
		to, format, subformat, qemuFormat, file string
		check                                   bool
	}{
		{"libvirt", "raw", "", "raw", "cutover-disk0.raw", false},
		{"libvirt", "qcow2", "", "qcow2", "cutover-disk0.qcow2", true},
		{"libvirt", "vmdk", "", "vmdk", "cutover-disk0.vmdk", true},
		{"libvirt", "vmdk", "monolithicFlat", "vmdk", "cutover-disk0.vmdk", false},
		{"libvirt", "vhdx", "", "vhdx", "cutover-disk0.vhdx", true},
		{"libvirt", "vhd", "", "vpc", "cutover-disk0.vhd", false},
		{"libvirt", "vhd", "fixed", "vpc", "cutover-disk0.vhd", false},
		{"libvirt", "vdi", "", "vdi", "cutover-disk0.vdi", true},
	} {
		t.Run(tc.format+tc.subformat, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "out")
			args := []string{"materialize", "--to", tc.to, "--format", tc.format, "--verify", "--progress", "json"}
			if tc.subformat != "" {
				args = append(args, "--subformat", tc.subformat)
			}
			out, err := testenv.VMFS(t, append(args, vmx, dest)...)
			if err != nil {
				t.Fatal(err)
			}
			var last map[string]any
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["event"] != "done" || last["verified"] != true {
				t.Errorf("last progress line %q (%v)", lines[len(lines)-1], err)
			}
			disk := filepath.Join(dest, tc.file)
			qemuImg(t, "compare", "-f", "raw", "-F", tc.qemuFormat, raw, disk)
			if tc.check {
				qemuImg(t, "check", "-f", tc.qemuFormat, disk)
			}
			if a := allocated(t, disk); a > 40<<20 {
				t.Errorf("%s: %d bytes allocated for 24 MiB of data: not sparse", tc.file, a)
			}
			xml, err := os.ReadFile(filepath.Join(dest, "cutover.xml"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(xml), "file=\""+disk+"\"") {
				t.Errorf("descriptor does not name %s:\n%s", disk, xml)
			}
			if ents, _ := filepath.Glob(filepath.Join(dest, ".*partial")); len(ents) > 0 {
				t.Errorf("partial files left: %v", ents)
			}
		})
	}
	testenv.CheckSame(t, "source", before, testenv.SHA256Tree(t, src))
}

// TestMaterializeKilled: SIGKILL during the copy leaves no file under its
// final name; the next run completes and verifies.
func TestMaterializeKilled(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	src := t.TempDir()
	vmx, raw := sparseVM(t, src, 150)
	bin := testenv.BuildVMFS(t)
	dest := filepath.Join(t.TempDir(), "out")
	for _, delay := range []time.Duration{20 * time.Millisecond, 80 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		cmd := exec.Command(bin, "materialize", "--format", "raw", "--jobs", "1", vmx, dest)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		cmd.Wait()
		// Whatever stands under a final name is complete: the disk equals
		// the source, and a descriptor never stands without its disk.
		disk := filepath.Join(dest, "cutover-disk0.raw")
		_, diskErr := os.Stat(disk)
		if diskErr == nil {
			qemuImg(t, "compare", "-f", "raw", "-F", "raw", raw, disk)
		}
		if _, err := os.Stat(filepath.Join(dest, "cutover.xml")); err == nil && diskErr != nil {
			t.Fatalf("after SIGKILL at %v: the descriptor stands without its disk", delay)
		}
		if cmd.ProcessState.Success() {
			os.RemoveAll(dest) // that run finished before the kill: start over
		}
	}
	// A run after an interrupted one completes without --force.
	if _, err := testenv.VMFS(t, "materialize", "--format", "raw", "--verify", vmx, dest); err != nil {
		t.Fatal(err)
	}
	qemuImg(t, "compare", "-f", "raw", "-F", "raw", raw, filepath.Join(dest, "cutover-disk0.raw"))
	if ents, _ := filepath.Glob(filepath.Join(dest, ".*partial")); len(ents) > 0 {
		t.Errorf("partial files left: %v", ents)
	}
}

// TestMaterializeOverlay: writes made through a mount are included when the
// overlay is named, and left out with --discard-overlay.
func TestMaterializeOverlay(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	src := t.TempDir()
	vmx, raw := sparseVM(t, src, 6)
	ov := filepath.Join(t.TempDir(), "overlay")
	mnt := testenv.MountDir(t)
	testenv.Mount(t, "--format", "qcow2", "--overlay", ov, vmx, mnt)
	// Write through the mounted qcow2 with qemu-io semantics: qemu-img
	// itself opens the image read-write.
	qemuIO(t, filepath.Join(mnt, "cutover-disk0.qcow2"), "write -P 0x5a 64M 1M")
	if err := testenv.Unmount(t, mnt); err != nil {
		t.Fatal(err)
	}

	with := filepath.Join(t.TempDir(), "with")
	if _, err := testenv.VMFS(t, "materialize", "--format", "raw", "--overlay", ov, vmx, with); err == nil {
		// The overlay belongs to the qcow2 view: a raw cutover must not
		// mix it in.
		t.Fatal("materialize with an overlay of another format must fail")
	}
	if _, err := testenv.VMFS(t, "materialize", "--format", "qcow2", "--overlay", ov, "--verify", vmx, with); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "with.raw")
	qemuImg(t, "convert", "-O", "raw", filepath.Join(with, "cutover-disk0.qcow2"), out)
	got, _ := os.ReadFile(out)
	for i := 64 << 20; i < 65<<20; i++ {
		if got[i] != 0x5a {
			t.Fatalf("byte %d: %#x, want the overlay's 0x5a", i, got[i])
		}
	}
	without := filepath.Join(t.TempDir(), "without")
	if _, err := testenv.VMFS(t, "materialize", "--format", "qcow2", "--discard-overlay", vmx, without); err != nil {
		t.Fatal(err)
	}
	qemuImg(t, "compare", "-f", "raw", raw, filepath.Join(without, "cutover-disk0.qcow2"))
}

func qemuIO(t *testing.T, img, cmd string) {
	t.Helper()
	out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", cmd, img).CombinedOutput()
	if err != nil || strings.Contains(string(out), "failed") {
		t.Fatalf("qemu-io %s: %v\n%s", cmd, err, out)
	}
}
