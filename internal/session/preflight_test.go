package session

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/partscan/partscantest"
	"github.com/vmfs/vmfs/translate"
)

const preflightVMX = `.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
displayName = "pf"
memsize = "256"
guestOS = "other-64"
scsi0.present = "TRUE"
scsi0.virtualDev = "lsilogic"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "%DISK%"
`

// mbrDisk writes a raw disk of 4 MiB with one MBR partition from LBA 2048
// whose first sector starts with head.
func mbrDisk(t *testing.T, p string, head []byte) {
	t.Helper()
	b := make([]byte, 4<<20)
	e := b[446:462]
	e[4] = 0x07
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], 4096)
	b[510], b[511] = 0x55, 0xAA
	copy(b[2048*512:], head)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// gptDisk writes a raw disk of 4 MiB whose GPT, made by sfdisk, has one
// partition from 1 MiB starting with head.
func gptDisk(t *testing.T, p string, head []byte) {
	t.Helper()
	testenv.NeedCommands(t, "sfdisk")
	if err := os.WriteFile(p, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", p)
	cmd.Stdin = strings.NewReader("label: gpt\nstart=2048, size=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(head, 1<<20); err != nil {
		t.Fatal(err)
	}
}

func codes(ws []translate.Warning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Code)
	}
	return out
}

