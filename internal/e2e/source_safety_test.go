package e2e

// The source is never written, replaced or hidden, and no host device is
// read because a descriptor says so: checked through the real binary,
// with the sources' checksums taken before and after every run.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/testenv"
)

// safetyVM is a VMware VM whose disk reaches files in other directories.
type safetyVM struct {
	root string   // holds every directory below
	vmx  string   // the source
	dirs []string // every directory holding a source file
	args []string // --allow-path for the other directories
	// collide is the source file that `materialize --to vmware` into its
	// directory would replace: hostile.vmx, or an extent or backing file
	// named hostile-disk0.vmdk as the generated disk is.
	collide string
}

func (v safetyVM) trees(t *testing.T) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, d := range v.dirs {
		out[d] = testenv.SHA256Tree(t, d)
	}
	return out
}

func (v safetyVM) checkUnchanged(t *testing.T, before map[string]map[string]string) {
	t.Helper()
	for d, sums := range before {
		testenv.CheckSame(t, "source "+d, sums, testenv.SHA256Tree(t, d))
	}
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// safetyVMs builds the VM kinds: a flat VMDK beside the .vmx, a VMDK whose
// extent lies in another (allowed) directory, and a qcow2 whose backing
// file lies in another (allowed) directory.
func safetyVMs() []struct {
	name  string
	build func(t *testing.T) safetyVM
} {
	return []struct {
		name  string
		build func(t *testing.T) safetyVM
	}{
		{"own folder", func(t *testing.T) safetyVM {
			root := t.TempDir()
			vm := filepath.Join(root, "vm")
			mkdirs(t, vm)
			hostileRaw(t, filepath.Join(root, "src.raw"), hostileDiskSize)
			qemuImg(t, vm, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", "../src.raw", "disk.vmdk")
			vmx := writeVMX(t, vm, "hostile.vmx", "disk.vmdk")
			return safetyVM{root: root, vmx: vmx, dirs: []string{vm}, collide: vmx}
		}},
		{"extent folder", func(t *testing.T) safetyVM {
			root := t.TempDir()
			vm, ext := filepath.Join(root, "vm"), filepath.Join(root, "ext")
			mkdirs(t, vm, ext)
			hostileRaw(t, filepath.Join(root, "src.raw"), hostileDiskSize)
			qemuImg(t, vm, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", "../src.raw", "disk.vmdk")
			extent := filepath.Join(ext, "hostile-disk0.vmdk")
			if err := os.Rename(filepath.Join(vm, "disk-flat.vmdk"), extent); err != nil {
				t.Fatal(err)
			}
			desc := filepath.Join(vm, "disk.vmdk")
			b, err := os.ReadFile(desc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(`"disk-flat.vmdk"`)) {
				t.Fatalf("%s names no disk-flat.vmdk:\n%s", desc, b)
			}
			writeFile(t, desc, bytes.Replace(b, []byte(`"disk-flat.vmdk"`), []byte(`"../ext/hostile-disk0.vmdk"`), 1))
			vmx := writeVMX(t, vm, "hostile.vmx", "disk.vmdk")
			return safetyVM{root: root, vmx: vmx, dirs: []string{vm, ext}, args: []string{"--allow-path", ext}, collide: extent}
		}},
		{"qcow2 backing folder", func(t *testing.T) safetyVM {
			root := t.TempDir()
			vm, base := filepath.Join(root, "vm"), filepath.Join(root, "base")
			mkdirs(t, vm, base)
			hostileRaw(t, filepath.Join(root, "src.raw"), hostileDiskSize)
			backing := filepath.Join(base, "hostile-disk0.vmdk")
			qemuImg(t, base, "convert", "-f", "raw", "-O", "vmdk", "../src.raw", backing)
			qemuImg(t, vm, "create", "-f", "qcow2", "-b", "../base/hostile-disk0.vmdk", "-F", "vmdk", "disk.qcow2")
			vmx := writeVMX(t, vm, "hostile.vmx", "disk.qcow2")
			return safetyVM{root: root, vmx: vmx, dirs: []string{vm, base}, args: []string{"--allow-path", base}, collide: backing}
		}},
	}
}

// fgMountTimeout bounds a foreground mount expected to be refused: a
// refusal takes milliseconds, a mount that goes ahead serves until killed.
const fgMountTimeout = 15 * time.Second

// runMountRefusal runs `vmfs mount ARGS` expected to be refused, in the
// foreground (bounded by fgMountTimeout) or with --daemon, and makes sure
// that neither a mount nor a daemon log outlives the test if it was not.
func runMountRefusal(t *testing.T, args ...string) cliRun {
	t.Helper()
	mnt := args[len(args)-1]
	t.Cleanup(func() {
		if err := testenv.Unmount(t, mnt); err != nil {
			t.Error(err)
		}
		os.Remove(mount.LogPath(mnt))
	})
	timeout := hostileTimeout
	if !slices.Contains(args, "--daemon") {
		timeout = fgMountTimeout
	}
	r := runCLI(t, timeout, append([]string{"mount"}, args...)...)
	if testenv.IsMounted(mnt) {
		t.Errorf("%s is mounted after vmfs mount %s", mnt, strings.Join(args, " "))
	}
	return r
}

// checkSafetyRefusal is checkRefused for the source refusals, which also
// must exit 1 (a failure, not a usage error).
func checkSafetyRefusal(t *testing.T, what string, r cliRun, want ...string) {
	t.Helper()
	checkRefused(t, what, r, want)
	if r.code != 1 {
		t.Errorf("%s: exit %d, want 1", what, r.code)
	}
}

// TestMaterializeKeepsSource runs `vmfs materialize --to vmware --force`
// into the directory of a source file it would replace (the .vmx's own,
// a symlink to it, an extent's, a backing file's): refused in one line
// naming both files, and the sources keep every byte.
func TestMaterializeKeepsSource(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	testenv.BuildVMFS(t)
	for _, k := range safetyVMs() {
		t.Run(k.name, func(t *testing.T) {
			v := k.build(t)
			cdir := filepath.Dir(v.collide)
			link := filepath.Join(v.root, "link")
			if err := os.Symlink(cdir, link); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ name, dest string }{
				{"dir", cdir},
				{"symlink", link},
			} {
				t.Run(c.name, func(t *testing.T) {
					before := v.trees(t)
					args := append([]string{"materialize", "--to", "vmware", "--force", "--progress", "none", "--discard-overlay"}, v.args...)
					r := runCLI(t, hostileTimeout, append(args, v.vmx, c.dest)...)
					checkSafetyRefusal(t, "vmfs materialize into "+c.dest, r, "would replace the source file "+v.collide)
					v.checkUnchanged(t, before)
				})
			}
			t.Run("elsewhere", func(t *testing.T) {
				// The same command into a new directory works: the
				// refusals above are the protection, not a broken VM.
				dest := t.TempDir()
				args := append([]string{"materialize", "--to", "vmware", "--force", "--progress", "none", "--discard-overlay"}, v.args...)
				r := runCLI(t, hostileTimeout, append(args, v.vmx, dest)...)
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, r.stderr)
				}
				out := filepath.Join(dest, "hostile-disk0.vmdk")
				qemuImg(t, dest, "compare", "-f", "vmdk", "-F", "raw", out, filepath.Join(v.root, "src.raw"))
			})
		})
	}
}

