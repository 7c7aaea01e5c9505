// Package e2e holds vmfs's end-to-end tests: the test guests of
// testdata/guest wrapped as VMware VMs are mounted with the vmfs binary as
// libvirt VMs and booted from the mount, under plain QEMU and under libvirt,
// BIOS and UEFI; the sources must be byte for byte unchanged afterwards.
//
// The Linux guest's boots are slow under TCG (10 s to a minute each on a
// busy machine): `go test -short` runs only the boot sector and the checks
// that need no boot.
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// mounted is one `vmfs mount --to libvirt` of a VM.
type mounted struct {
	Dir     string // mountpoint
	XML     string // <name>.xml in the mount
	Disks   []testenv.Disk
	Overlay string
}

// notSupported reports whether err is vmfs saying a feature is not there
// yet, which skips the case instead of failing it.
func notSupported(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "not supported") || strings.Contains(s, "unsupported")
}

// mountVM mounts the VM at vmx as a libvirt VM with its writes in overlay
// and checks the mount's layout: one <name>.xml whose disk sources are
// absolute paths inside the mount, named <name>-disk<N>.<format>.
func mountVM(t *testing.T, vmx, overlay string, args ...string) *mounted {
	t.Helper()
	mnt := testenv.MountDir(t)
	full := append([]string{"--to", "libvirt", "--overlay", overlay}, args...)
	full = append(full, vmx, mnt)
	if _, err := testenv.TryMount(t, full...); err != nil {
		if notSupported(err) {
			t.Skipf("not supported yet: %v", err)
		}
		t.Fatal(err)
	}
	xmls, _ := filepath.Glob(filepath.Join(mnt, "*.xml"))
	if len(xmls) != 1 {
		ls, _ := os.ReadDir(mnt)
		t.Fatalf("mount %s holds %d .xml files, want 1: %v", mnt, len(xmls), ls)
	}
	b, err := os.ReadFile(xmls[0])
	if err != nil {
		t.Fatal(err)
	}
	m, err := testenv.MachineFromDomain(b)
	if err != nil {
		t.Fatalf("%s: %v\n%s", xmls[0], err, b)
	}
	name := strings.TrimSuffix(filepath.Base(xmls[0]), ".xml")
	diskName := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `-disk[0-9]+\.[a-z0-9]+$`)
	for _, d := range m.Disks {
		if !filepath.IsAbs(d.Path) || filepath.Dir(d.Path) != mnt {
			t.Errorf("%s: disk source %s is not an absolute path in the mount %s", xmls[0], d.Path, mnt)
		}
		if !diskName.MatchString(filepath.Base(d.Path)) {
			t.Errorf("%s: disk %s is not named %s-disk<N>.<format>", xmls[0], filepath.Base(d.Path), name)
		}
		if _, err := os.Stat(d.Path); err != nil {
			t.Errorf("%s: %v", xmls[0], err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return &mounted{Dir: mnt, XML: xmls[0], Disks: m.Disks, Overlay: overlay}
}

// sourceUnchanged records the checksums of every file under dir and checks
// them again when the test ends, after its mounts are gone (it must be
// called before the mount, as cleanups run last-registered first).
func sourceUnchanged(t *testing.T, dir string) {
	t.Helper()
	before := testenv.SHA256Tree(t, dir)
	t.Cleanup(func() {
		testenv.CheckSame(t, "source "+dir, before, testenv.SHA256Tree(t, dir))
	})
}

// compareDisk checks with qemu-img compare that the disk image in the mount
// holds exactly the guest's raw disk, and with qemu-img check that an image
// format with metadata is consistent.
func compareDisk(t *testing.T, d testenv.Disk, raw string) {
	t.Helper()
	testenv.NeedCommands(t, "qemu-img")
	cmd := exec.Command("qemu-img", "compare", "-f", d.Format, "-F", "raw", d.Path, raw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img compare %s (%s) %s: %v\n%s", d.Path, d.Format, raw, err, out)
	}
	if d.Format == "raw" {
		return
	}
	out, err = exec.Command("qemu-img", "check", "-f", d.Format, d.Path).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 63 { // format without checks
		return
	}
	if err != nil {
		t.Fatalf("qemu-img check %s (%s): %v\n%s", d.Path, d.Format, err, out)
	}
}

var formats = []string{"raw", "qcow2"}

// TestBootSector mounts the boot sector VM (lsilogic, BIOS, 1 GiB disk)
// and boots it from the mount; it prints the sector at 900 MiB, so the far
// end of the disk image must be right too.
func TestBootSector(t *testing.T) {
	g := testenv.Guest(t)
	for _, format := range formats {
		for _, runner := range []string{"qemu", "libvirt"} {
			t.Run(format+"/"+runner, func(t *testing.T) {
				vmx := g.VM(t, testenv.VMBootSector)
				sourceUnchanged(t, filepath.Dir(vmx))
				m := mountVM(t, vmx, t.TempDir(), "--format", format)
				compareDisk(t, m.Disks[0], g.BootSectorRaw)
				var out string
				if runner == "qemu" {
					vm := testenv.BootDomainXML(t, m.XML, testenv.AccelTiny())
					d := vm.WaitFor(t, testenv.BootSectorEnd, testenv.BootTimeout())
					out = vm.Output()
					t.Logf("boot sector done %v after QEMU started", d)
				} else {
					dom := testenv.StartDomain(t, m.XML, testenv.LibvirtAccelTiny())
					d := dom.WaitFor(t, testenv.BootSectorEnd, testenv.BootTimeout())
					out = dom.Output()
					t.Logf("boot sector done %v after virsh start", d)
				}
				if want := testenv.BootSectorRead + g.BootSectorText; !strings.Contains(out, want) {
					t.Fatalf("serial lacks %q:\n%s", want, out)
				}
			})
		}
	}
}

// TestLinuxGuest mounts the Linux guest's VMware VMs (BIOS on pvscsi, UEFI
// on lsilogic) with default options (and with --devices compat and virtio
// in one case each) and boots them from the mount: the
// guest finds its disk, reads the data record, writes the next one and
// powers off. Under QEMU it boots twice on one mount, so the second boot
// must see the first one's write (kept in the overlay, never in the source).
func TestLinuxGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Linux under TCG")
	}
	g := testenv.Guest(t)
	cases := []struct {
		name    string
		vm      string
		fw      testenv.Firmware
		raw     string
		runner  string
		format  string
		devices string // --devices; "" = the default (preserve)
		boots   int
	}{
		{"bios/raw/qemu", testenv.VMLinuxBIOS, testenv.BIOS, g.LinuxBIOSRaw, "qemu", "raw", "", 2},
		{"bios/raw/libvirt", testenv.VMLinuxBIOS, testenv.BIOS, g.LinuxBIOSRaw, "libvirt", "raw", "", 1},
		{"uefi/raw/qemu", testenv.VMLinuxUEFI, testenv.UEFI, g.LinuxUEFIRaw, "qemu", "raw", "", 2},
		{"uefi/raw/libvirt", testenv.VMLinuxUEFI, testenv.UEFI, g.LinuxUEFIRaw, "libvirt", "raw", "", 1},
		{"bios/qcow2/qemu/compat", testenv.VMLinuxBIOS, testenv.BIOS, g.LinuxBIOSRaw, "qemu", "qcow2", "compat", 1},
		{"uefi/qcow2/qemu/virtio", testenv.VMLinuxUEFI, testenv.UEFI, g.LinuxUEFIRaw, "qemu", "qcow2", "virtio", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vmx := g.VM(t, c.vm)
			sourceUnchanged(t, filepath.Dir(vmx))
			args := []string{"--format", c.format}
			if c.devices != "" {
				args = append(args, "--devices", c.devices)
			}
			m := mountVM(t, vmx, t.TempDir(), args...)
			compareDisk(t, m.Disks[0], c.raw)
			for n := 0; n < c.boots; n++ {
				var out string
				if c.runner == "qemu" {
					vm := testenv.BootDomainXML(t, m.XML, testenv.AccelReal())
					vm.WaitFor(t, testenv.GuestDone, testenv.BootTimeout())
					d := vm.WaitExit(t, testenv.BootTimeout())
					out = vm.Output()
					t.Logf("boot %d: powered off %v after QEMU started", n+1, d)
				} else {
					dom := testenv.StartDomain(t, m.XML, testenv.AccelReal())
					dom.WaitFor(t, testenv.GuestDone, testenv.BootTimeout())
					d := dom.WaitShutoff(t, testenv.BootTimeout())
					out = dom.Output()
					t.Logf("boot %d: shut off %v after virsh start", n+1, d)
				}
				drivers := testenv.CheckLinuxBoot(t, out, c.fw, n)
				t.Logf("boot %d: disk found through %s", n+1, drivers)
			}
		})
	}
}

