package mount

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/plain`:         "/mnt/plain",
		`/mnt/with\040space`: "/mnt/with space",
		`/mnt/tab\011here`:   "/mnt/tab\there",
		`/mnt/back\134slash`: `/mnt/back\slash`,
		`/mnt/trailing\04`:   `/mnt/trailing\04`,
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckMountpoint(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	vm := filepath.Join(dir, "vms", "vm")
	os.MkdirAll(vm, 0o755)
	src := filepath.Join(vm, "vm.vmx")
	os.WriteFile(src, nil, 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(filepath.Join(dir, "vms"), link)
	srcs := []string{src}
	for _, tc := range []struct {
		name, path string
		opts       MountpointOptions
		want       string
	}{
		{"ok", empty, MountpointOptions{Sources: srcs}, ""},
		{"missing", filepath.Join(dir, "nope"), MountpointOptions{}, "does not exist"},
		{"file", file, MountpointOptions{}, "not a directory"},
		{"in use", "/proc", MountpointOptions{}, "already in use"},
		{"not empty", dir, MountpointOptions{}, "not empty"},
		{"not empty allowed", dir, MountpointOptions{NonEmpty: true}, ""},
		{"source dir", vm, MountpointOptions{Sources: srcs, NonEmpty: true}, "hide the source file " + src},
		{"source ancestor", filepath.Join(dir, "vms"), MountpointOptions{Sources: srcs, NonEmpty: true}, "hide"},
		{"source ancestor of all", dir, MountpointOptions{Sources: srcs, NonEmpty: true}, "hide"},
		{"symlink to ancestor", link, MountpointOptions{Sources: srcs, NonEmpty: true}, "hide"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckMountpoint(tc.path, tc.opts)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("got %v, want %q naming the path", err, tc.want)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	t.Setenv("VMFS_RUN_DIR", t.TempDir())
	r := Record{Mountpoint: "/nowhere/x", Source: "/src.vmx", PID: os.Getpid()}
	if err := Remember(r); err != nil {
		t.Fatal(err)
	}
	s, ok := Lookup("/nowhere/x")
	if !ok || !s.Alive || s.Mounted {
		t.Fatalf("lookup: %+v %v", s, ok)
	}
	Forget("/nowhere/x")
	if _, ok := Lookup("/nowhere/x"); ok {
		t.Fatal("still listed after Forget")
	}
}

func TestStatusOverlayUsage(t *testing.T) {
	t.Setenv("VMFS_RUN_DIR", t.TempDir())
	ov := t.TempDir()
	os.WriteFile(filepath.Join(ov, "f-disk.data"), make([]byte, 256<<10), 0o600)
	if err := Remember(Record{Mountpoint: "/nowhere/y", Overlay: ov, PID: os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	s, ok := Lookup("/nowhere/y")
	if !ok || s.OverlayBytes < 256<<10 {
		t.Fatalf("overlay usage %d (%v), want at least 256 KiB", s.OverlayBytes, ok)
	}
}

// TestProcessAlive: a running process is alive; one that exited is not,
// reaped or not (a zombie no longer serves its mount).
func TestProcessAlive(t *testing.T) {
	run := exec.Command("sleep", "30")
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer run.Wait()
	defer run.Process.Kill()
	if !processAlive(run.Process.Pid) {
		t.Fatalf("running process %d reported gone", run.Process.Pid)
	}
	z := exec.Command("true")
	if err := z.Start(); err != nil {
		t.Fatal(err)
	}
	// Not waited for: it stays a zombie until Wait below.
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(z.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("exited process %d (a zombie) still reported alive", z.Process.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(z.Process.Pid, 0); err != nil {
		t.Fatalf("the zombie was reaped early (%v): the test proves nothing", err)
	}
	z.Wait()
	if processAlive(z.Process.Pid) {
		t.Fatal("reaped process reported alive")
	}
}
