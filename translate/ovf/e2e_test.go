package ovf_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/layouts/vdi"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/ovf"
	"github.com/vmfs/vmfs/translate/vbox"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestOVAMount builds an OVA with tar from an .ovf, a VMDK made by
// qemu-img and a manifest by sha256sum, mounts it with the CLI and
// compares the mounted disk with the source raw image.
func TestOVAMount(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img", "tar", "sha256sum")
	dir := t.TempDir()
	raw := filepath.Join(dir, "src.raw")
	testenv.SmallRaw(t, raw)
	for _, sub := range []string{"streamOptimized", "monolithicSparse"} {
		t.Run(sub, func(t *testing.T) {
			w := filepath.Join(dir, sub)
			os.Mkdir(w, 0o755)
			run(t, w, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, raw, "disk1.vmdk")
			m := &translate.Machine{Name: "ovatest", CPUs: 2, MemoryMiB: 512, Firmware: translate.BIOS,
				Disks: []translate.Disk{{Path: "disk1.vmdk", Bus: translate.BusSCSI, Controller: "lsilogic"}},
				NICs:  []translate.NIC{{MAC: "00:50:56:01:02:03", Model: "vmxnet3", Network: "VM Network", Type: "network"}}}
			outs, _, err := ovf.Target{}.Emit(m, []translate.TargetDisk{{Path: filepath.Join(w, "disk1.vmdk"), Format: "vmdk", Size: 3<<20 + 5*512}}, translate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(w, "vm.ovf"), outs[0].Data, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sha256sum", "vm.ovf", "disk1.vmdk")
			cmd.Dir = w
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			var mf strings.Builder
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.Fields(line)
				fmt.Fprintf(&mf, "SHA256(%s)= %s\n", f[1], f[0])
			}
			os.WriteFile(filepath.Join(w, "vm.mf"), []byte(mf.String()), 0o644)
			run(t, w, "tar", "-cf", "vm.ova", "--format=ustar", "vm.ovf", "vm.mf", "disk1.vmdk")

			got, err := ovf.Parse(filepath.Join(w, "vm.ova"))
			if err != nil {
				t.Fatal(err)
			}
			if got.CPUs != 2 || got.MemoryMiB != 512 || len(got.NICs) != 1 || got.NICs[0].MAC != "00:50:56:01:02:03" {
				t.Fatalf("machine %+v", got)
			}

			mnt := testenv.MountDir(t)
			testenv.Mount(t, "--format", "raw", filepath.Join(w, "vm.ova"), mnt)
			disks, _ := filepath.Glob(filepath.Join(mnt, "*disk0*"))
			if len(disks) != 1 {
				ents, _ := os.ReadDir(mnt)
				t.Fatalf("mounted disks %v in %v", disks, ents)
			}
			run(t, dir, "qemu-img", "compare", "-f", "raw", "-F", "raw", raw, disks[0])

			if sub == "monolithicSparse" {
				checkTargets(t, filepath.Join(w, "vm.ova"), raw)
			}

			// A tampered manifest names the member.
			bad := strings.Replace(mf.String(), "SHA256(disk1.vmdk)= ", "SHA256(disk1.vmdk)= 00", 1)
			bad = bad[:strings.LastIndex(bad, "\n")-2] + "\n"
			os.WriteFile(filepath.Join(w, "vm.mf"), []byte(bad), 0o644)
			run(t, w, "tar", "-cf", "bad.ova", "--format=ustar", "vm.ovf", "vm.mf", "disk1.vmdk")
			_, err = ovf.Parse(filepath.Join(w, "bad.ova"))
			if err == nil || !strings.Contains(err.Error(), "member disk1.vmdk") {
				t.Fatalf("tampered manifest: %v", err)
			}
			if _, err := testenv.TryMount(t, "--format", "raw", filepath.Join(w, "bad.ova"), testenv.MountDir(t)); err == nil || !strings.Contains(err.Error(), "disk1.vmdk") {
				t.Fatalf("mount of a tampered OVA: %v", err)
			}
		})
	}
}

// TestEmitManifest: the .mf holds the SHA256 of the .ovf and asks the view
// for the disks' digests.
func TestEmitManifest(t *testing.T) {
	m := &translate.Machine{Name: "a b", CPUs: 1, MemoryMiB: 64, Disks: []translate.Disk{{Bus: translate.BusSATA}}}
	outs, _, err := ovf.Target{}.Emit(m, []translate.TargetDisk{{Path: "/m/a_b-disk0.vmdk", Format: "vmdk", Size: 1 << 20}}, translate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[0].Name != "a_b.ovf" || outs[1].Name != "a_b.mf" {
		t.Fatalf("files %v", outs)
	}
	s := sha256.Sum256(outs[0].Data)
	if want := "SHA256(a_b.ovf)= " + hex.EncodeToString(s[:]) + "\n"; string(outs[1].Data) != want {
		t.Fatalf("manifest %q, want %q", outs[1].Data, want)
	}
	if !outs[1].DiskDigests || outs[0].DiskDigests {
		t.Fatalf("DiskDigests: .ovf %v, .mf %v", outs[0].DiskDigests, outs[1].DiskDigests)
	}
}

// checkManifest runs sha256sum -c on the manifest in dir: every file it
// lists (the .ovf and each disk file) must match, and the disks must be in
// it.
func checkManifest(t *testing.T, dir, mf string, want int) {
	t.Helper()
	cmd := exec.Command("sha256sum", "--strict", "-c", mf)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sha256sum -c %s: %v\n%s", mf, err, out)
	}
	if n := strings.Count(string(out), ": OK"); n != want {
		t.Fatalf("sha256sum -c %s: %d files checked, want %d:\n%s", mf, n, want, out)
	}
}