// TestMountKeepsSourceVisible mounts onto a directory holding a source
// file, and onto an ancestor of one: refused, with --nonempty too, in the
// foreground and with --daemon. A non-empty mountpoint is refused unless
// --nonempty, which then mounts over it.
func TestMountKeepsSourceVisible(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	testenv.BuildVMFS(t)
	for _, k := range safetyVMs() {
		t.Run(k.name, func(t *testing.T) {
			v := k.build(t)
			before := v.trees(t)
			defer v.checkUnchanged(t, before)
			targets := []struct{ name, dir string }{{"ancestor", v.root}}
			for _, d := range v.dirs {
				targets = append(targets, struct{ name, dir string }{"dir " + filepath.Base(d), d})
			}
			for _, m := range targets {
				for _, mode := range [][]string{{"--daemon"}, {"--daemon", "--nonempty"}, {"--nonempty"}} {
					t.Run(m.name+strings.Join(mode, ""), func(t *testing.T) {
						args := append(append(mode, "--to", "libvirt", "--format", "raw", "--overlay", t.TempDir()), v.args...)
						r := runMountRefusal(t, append(args, v.vmx, m.dir)...)
						checkSafetyRefusal(t, "vmfs mount onto "+m.dir, r, m.dir, "would hide the source file")
					})
				}
			}
		})
	}

	t.Run("nonempty", func(t *testing.T) {
		v := safetyVMs()[0].build(t)
		mnt := testenv.MountDir(t)
		t.Cleanup(func() { os.Remove(mount.LogPath(mnt)) })
		keep := filepath.Join(mnt, "keep.txt")
		writeFile(t, keep, []byte("hidden while mounted\n"))
		for _, mode := range [][]string{{"--daemon"}, nil} {
			r := runMountRefusal(t, append(mode, "--to", "libvirt", "--format", "raw", "--overlay", t.TempDir(), v.vmx, mnt)...)
			checkSafetyRefusal(t, "vmfs mount onto a non-empty dir", r, mnt, "not empty", "--nonempty")
			if t.Failed() {
				t.FailNow()
			}
		}
		testenv.Mount(t, "--nonempty", "--to", "libvirt", "--format", "raw", "--overlay", t.TempDir(), v.vmx, mnt)
		qemuImg(t, mnt, "compare", "-f", "raw", "-F", "raw", filepath.Join(mnt, "hostile-disk0.raw"), filepath.Join(v.root, "src.raw"))
		if _, err := os.Stat(keep); err == nil {
			t.Errorf("%s is visible through the mount", keep)
		}
		if err := testenv.Unmount(t, mnt); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(keep); err != nil || string(b) != "hidden while mounted\n" {
			t.Errorf("after unmount, %s: %q %v", keep, b, err)
		}
	})
}

