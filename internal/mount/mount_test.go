package mount

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	for _, tc := range []struct {
		name, path, want string
	}{
		{"ok", dir, ""},
		{"missing", filepath.Join(dir, "nope"), "does not exist"},
		{"file", file, "not a directory"},
		{"in use", "/proc", "already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckMountpoint(tc.path)
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
