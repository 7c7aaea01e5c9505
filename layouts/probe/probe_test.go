package probe

import (
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/layouts"
)

func TestProbeRefusesKnownUnsupported(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"parallels", "WithoutFreeSpace" + strings.Repeat("\x00", 600), "Parallels"},
		{"parallels-xml", "<?xml version='1.0'?>\n<Parallels_disk_image Version=\"1.0\">", "Parallels"},
		{"qed", "QED\x00" + strings.Repeat("\x00", 600), "QED"},
		{"gzip", "\x1f\x8b\x08\x00" + strings.Repeat("\x00", 600), "gzip"},
		{"xz", "\xfd7zXZ\x00" + strings.Repeat("\x00", 600), "xz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			os.WriteFile(p, []byte(tc.content), 0o644)
			d, err := Open(p, nil)
			if err == nil {
				d.Close()
				t.Fatal("opened as a disk")
			}
			if !errors.Is(err, layouts.ErrUnsupported) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %q: want ErrUnsupported naming %q and the file", err, tc.want)
			}
		})
	}
	// Anything else is raw.
	p := filepath.Join(dir, "plain")
	content := "\xeb\x63\x90" + strings.Repeat("\x00", 509) + "\x55\xaa"
	os.WriteFile(p, []byte(content), 0o644)
	d, err := Open(p, nil)
	if err != nil {
		t.Fatalf("raw: %v", err)
	}
	if d.Format() != "raw" || d.Size() != int64(len(content)) {
		t.Errorf("format %s size %d", d.Format(), d.Size())
	}
	d.Close()
}

// TestProbeNameSaysFormat: a file named as a format that holds none of its
// structures is refused, naming the file and what was missing; names that
// say raw (or say nothing) stay raw.
func TestProbeNameSaysFormat(t *testing.T) {
	dir := t.TempDir()
	random := make([]byte, 1<<20)
	if _, err := rand.New(rand.NewSource(1)).Read(random); err != nil {
		t.Fatal(err)
	}
	text := []byte(strings.Repeat("this is a text file, not a disk\n", 64))
	for _, tc := range []struct {
		name    string
		content []byte
		want    string // "" for raw
	}{
		{"garbage.vmdk", random, "not a VMDK image (no sparse header or descriptor found): refusing to serve it as raw"},
		{"GARBAGE.VMDK", random, "not a VMDK image"},
		{"garbage-s001.vmdk", random, "not a VMDK image"},
		{"text.vmdk", text, "not a VMDK image"},
		{"garbage.vhd", random, "not a VHD image (no conectix footer found)"},
		{"garbage.avhd", random, "not a VHD image"},
		{"garbage.vhdx", random, "not a VHDX image (no vhdxfile signature found)"},
		{"garbage.avhdx", text, "not a VHDX image"},
		{"garbage.vdi", random, "not a VDI image (no VDI signature found)"},
		{"garbage.qcow2", text, "not a QCOW2 image (no QFI magic found)"},
		{"disk-flat.vmdk", random, ""},
		{"disk-f001.vmdk", random, ""},
		{"disk-F012.VMDK", random, ""},
		{"disk.img", random, ""},
		{"disk.raw", random, ""},
		{"disk.iso", text, ""},
		{"disk.bin", random, ""},
		{"disk", random, ""},
		{"disk.vmdk.bak", random, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := Open(p, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want raw, got %v", err)
				}
				defer d.Close()
				if d.Format() != "raw" || d.Size() != int64(len(tc.content)) {
					t.Errorf("format %s size %d, want raw of %d", d.Format(), d.Size(), len(tc.content))
				}
				return
			}
			if err == nil {
				d.Close()
				t.Fatalf("opened as %s", d.Format())
			}
			if msg := err.Error(); !strings.HasPrefix(msg, p+": "+tc.want) || !errors.Is(err, layouts.ErrFormat) {
				t.Errorf("error %q, want %q wrapping ErrFormat", msg, p+": "+tc.want)
			}
		})
	}
}

// TestProbeSectorSize: a disk shorter than one sector is refused whatever
// its name; one that is not a whole number of sectors opens, with a
// warning.
func TestProbeSectorSize(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		size int
		want string // refusal, "" when it opens
		warn bool
	}{
		{"empty.img", 0, "0 bytes, smaller than one 512-byte sector: not a disk", false},
		{"one.raw", 1, "1 bytes, smaller than one 512-byte sector: not a disk", false},
		{"511", 511, "511 bytes, smaller than one 512-byte sector: not a disk", false},
		{"tiny.vmdk", 100, "not a VMDK image", false},
		{"sector.img", 512, "", false},
		{"odd.img", 1000, "", true},
		{"odd-flat.vmdk", 513, "", true},
		{"even.img", 4096, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, make([]byte, tc.size), 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := Open(p, nil)
			if tc.want != "" {
				if err == nil {
					d.Close()
					t.Fatalf("opened a %d-byte file", tc.size)
				}
				if !strings.HasPrefix(err.Error(), p+": "+tc.want) || !errors.Is(err, layouts.ErrFormat) {
					t.Errorf("error %q, want %q wrapping ErrFormat", err, p+": "+tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			code, msg, ok := SizeWarning(d)
			if ok != tc.warn {
				t.Fatalf("warning %v (%s %s), want %v", ok, code, msg, tc.warn)
			}
			if ok && (code != WarnPartialSector || !strings.Contains(msg, "not a multiple of 512")) {
				t.Errorf("warning %s: %s", code, msg)
			}
		})
	}
}

// TestProbeTinyDiskOfAFormat: a well-formed image whose virtual disk is
// smaller than a sector is refused too.
func TestProbeTinyDiskOfAFormat(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	dir := t.TempDir()
	p := filepath.Join(dir, "zero.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-f", "qcow2", p, "0").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	d, err := Open(p, nil)
	if err == nil {
		d.Close()
		t.Fatal("opened a qcow2 of virtual size 0")
	}
	if want := p + ": qcow2 disk of 0 bytes, smaller than one 512-byte sector: not a disk"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestProbeBlockDeviceIsRaw: a block device is raw whatever the name it is
// reached by.
func TestProbeBlockDeviceIsRaw(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Need(t, "attaching a loop device needs root")
	}
	testenv.NeedCommands(t, "losetup")
	dir := t.TempDir()
	img := filepath.Join(dir, "backing")
	random := make([]byte, 1<<20)
	rand.New(rand.NewSource(3)).Read(random)
	if err := os.WriteFile(img, random, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", img).CombinedOutput()
	if err != nil {
		testenv.Need(t, "losetup: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v %s", dev, err, out)
		}
	})
	link := filepath.Join(dir, "disk.vmdk")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	// The device is named by the user (--allow-device, or as SRC).
	d, err := Open(link, &layouts.Env{AllowDevices: []string{dev}})
	if err != nil {
		t.Fatalf("%s (%s): %v", link, dev, err)
	}
	defer d.Close()
	if d.Format() != "raw" || d.Size() != int64(len(random)) {
		t.Errorf("format %s size %d, want raw of %d", d.Format(), d.Size(), len(random))
	}
}