// TestPreflight: each pre-flight warning, from a source crafted to have
// what it reports, is in inspect's warnings and in the view's (what a
// mount prints and writes to <name>.warnings.txt); a plain source has
// none of them.
func TestPreflight(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	raw := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "disk.img")
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		return "disk.img"
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) (disk, extra string)
		want  []string
	}{
		{"plain", func(t *testing.T, dir string) (string, string) { return raw(t, dir), "" }, nil},
		{"lck folder", func(t *testing.T, dir string) (string, string) {
			if err := os.Mkdir(filepath.Join(dir, "disk.img.lck"), 0o755); err != nil {
				t.Fatal(err)
			}
			return raw(t, dir), ""
		}, []string{PreflightRunning}},
		{"esxi nfs lock", func(t *testing.T, dir string) (string, string) {
			if err := os.WriteFile(filepath.Join(dir, ".lck-0b00000000000000"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return raw(t, dir), ""
		}, []string{PreflightRunning}},
		{"vmsd and delta vmdk", func(t *testing.T, dir string) (string, string) {
			base, delta := filepath.Join(dir, "base.vmdk"), filepath.Join(dir, "pf-000001.vmdk")
			qemuImg(t, "create", "-q", "-f", "vmdk", base, "4M")
			qemuImg(t, "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", delta)
			vmsd := ".encoding = \"UTF-8\"\nsnapshot.lastUID = \"1\"\nsnapshot.current = \"1\"\nsnapshot0.uid = \"1\"\nsnapshot0.filename = \"pf-Snapshot1.vmsn\"\nsnapshot0.displayName = \"before upgrade\"\nsnapshot0.disk0.fileName = \"base.vmdk\"\nsnapshot.numSnapshots = \"1\"\n"
			if err := os.WriteFile(filepath.Join(dir, "pf.vmsd"), []byte(vmsd), 0o644); err != nil {
				t.Fatal(err)
			}
			return "pf-000001.vmdk", ""
		}, []string{PreflightSnapshots, PreflightDeltaDisk}},
		{"luks on gpt", func(t *testing.T, dir string) (string, string) {
			gptDisk(t, filepath.Join(dir, "disk.img"), []byte("LUKS\xba\xbe\x00\x02"))
			return "disk.img", ""
		}, []string{PreflightLUKS}},
		{"bitlocker on mbr", func(t *testing.T, dir string) (string, string) {
			mbrDisk(t, filepath.Join(dir, "disk.img"), []byte("\xeb\x58\x90-FVE-FS-"))
			return "disk.img", ""
		}, []string{PreflightBitLocker}},
		{"dirty ntfs on mbr", func(t *testing.T, dir string) (string, string) {
			mbrDisk(t, filepath.Join(dir, "disk.img"), partscantest.NTFSVolume(0x0001, false, nil, false))
			return "disk.img", ""
		}, []string{PreflightNTFSDirty}},
		{"hibernated windows on gpt", func(t *testing.T, dir string) (string, string) {
			gptDisk(t, filepath.Join(dir, "disk.img"), partscantest.NTFSVolume(0, false, []byte("HIBR"), true))
			return "disk.img", ""
		}, []string{PreflightHibernated}},
		{"vtpm", func(t *testing.T, dir string) (string, string) {
			return raw(t, dir), "vtpm.present = \"TRUE\"\n"
		}, []string{"VMX_TPM_DROPPED", PreflightTPM}},
		{"encrypted", func(t *testing.T, dir string) (string, string) {
			return raw(t, dir), "encryption.keySafe = \"vmware:key/list/(pair/(null/vmware:key/fqid/a))\"\nencryption.data = \"AAAA\"\nvmx.encryptionType = \"partial\"\n"
		}, []string{"VMX_ENCRYPTED_PARTIAL", PreflightEncrypted}},
		{"secure boot", func(t *testing.T, dir string) (string, string) {
			return raw(t, dir), "firmware = \"efi\"\nuefi.secureBoot.enabled = \"TRUE\"\n"
		}, []string{PreflightSecureBoot}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			disk, extra := tc.setup(t, dir)
			src := filepath.Join(dir, "pf.vmx")
			if err := os.WriteFile(src, []byte(strings.ReplaceAll(preflightVMX, "%DISK%", disk)+extra), 0o644); err != nil {
				t.Fatal(err)
			}
			in, err := Inspect(src, nil, "")
			if err != nil {
				t.Fatal(err)
			}
			got := preflightCodes(in.Machine.Warnings)
			if !slices.Equal(got, preflightCodes(codesOf(tc.want))) {
				t.Errorf("inspect: pre-flight codes %v, want %v\n%v", got, tc.want, in.Machine.Warnings)
			}
			for _, c := range tc.want {
				if !slices.Contains(codes(in.Machine.Warnings), c) {
					t.Errorf("inspect: no %s in %v", c, in.Machine.Warnings)
				}
			}
			s, err := Open(src, Options{To: "libvirt", Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := preflightCodes(s.View.Warnings); !slices.Equal(got, preflightCodes(codesOf(tc.want))) {
				t.Errorf("view: pre-flight codes %v, want %v", got, tc.want)
			}
		})
	}
}

func codesOf(cs []string) []translate.Warning {
	var ws []translate.Warning
	for _, c := range cs {
		ws = append(ws, translate.Warning{Code: c})
	}
	return ws
}

// preflightCodes are the PREFLIGHT_* codes of ws, in order.
func preflightCodes(ws []translate.Warning) []string {
	var out []string
	for _, c := range codes(ws) {
		if strings.HasPrefix(c, "PREFLIGHT_") {
			out = append(out, c)
		}
	}
	return out
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
}

// TestInspectMissingDisk: a descriptor whose disk is missing is
// inspected (the machine, the missing disk listed, a warning), while
// Open, what mount and materialize use, refuses it.
func TestInspectMissingDisk(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "pf.vmx")
	if err := os.WriteFile(src, []byte(strings.ReplaceAll(preflightVMX, "%DISK%", "gone.vmdk")), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := Inspect(src, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if in.Machine.Name != "pf" || len(in.Disks) != 1 || !in.Disks[0].Missing {
		t.Errorf("machine %q, disks %+v", in.Machine.Name, in.Disks)
	}
	if len(in.Missing) != 1 || in.Missing[0].Path != filepath.Join(dir, "gone.vmdk") || in.Missing[0].Where != "scsi0:0" {
		t.Errorf("missing = %+v", in.Missing)
	}
	if !slices.Contains(codes(in.Machine.Warnings), translate.WarnDiskMissing) {
		t.Errorf("no %s in %v", translate.WarnDiskMissing, in.Machine.Warnings)
	}
	_, err = Open(src, Options{To: "libvirt", Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "disk gone.vmdk on scsi0:0 is missing") {
		t.Errorf("Open: err = %v", err)
	}
}

// hugeDisk has more data than any test file system has room for.
type hugeDisk struct{}

func (hugeDisk) ReadAt(p []byte, off int64) (int, error) { clear(p); return len(p), nil }
func (hugeDisk) Size() int64                             { return 1 << 60 }
func (hugeDisk) Format() string                          { return "raw" }
func (hugeDisk) Close() error                            { return nil }
func (hugeDisk) Extents(off, n int64) ([]layouts.Extent, error) {
	return []layouts.Extent{{Off: off, Len: n, Kind: layouts.Data}}, nil
}

// TestPreflightSpace: disks whose data exceeds the destination's free
// space are warned of; a small one is not.
func TestPreflightSpace(t *testing.T) {
	dir := t.TempDir()
	m := &translate.Machine{Disks: []translate.Disk{{Path: "a"}}}
	preflight(m, []layouts.Disk{hugeDisk{}}, dir)
	if got := preflightCodes(m.Warnings); !slices.Equal(got, []string{PreflightSpace}) {
		t.Errorf("huge disk: %v", m.Warnings)
	}
	m = &translate.Machine{Disks: []translate.Disk{{Path: "a"}}}
	preflight(m, []layouts.Disk{layouts.Bytes("raw", make([]byte, 4096))}, dir)
	if got := preflightCodes(m.Warnings); len(got) != 0 {
		t.Errorf("small disk: %v", m.Warnings)
	}
}