// dataRecord reads the guest's data record from a raw disk image.
func dataRecord(t *testing.T, path string, off int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 512)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return string(line)
}

func writeDataRecord(path string, off int64, rec string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	b := make([]byte, 512)
	copy(b, rec+"\n")
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestWritableMount writes to a mounted disk as a guest would and checks,
// without booting, that the write is read back, survives an unmount and a
// remount on the same overlay, is gone with --fresh, is refused with
// --read-only (which shows the source without the overlay), and never
// reaches the source.
func TestWritableMount(t *testing.T) {
	g := testenv.Guest(t)
	off, err := strconv.ParseInt(g.Env["DATA_PART_OFFSET"], 10, 64)
	if err != nil {
		t.Fatalf("guest.env DATA_PART_OFFSET: %v", err)
	}
	vmx := g.VM(t, testenv.VMLinuxBIOS)
	sourceUnchanged(t, filepath.Dir(vmx))
	overlay := t.TempDir()
	const fresh, written = "VMFSDATA boot=0", "VMFSDATA boot=41"

	steps := []struct {
		name  string
		args  []string
		want  string // record read after mounting
		write string // record to write, "" for none
		erofs bool   // the write must fail with EROFS
	}{
		{name: "first", want: fresh, write: written},
		{name: "remount", want: written},
		// A read-only mount shows the source as it is, without the overlay.
		{name: "read-only", args: []string{"--read-only"}, want: fresh, write: "VMFSDATA boot=99", erofs: true},
		{name: "after-read-only", want: written},
		{name: "fresh", args: []string{"--fresh"}, want: fresh},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			m := mountVM(t, vmx, overlay, append([]string{"--format", "raw"}, s.args...)...)
			disk := m.Disks[0].Path
			if got := dataRecord(t, disk, off); got != s.want {
				t.Fatalf("data record after mount = %q, want %q", got, s.want)
			}
			if s.write == "" {
				return
			}
			err := writeDataRecord(disk, off, s.write)
			if s.erofs {
				if !errors.Is(err, syscall.EROFS) {
					t.Fatalf("write on a --read-only mount: %v, want EROFS", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			if got := dataRecord(t, disk, off); got != s.write {
				t.Fatalf("data record after write = %q, want %q", got, s.write)
			}
		})
	}
}

// TestMountLayout checks the files a libvirt mount shows and that the disk
// image equals the source disk for every VM, without booting.
func TestMountLayout(t *testing.T) {
	g := testenv.Guest(t)
	for _, c := range []struct{ vm, raw string }{
		{testenv.VMBootSector, g.BootSectorRaw},
		{testenv.VMLinuxBIOS, g.LinuxBIOSRaw},
		{testenv.VMLinuxUEFI, g.LinuxUEFIRaw},
	} {
		for _, format := range formats {
			t.Run(fmt.Sprintf("%s/%s", c.vm, format), func(t *testing.T) {
				vmx := g.VM(t, c.vm)
				sourceUnchanged(t, filepath.Dir(vmx))
				m := mountVM(t, vmx, t.TempDir(), "--format", format)
				if len(m.Disks) != 1 {
					t.Fatalf("%s: %d disks, want 1", m.XML, len(m.Disks))
				}
				if m.Disks[0].Format != format {
					t.Errorf("%s: disk format %q, want %q", m.XML, m.Disks[0].Format, format)
				}
				if !strings.HasSuffix(m.Disks[0].Path, "."+format) {
					t.Errorf("%s: disk %s does not end in .%s", m.XML, m.Disks[0].Path, format)
				}
				compareDisk(t, m.Disks[0], c.raw)
			})
		}
	}
}