// checkTargets mounts the OVA as a VirtualBox and as an OVF machine and
// reads the generated descriptors back.
func checkTargets(t *testing.T, ova, raw string) {
	t.Run("virtualbox", func(t *testing.T) {
		mnt := testenv.MountDir(t)
		testenv.Mount(t, "--to", "virtualbox", ova, mnt)
		m, err := vbox.Parse(filepath.Join(mnt, "ovatest.vbox"))
		if err != nil {
			t.Fatal(err)
		}
		if m.CPUs != 2 || m.MemoryMiB != 512 || len(m.Disks) != 1 || len(m.NICs) != 1 || m.NICs[0].MAC != "00:50:56:01:02:03" {
			t.Fatalf("machine %+v", m)
		}
		if filepath.Ext(m.Disks[0].Path) != ".vdi" {
			t.Fatalf("disk %s", m.Disks[0].Path)
		}
		// The media registry must name the UUID in the VDI header; until
		// the view passes it (TargetDisk.UUID) the emitter says so.
		f, err := os.Open(m.Disks[0].Path)
		if err != nil {
			t.Fatal(err)
		}
		hu, err := vdi.ImageUUID(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		desc, _ := os.ReadFile(filepath.Join(mnt, "ovatest.vbox"))
		warns, _ := os.ReadFile(filepath.Join(mnt, "ovatest.warnings.txt"))
		switch {
		case strings.Contains(string(desc), "{"+hu+"}"):
		case strings.Contains(string(warns), vbox.WarnEmitDiskUUID):
			t.Logf("image UUID %s not passed to the emitter: %s", hu, strings.TrimSpace(string(warns)))
		default:
			t.Errorf("the .vbox does not name the image UUID %s and does not warn:\n%s", hu, desc)
		}
		run(t, mnt, "qemu-img", "check", "-f", "vdi", m.Disks[0].Path)
		run(t, mnt, "qemu-img", "compare", "-f", "raw", "-F", "vdi", raw, m.Disks[0].Path)
	})
	t.Run("ovf", func(t *testing.T) {
		mnt := testenv.MountDir(t)
		testenv.Mount(t, "--to", "ovf", ova, mnt)
		m, err := ovf.Parse(filepath.Join(mnt, "ovatest.ovf")) // verifies the .mf too
		if err != nil {
			t.Fatal(err)
		}
		if m.CPUs != 2 || m.MemoryMiB != 512 || len(m.Disks) != 1 || m.Disks[0].Size != 3<<20+5*512 || m.NICs[0].MAC != "00:50:56:01:02:03" {
			t.Fatalf("machine %+v disks %+v", m, m.Disks)
		}
		run(t, mnt, "qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, m.Disks[0].Path)
		checkManifest(t, mnt, "ovatest.mf", 2)
	})
	t.Run("ovf-materialize-overlay", func(t *testing.T) {
		// A write through a mount changes the disk; the manifest of the
		// materialized package hashes the disk with that write.
		ovl := t.TempDir()
		mnt := testenv.MountDir(t)
		testenv.Mount(t, "--to", "ovf", "--format", "raw", "--overlay", ovl, ova, mnt)
		f, err := os.OpenFile(filepath.Join(mnt, "ovatest-disk0.raw"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("written through the mount"), 4096); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		checkManifest(t, mnt, "ovatest.mf", 2)
		if err := testenv.Unmount(t, mnt); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(t.TempDir(), "out")
		if out, err := testenv.VMFS(t, "materialize", "--progress", "none", "--to", "ovf", "--format", "raw", "--overlay", ovl, ova, dest); err != nil {
			t.Fatalf("materialize: %v\n%s", err, out)
		}
		checkManifest(t, dest, "ovatest.mf", 2)
		if _, err := ovf.Parse(filepath.Join(dest, "ovatest.ovf")); err != nil {
			t.Fatal(err)
		}
		cmp := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", raw, filepath.Join(dest, "ovatest-disk0.raw"))
		if out, err := cmp.CombinedOutput(); err == nil {
			t.Fatalf("the materialized disk equals the source: the write through the mount is missing\n%s", out)
		}
	})
}
