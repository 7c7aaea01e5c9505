package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/testenv"
)

var (
	domainName = regexp.MustCompile(`<name>[^<]*</name>`)
	domainUUID = regexp.MustCompile(`\s*<uuid>[^<]*</uuid>`)
)

// materializedDomain checks DESTDIR after `vmfs materialize --to libvirt`:
// one <name>.xml whose disks are files in DESTDIR that qemu-img check finds
// clean, and that `virsh define` accepts as written (only its name made
// unique and its UUID dropped, as other tests may define the same VM). It
// returns the XML's path and its disks.
func materializedDomain(t *testing.T, dest string) (string, []testenv.Disk) {
	t.Helper()
	xmls, _ := filepath.Glob(filepath.Join(dest, "*.xml"))
	if len(xmls) != 1 {
		ls, _ := os.ReadDir(dest)
		t.Fatalf("%s holds %d .xml files, want 1: %v", dest, len(xmls), ls)
	}
	b, err := os.ReadFile(xmls[0])
	if err != nil {
		t.Fatal(err)
	}
	m, err := testenv.MachineFromDomain(b)
	if err != nil {
		t.Fatalf("%s: %v\n%s", xmls[0], err, b)
	}
	for _, d := range m.Disks {
		if filepath.Dir(d.Path) != dest {
			t.Errorf("%s: disk %s is not in DESTDIR %s", xmls[0], d.Path, dest)
		}
		fi, err := os.Stat(d.Path)
		if err != nil {
			t.Fatalf("%s: %v", xmls[0], err)
		}
		if fi.Mode().Perm()&0o400 == 0 {
			t.Errorf("%s: mode %v", d.Path, fi.Mode())
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	testenv.ReviveLibvirt(t)
	name := fmt.Sprintf("vmfs-cutover-%d-%d", os.Getpid(), time.Now().UnixNano())
	x := domainUUID.ReplaceAllString(domainName.ReplaceAllString(string(b), "<name>"+name+"</name>"), "")
	p := filepath.Join(t.TempDir(), "define.xml")
	if err := os.WriteFile(p, []byte(x), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.Virsh("define", p); err != nil {
		t.Fatalf("virsh define %s (from %s): %v\n%s", p, xmls[0], err, x)
	}
	if _, err := testenv.Virsh("undefine", "--nvram", name); err != nil {
		if _, err2 := testenv.Virsh("undefine", name); err2 != nil {
			t.Errorf("%v; %v", err, err2)
		}
	}
	return xmls[0], m.Disks
}

// TestCutoverBoot boots the BIOS guest once from the mount (its record
// lands in the overlay), then materializes it with --verify as a libvirt VM
// with qcow2 disks: with the same overlay, DESTDIR's guest boots and reads
// the record the mounted boot wrote; with --discard-overlay, DESTDIR's disk
// equals the source disk (qemu-img compare).
func TestCutoverBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Linux under TCG")
	}
	g := testenv.Guest(t)
	testenv.StartLibvirt(t)
	vmx := g.VM(t, testenv.VMLinuxBIOS)
	sourceUnchanged(t, filepath.Dir(vmx))
	overlay := t.TempDir()
	start := time.Now()

	m := bootMount(t, vmx, "--format", "qcow2", "--overlay", overlay)
	bootQEMU(t, m.XML, testenv.BIOS, 0)
	unmountNow(t, m.Dir)
	overlayBefore := testenv.SHA256Tree(t, overlay)

	args := []string{"--to", "libvirt", "--format", "qcow2", "--verify"}
	if testenv.AccelReal() != "kvm" {
		args = append(args, "--domain-type", "qemu")
	}
	for _, c := range []struct {
		name    string
		args    []string
		says    string // the overlay choice materialize prints
		prevRec int    // the record the guest reads from DESTDIR
	}{
		{"with-overlay", []string{"--overlay", overlay}, overlay, 1},
		// --overlay and --discard-overlay exclude each other.
		{"discard-overlay", []string{"--discard-overlay"}, "--discard-overlay", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "dest")
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			testenv.Traversable(t, dest)
			stderr := materializeTo(t, vmx, dest, append(append([]string{}, args...), c.args...)...)
			if !strings.Contains(stderr, c.says) {
				t.Errorf("materialize does not say %q about the overlay:\n%s", c.says, stderr)
			}
			xml, disks := materializedDomain(t, dest)
			if len(disks) != 1 || disks[0].Format != "qcow2" {
				t.Fatalf("%s: disks %+v, want one qcow2", xml, disks)
			}
			if out, err := exec.Command("qemu-img", "check", "-f", "qcow2", disks[0].Path).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img check %s: %v\n%s", disks[0].Path, err, out)
			}
			// Sparse: the guest's disk is mostly holes and zeros.
			var st syscall.Stat_t
			if err := syscall.Stat(disks[0].Path, &st); err != nil {
				t.Fatal(err)
			}
			if virt := rawSize(t, g.LinuxBIOSRaw); st.Blocks*512 > virt/2 {
				t.Errorf("%s: %d bytes allocated for a %d-byte disk of mostly zeros and holes", disks[0].Path, st.Blocks*512, virt)
			} else {
				t.Logf("%s: %d KiB allocated, virtual %d KiB", filepath.Base(disks[0].Path), st.Blocks/2, virt>>10)
			}
			if c.prevRec == 0 {
				compareDisk(t, disks[0], g.LinuxBIOSRaw)
			}
			bootLibvirt(t, xml, testenv.BIOS, c.prevRec)
		})
	}
	testenv.CheckSame(t, "overlay "+overlay, overlayBefore, testenv.SHA256Tree(t, overlay))
	t.Logf("mounted boot, two materializes, two boots from DESTDIR: %v", time.Since(start).Round(time.Millisecond))
}

func rawSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
