package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/testenv"
)

// materializeTo runs `vmfs materialize --progress none ARGS SRC DEST` and
// returns its stderr (warnings and the overlay choice).
func materializeTo(t *testing.T, src, dest string, args ...string) string {
	t.Helper()
	full := append([]string{"materialize", "--progress", "none"}, args...)
	full = append(full, src, dest)
	start := time.Now()
	_, stderr, err := vmfsRun(t, full...)
	if err != nil {
		if notSupported(err) {
			t.Skipf("not supported yet: %v", err)
		}
		t.Fatal(err)
	}
	t.Logf("vmfs %s: %v", strings.Join(full, " "), time.Since(start).Round(time.Millisecond))
	return stderr
}

func sha256Of(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var (
	ovfFileRef    = regexp.MustCompile(`<File ([^>]*?)ovf:href="([^"]+)"([^>]*?)>`)
	ovfSizeAttr   = regexp.MustCompile(`\s*ovf:size="[0-9]*"`)
	ovfSparseVMDK = regexp.MustCompile(`vmdk\.html#(sparse|monolithicSparse)"`)
)

// makeOVA writes the VMware VM vmx as an .ova in dir and returns its path:
// `vmfs materialize --to ovf --format vmdk` gives the .ovf, the .mf and the
// disk; each VMDK is rewritten as streamOptimized (as OVAs carry them) with
// qemu-img, the .ovf's file sizes and disk formats and the manifest
// (SHA256) follow, and tar packs them in the order the OVF specification
// asks: the .ovf first, then the .mf, then the disks, as ustar.
func makeOVA(t *testing.T, vmx, dir string) string {
	t.Helper()
	ova, _, _ := makeOVAParts(t, vmx, dir)
	return ova
}

// makeOVAParts is makeOVA also returning the directory holding the OVA's
// members and their names in tar order.
func makeOVAParts(t *testing.T, vmx, dir string) (ova, gen string, members []string) {
	t.Helper()
	testenv.NeedCommands(t, "qemu-img", "tar")
	gen = filepath.Join(dir, "ovf")
	materializeTo(t, vmx, gen, "--to", "ovf", "--format", "vmdk", "--discard-overlay")
	ovfs, _ := filepath.Glob(filepath.Join(gen, "*.ovf"))
	if len(ovfs) != 1 {
		t.Fatalf("materialize --to ovf: %d .ovf files in %s", len(ovfs), gen)
	}
	ovf := ovfs[0]
	b, err := os.ReadFile(ovf)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var disks []string
	var convErr error
	text = ovfFileRef.ReplaceAllStringFunc(text, func(el string) string {
		sm := ovfFileRef.FindStringSubmatch(el)
		href := sm[2]
		disks = append(disks, href)
		p := filepath.Join(gen, filepath.FromSlash(href))
		if strings.HasSuffix(href, ".vmdk") {
			tmp := p + ".stream"
			out, err := exec.Command("qemu-img", "convert", "-f", "vmdk", "-O", "vmdk",
				"-o", "subformat=streamOptimized", p, tmp).CombinedOutput()
			if err != nil {
				convErr = fmt.Errorf("qemu-img convert %s: %v\n%s", p, err, out)
				return el
			}
			if err := os.Rename(tmp, p); err != nil {
				convErr = err
				return el
			}
		}
		fi, err := os.Stat(p)
		if err != nil {
			convErr = err
			return el
		}
		attrs := ovfSizeAttr.ReplaceAllString(sm[1]+`ovf:href="`+href+`"`+sm[3], "")
		attrs = strings.TrimSuffix(strings.TrimSpace(attrs), "/")
		end := ">"
		if strings.HasSuffix(strings.TrimSpace(sm[3]), "/") {
			end = "/>"
		}
		return fmt.Sprintf(`<File %s ovf:size="%d"%s`, strings.TrimSpace(attrs), fi.Size(), end)
	})
	if convErr != nil {
		t.Fatal(convErr)
	}
	if len(disks) == 0 {
		t.Fatalf("%s: no <File> references:\n%s", ovf, b)
	}
	text = ovfSparseVMDK.ReplaceAllString(text, `vmdk.html#streamOptimized"`)
	if err := os.WriteFile(ovf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	mf := strings.TrimSuffix(ovf, ".ovf") + ".mf"
	var manifest strings.Builder
	members = []string{filepath.Base(ovf)}
	fmt.Fprintf(&manifest, "SHA256(%s)= %s\n", filepath.Base(ovf), sha256Of(t, ovf))
	for _, d := range disks {
		fmt.Fprintf(&manifest, "SHA256(%s)= %s\n", d, sha256Of(t, filepath.Join(gen, filepath.FromSlash(d))))
	}
	if err := os.WriteFile(mf, []byte(manifest.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	members = append(members, filepath.Base(mf))
	members = append(members, disks...)
	ova = filepath.Join(dir, strings.TrimSuffix(filepath.Base(ovf), ".ovf")+".ova")
	tarOVA(t, ova, gen, members)
	return ova, gen, members
}

// tarOVA packs the members (in that order) of dir into ova as ustar.
func tarOVA(t *testing.T, ova, dir string, members []string) {
	t.Helper()
	args := append([]string{"--format=ustar", "--owner=0", "--group=0", "-cf", ova, "-C", dir}, members...)
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		t.Fatalf("tar %v: %v\n%s", args, err, out)
	}
}

// TestSourcesOVAManifest mounts the guest's OVA whose manifest gives a
// wrong SHA256 for the disk: the mount must refuse it, naming the member.
// It boots nothing.
func TestSourcesOVAManifest(t *testing.T) {
	g := testenv.Guest(t)
	vmx := g.VM(t, testenv.VMLinuxBIOS)
	dir := t.TempDir()
	good, gen, members := makeOVAParts(t, vmx, dir)
	if len(members) != 3 || !strings.HasSuffix(members[1], ".mf") {
		t.Fatalf("OVA members %v, want .ovf, .mf and one disk", members)
	}
	mf := filepath.Join(gen, members[1])
	b, err := os.ReadFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	disk := members[2]
	want := sha256Of(t, filepath.Join(gen, disk))
	bad := strings.Replace(string(b), want, strings.Repeat("0", len(want)), 1)
	if bad == string(b) {
		t.Fatalf("%s does not list %s's SHA256 %s:\n%s", mf, disk, want, b)
	}
	if err := os.WriteFile(mf, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	badOVA := filepath.Join(dir, "bad-manifest.ova")
	tarOVA(t, badOVA, gen, members)
	sourceUnchanged(t, dir)

	// The good OVA mounts and shows the guest's disk.
	m := bootMount(t, good, "--read-only")
	compareDisk(t, m.Disks[0], g.LinuxBIOSRaw)
	unmountNow(t, m.Dir)

	mnt := bootMountDir(t)
	_, err = testenv.TryMount(t, "--to", "libvirt", "--read-only", badOVA, mnt)
	if err == nil {
		t.Fatalf("mounted %s whose manifest gives a wrong SHA256 for %s", badOVA, disk)
	}
	if msg := err.Error(); !strings.Contains(msg, disk) || !strings.Contains(strings.ToLower(msg), "manifest") {
		t.Errorf("mount of a bad manifest: %v; want an error naming %s and the manifest", err, disk)
	}
}

// TestSourcesBoot boots the BIOS guest under libvirt from a mount of the
// guest wrapped as an OVA (streamOptimized VMDK inside the tar, read in
// place) and as a VirtualBox VM (.vbox + VDI), both made from the VMware VM
// with the vmfs CLI.
func TestSourcesBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Linux under TCG")
	}
	g := testenv.Guest(t)
	testenv.StartLibvirt(t)
	for _, c := range []struct {
		name string
		make func(t *testing.T, vmx, dir string) string // returns SRC
	}{
		{"ova", makeOVA},
		{"vbox", func(t *testing.T, vmx, dir string) string {
			out := filepath.Join(dir, "vbox")
			materializeTo(t, vmx, out, "--to", "virtualbox", "--discard-overlay")
			vbox, _ := filepath.Glob(filepath.Join(out, "*.vbox"))
			if len(vbox) != 1 {
				t.Fatalf("materialize --to virtualbox: %d .vbox files in %s", len(vbox), out)
			}
			return vbox[0]
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			vmx := g.VM(t, testenv.VMLinuxBIOS)
			dir := t.TempDir()
			src := c.make(t, vmx, dir)
			sourceUnchanged(t, filepath.Dir(src))
			m := bootMount(t, src, "--overlay", t.TempDir())
			if len(m.Disks) != 1 {
				t.Fatalf("%s: %d disks, want 1", m.XML, len(m.Disks))
			}
			compareDisk(t, m.Disks[0], g.LinuxBIOSRaw)
			bootLibvirt(t, m.XML, testenv.BIOS, 0)
			unmountNow(t, m.Dir)
			t.Logf("%s: build, mount, boot: %v", c.name, time.Since(start).Round(time.Millisecond))
		})
	}
}
