package layouts_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/probe"
)

// writeFlatVMDK writes a monolithicFlat-style descriptor at path naming the
// given extents (each of sectors 512-byte sectors).
func writeFlatVMDK(t *testing.T, path string, sectors int, extents ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n")
	for _, e := range extents {
		b.WriteString("RW " + strconv.Itoa(sectors) + " FLAT \"" + e + "\" 0\n")
	}
	b.WriteString("\nddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"1\"\nddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.WriteFile(path, randBytes(size), 0o644); err != nil {
		t.Fatal(err)
	}
}

func identity(t *testing.T, path string) layouts.SourceFile {
	t.Helper()
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(real)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return layouts.SourceFile{Path: real, Dev: uint64(sys.Dev), Ino: uint64(sys.Ino)}
}

// TestSourcesRecord opens disks through an Env and checks that every file
// read is recorded once, by resolved path and identity, in every copy of
// the Env made for parents: VMDK extents (one reached through a symlink,
// one in an allowed directory) and a qcow2 backing chain.
func TestSourcesRecord(t *testing.T) {
	root := t.TempDir()
	vm, other := filepath.Join(root, "vm"), filepath.Join(root, "other")
	for _, d := range []string{vm, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, filepath.Join(vm, "a-flat.vmdk"), 4096)
	mustWrite(t, filepath.Join(vm, "b-real.vmdk"), 4096)
	if err := os.Symlink("b-real.vmdk", filepath.Join(vm, "b-flat.vmdk")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(other, "c-flat.vmdk"), 4096)
	desc := filepath.Join(vm, "disk.vmdk")
	writeFlatVMDK(t, desc, 8, "a-flat.vmdk", "b-flat.vmdk", "../other/c-flat.vmdk")

	t.Run("vmdk extents", func(t *testing.T) {
		env := &layouts.Env{AllowDirs: []string{other}, Sources: &layouts.Sources{}}
		d, err := probe.Open(desc, env)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		want := []layouts.SourceFile{
			identity(t, desc),
			identity(t, filepath.Join(vm, "a-flat.vmdk")),
			identity(t, filepath.Join(vm, "b-real.vmdk")),
			identity(t, filepath.Join(other, "c-flat.vmdk")),
		}
		got := env.Sources.Files()
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s not recorded: %+v", w.Path, got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("recorded %d files, want %d: %+v", len(got), len(want), got)
		}
	})

	t.Run("qcow2 backing chain", func(t *testing.T) {
		if _, err := exec.LookPath("qemu-img"); err != nil {
			t.Skip("no qemu-img")
		}
		dir := t.TempDir()
		base := filepath.Join(dir, "base.raw")
		mustWrite(t, base, 1<<20)
		mid := filepath.Join(dir, "mid.qcow2")
		top := filepath.Join(dir, "top.qcow2")
		for _, args := range [][]string{
			{"create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", mid},
			{"create", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top},
		} {
			if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
			}
		}
		env := &layouts.Env{Sources: &layouts.Sources{}}
		d, err := probe.Open(top, env)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		got := env.Sources.Files()
		for _, p := range []string{top, mid, base} {
			if !slices.Contains(got, identity(t, p)) {
				t.Errorf("%s not recorded: %+v", p, got)
			}
		}
	})

	t.Run("find", func(t *testing.T) {
		s := &layouts.Sources{}
		if err := s.Add(desc); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(filepath.Join(vm, "b-flat.vmdk")); err != nil {
			t.Fatal(err)
		}
		hard := filepath.Join(root, "hard.vmdk")
		if err := os.Link(desc, hard); err != nil {
			t.Fatal(err)
		}
		dirLink := filepath.Join(root, "vmlink")
		if err := os.Symlink(vm, dirLink); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			path string
			want string // "" when not a source
		}{
			{desc, desc},
			{filepath.Join(vm, "..", "vm", "disk.vmdk"), desc},
			{hard, desc},
			{filepath.Join(dirLink, "disk.vmdk"), desc},
			{filepath.Join(vm, "b-flat.vmdk"), filepath.Join(vm, "b-real.vmdk")},
			{filepath.Join(dirLink, "b-real.vmdk"), filepath.Join(vm, "b-real.vmdk")},
			{filepath.Join(vm, "a-flat.vmdk"), ""},
			{filepath.Join(vm, "new.vmdk"), ""},
			{filepath.Join(dirLink, "new.vmdk"), ""},
		} {
			sf, ok := s.Find(c.path)
			switch {
			case c.want == "" && ok:
				t.Errorf("Find(%s) = %s, want none", c.path, sf.Path)
			case c.want != "" && (!ok || sf.Path != c.want):
				t.Errorf("Find(%s) = %q %v, want %s", c.path, sf.Path, ok, c.want)
			}
		}
		var none *layouts.Sources
		if _, ok := none.Find(desc); ok {
			t.Error("a nil set finds a file")
		}
	})
}