// loopDevice attaches a read-only loop device over a file holding a known
// secret and returns the device and the file; it is detached when the test
// ends. It skips, saying why, where loop devices are not to be had.
func loopDevice(t *testing.T, secret string) (dev, file string) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Need(t, "attaching a loop device needs root")
	}
	testenv.NeedCommands(t, "losetup")
	file = filepath.Join(t.TempDir(), "secret.img")
	b := make([]byte, 1<<20)
	for i := 0; i+len(secret) <= len(b); i += 4096 {
		copy(b[i:], secret)
	}
	writeFile(t, file, b)
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", file).CombinedOutput()
	if err != nil {
		testenv.Need(t, "no loop device: losetup: %v %s", err, bytes.TrimSpace(out))
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", dev, err, out)
		}
	})
	return dev, file
}

// blockDomainXML is a libvirt domain with one block disk on dev.
func blockDomainXML(dev string) string {
	return `<domain type="kvm"><name>blockvm</name><memory unit="KiB">262144</memory><vcpu>1</vcpu>` +
		`<os><type arch="x86_64">hvm</type></os><devices><disk type="block" device="disk">` +
		`<driver name="qemu" type="raw"/><source dev="` + dev + `"/><target dev="vda" bus="virtio"/>` +
		"</disk></devices></domain>\n"
}

// TestDeviceNamedBySource points sources at a host block device (a loop
// device over a file with a secret): a libvirt XML's block disk, a .vmx
// disk, a VMDK extent, a qcow2 backing file. Each is refused by inspect,
// mount and materialize unless --allow-device names the device; the
// libvirt one is then mounted and compared with the device by qemu-img.
// The device named as SRC itself is allowed, as before.
func TestDeviceNamedBySource(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	testenv.BuildVMFS(t)
	const secret = "vmfs-e2e-secret-0123456789"
	dev, file := loopDevice(t, secret)
	fileSum := testenv.SHA256File(t, file)
	t.Cleanup(func() {
		if got := testenv.SHA256File(t, file); got != fileSum {
			t.Errorf("%s changed", file)
		}
	})
	dir := t.TempDir()
	xml := filepath.Join(dir, "vm.xml")
	writeFile(t, xml, []byte(blockDomainXML(dev)))
	vmxDir := filepath.Join(dir, "vmx")
	mkdirs(t, vmxDir)
	vmx := writeVMX(t, vmxDir, "vm.vmx", dev)
	extDir := filepath.Join(dir, "extent")
	mkdirs(t, extDir)
	writeFile(t, filepath.Join(extDir, "disk.vmdk"), []byte("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n"+
		"RW 2048 FLAT \""+dev+"\" 0\n\nddb.adapterType = \"lsilogic\"\n"))
	extVMX := writeVMX(t, extDir, "vm.vmx", "disk.vmdk")
	qDir := filepath.Join(dir, "qcow2")
	mkdirs(t, qDir)
	qemuImg(t, qDir, "create", "-f", "qcow2", "-b", dev, "-F", "raw", "disk.qcow2", "1M")
	qVMX := writeVMX(t, qDir, "vm.vmx", "disk.qcow2")

	sources := []struct {
		name, src string
		args      []string // besides --allow-device, to reach dev at all
	}{
		{"libvirt block disk", xml, nil},
		{"vmx disk", vmx, []string{"--allow-path", "/dev"}},
		{"vmdk extent", extVMX, []string{"--allow-path", "/dev"}},
		{"qcow2 backing file", qVMX, []string{"--allow-path", "/dev"}},
	}
	for _, s := range sources {
		t.Run(s.name, func(t *testing.T) {
			for _, what := range []string{"inspect", "mount --daemon", "mount", "materialize"} {
				var r cliRun
				switch what {
				case "inspect":
					r = runCLI(t, hostileTimeout, append(append([]string{"inspect"}, s.args...), s.src)...)
				case "materialize":
					dest := t.TempDir()
					r = runCLI(t, hostileTimeout, append(append([]string{"materialize", "--to", "libvirt", "--format", "raw", "--progress", "none", "--discard-overlay"}, s.args...), s.src, dest)...)
					if ents, _ := os.ReadDir(dest); len(ents) > 0 {
						t.Errorf("materialize wrote %d files from a source naming %s", len(ents), dev)
					}
				default:
					args := append(strings.Fields(what)[1:], "--to", "libvirt", "--format", "raw", "--overlay", t.TempDir())
					r = runMountRefusal(t, append(append(args, s.args...), s.src, testenv.MountDir(t))...)
				}
				checkSafetyRefusal(t, "vmfs "+what, r, dev, "--allow-device")
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("vmfs %s printed the device's bytes", what)
				}
			}
			// Listed, the device is read.
			r := runCLI(t, hostileTimeout, append(append([]string{"inspect", "--allow-device", dev}, s.args...), s.src)...)
			if r.code != 0 {
				t.Fatalf("inspect --allow-device %s: exit %d: %s", dev, r.code, r.stderr)
			}
		})
	}

	t.Run("mount allowed", func(t *testing.T) {
		mnt := testenv.MountDir(t)
		t.Cleanup(func() { os.Remove(mount.LogPath(mnt)) })
		testenv.Mount(t, "--allow-device", dev, "--to", "libvirt", "--format", "raw", "--overlay", t.TempDir(), xml, mnt)
		img := filepath.Join(mnt, "blockvm-disk0.raw")
		if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", img, dev).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img compare %s %s: %v\n%s", img, dev, err, out)
		}
	})

	t.Run("materialize allowed", func(t *testing.T) {
		dest := t.TempDir()
		r := runCLI(t, hostileTimeout, "materialize", "--allow-device", dev, "--to", "libvirt", "--format", "raw", "--progress", "none", "--discard-overlay", xml, dest)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		out := filepath.Join(dest, "blockvm-disk0.raw")
		if b, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", out, dev).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img compare %s %s: %v\n%s", out, dev, err, b)
		}
	})

	t.Run("device as SRC", func(t *testing.T) {
		r := runCLI(t, hostileTimeout, "inspect", dev)
		if r.code != 0 {
			t.Fatalf("inspect %s: exit %d: %s", dev, r.code, r.stderr)
		}
	})
}

// TestManifestNamesDevice lists a symlink to /dev/zero, and a FIFO, in an
// .ovf's manifest: verifying the manifest must not read them (forever),
// but refuse them, naming the manifest.
func TestManifestNamesDevice(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	testenv.BuildVMFS(t)
	root := t.TempDir()
	hostileRaw(t, filepath.Join(root, "src.raw"), hostileDiskSize)
	vmx := writeVMX(t, root, "hostile.vmx", "src.raw")
	for _, c := range []struct {
		name string
		make func(t *testing.T, p string) error
	}{
		{"device", func(t *testing.T, p string) error { return os.Symlink("/dev/zero", p) }},
		{"fifo", func(t *testing.T, p string) error { return syscall.Mkfifo(p, 0o644) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			r := runCLI(t, hostileTimeout, "materialize", "--to", "ovf", "--format", "vmdk", "--progress", "none", "--discard-overlay", vmx, dir)
			if r.code != 0 {
				t.Fatalf("materialize --to ovf: exit %d: %s", r.code, r.stderr)
			}
			if err := c.make(t, filepath.Join(dir, "extra")); err != nil {
				t.Fatal(err)
			}
			mf := filepath.Join(dir, "hostile.mf")
			b, err := os.ReadFile(mf)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, mf, append(b, "SHA256(extra)= "+strings.Repeat("00", 32)+"\n"...))
			r = runCLI(t, fgMountTimeout, "inspect", filepath.Join(dir, "hostile.ovf"))
			checkSafetyRefusal(t, "vmfs inspect", r, "hostile.mf", "extra", "not a regular file")
		})
	}
}

// TestAllowDeviceUsage: --allow-device names a device file; anything else
// is a usage error (exit 2) naming it.
func TestAllowDeviceUsage(t *testing.T) {
	testenv.BuildVMFS(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "d.img")
	writeFile(t, src, make([]byte, 1<<20))
	for _, dev := range []string{src, filepath.Join(dir, "nothere")} {
		for _, cmd := range [][]string{{"inspect"}, {"materialize", "--discard-overlay"}, {"mount"}} {
			args := append(cmd, "--allow-device", dev, src)
			if cmd[0] != "inspect" {
				args = append(args, t.TempDir()) // DESTDIR, MOUNTPOINT
			}
			r := runCLI(t, hostileTimeout, args...)
			checkRefused(t, "vmfs "+cmd[0]+" --allow-device "+dev, r, []string{"--allow-device", dev})
			if r.code != 2 {
				t.Errorf("vmfs %s --allow-device %s: exit %d, want 2", cmd[0], dev, r.code)
			}
		}
	}
}