// TestDevicePolicy checks that a device named by a reference or opened
// through an Env is refused, before it is opened, unless AllowDevices lists
// it (by its path, a symlink to it, or another node with its number), and
// that a character device is never opened as a disk.
func TestDevicePolicy(t *testing.T) {
	root := t.TempDir()
	vm := filepath.Join(root, "vm")
	if err := os.Mkdir(vm, 0o755); err != nil {
		t.Fatal(err)
	}
	from := filepath.Join(vm, "vm.vmx")
	if err := os.Symlink("/dev/null", filepath.Join(vm, "null")); err != nil {
		t.Fatal(err)
	}
	t.Run("character device", func(t *testing.T) {
		for _, env := range []*layouts.Env{nil, {AllowDirs: []string{"/dev"}}, {AllowAny: true}} {
			if _, err := env.Open("/dev/null"); err == nil || !errors.Is(err, layouts.ErrRefused) || !strings.Contains(err.Error(), "--allow-device") {
				t.Errorf("Open(/dev/null) with %+v: %v, want a refusal naming --allow-device", env, err)
			}
			if _, err := env.Resolve(from, "null"); err == nil || !errors.Is(err, layouts.ErrRefused) {
				t.Errorf("Resolve(null) with %+v: %v, want a refusal", env, err)
			}
		}
		env := &layouts.Env{AllowDevices: []string{"/dev/null"}}
		if _, err := env.Open("/dev/null"); err == nil || !strings.Contains(err.Error(), "not a disk") {
			t.Errorf("Open(/dev/null) listed: %v, want a character device refusal", err)
		}
	})

	t.Run("block device", func(t *testing.T) {
		st, err := os.Stat("/dev/loop0")
		if err != nil || st.Mode()&os.ModeDevice == 0 {
			t.Skip("no /dev/loop0 to copy the device number of")
		}
		rdev := st.Sys().(*syscall.Stat_t).Rdev
		// A node of our own with loop0's number, inside the VM's
		// directory: the directory policy allows it, the device policy
		// must not.
		node := filepath.Join(vm, "blk")
		if err := syscall.Mknod(node, syscall.S_IFBLK|0o600, int(rdev)); err != nil {
			t.Skipf("mknod: %v (needs root)", err)
		}
		link := filepath.Join(vm, "disk.img")
		if err := os.Symlink("blk", link); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name  string
			allow []string
			ok    bool
		}{
			{"none", nil, false},
			{"other device", []string{"/dev/null"}, false},
			{"a regular file", []string{from}, false},
			{"by path", []string{node}, true},
			{"by symlink", []string{link}, true},
			{"by number", []string{"/dev/loop0"}, true},
		} {
			t.Run(c.name, func(t *testing.T) {
				env := &layouts.Env{AllowDevices: c.allow, Sources: &layouts.Sources{}}
				_, rerr := env.Resolve(from, "disk.img")
				f, oerr := env.Open(link)
				if f != nil {
					f.Close()
				}
				if c.ok {
					if rerr != nil || oerr != nil {
						t.Fatalf("Resolve: %v; Open: %v; want both allowed", rerr, oerr)
					}
					if got := env.Sources.Paths(); len(got) != 1 || got[0] != node {
						t.Errorf("recorded %v, want [%s]", got, node)
					}
					return
				}
				for what, err := range map[string]error{"Resolve": rerr, "Open": oerr} {
					if err == nil || !errors.Is(err, layouts.ErrRefused) || !strings.Contains(err.Error(), "--allow-device") {
						t.Errorf("%s: %v, want a refusal naming --allow-device", what, err)
					}
				}
				if got := env.Sources.Paths(); len(got) != 0 {
					t.Errorf("a refused device was recorded: %v", got)
				}
			})
		}
		t.Run("listed device outside the directories", func(t *testing.T) {
			env := &layouts.Env{AllowDevices: []string{"/dev/loop0"}}
			if _, err := env.Resolve(from, "/dev/loop0"); err != nil {
				t.Errorf("Resolve(/dev/loop0) listed: %v", err)
			}
			env = &layouts.Env{AllowDirs: []string{"/dev"}}
			if _, err := env.Resolve(from, "/dev/loop0"); err == nil || !strings.Contains(err.Error(), "device file") {
				t.Errorf("Resolve(/dev/loop0) unlisted: %v, want a device refusal", err)
			}
		})
		t.Run("probe", func(t *testing.T) {
			// A disk named by a descriptor (a libvirt XML's block disk
			// goes straight to probe.Open) is held to the policy too.
			if _, err := probe.Open(node, &layouts.Env{}); err == nil || !errors.Is(err, layouts.ErrRefused) {
				t.Errorf("probe.Open(block device): %v, want a refusal", err)
			}
			if _, err := probe.Open(node, nil); err == nil || !errors.Is(err, layouts.ErrRefused) {
				t.Errorf("probe.Open(block device, nil env): %v, want a refusal", err)
			}
		})
	})
}
