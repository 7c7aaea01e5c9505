package convert

import (
	"strings"
	"testing"
)

// The decision is tested on inspection results as libguestfs gives them;
// no Windows image exists here, so the Windows rows are the plumbing's
// only test (see docs/convert.md).
func TestDecide(t *testing.T) {
	linux := Inspection{Roots: []string{"/dev/sda1"}, Type: "linux", Distro: "debian", Product: "12.15", Major: 12, Minor: 15}
	win := Inspection{Roots: []string{"/dev/sda2"}, Type: "windows", Distro: "windows", Product: "Windows Server 2022 Standard", Major: 10}
	cases := []struct {
		name      string
		in        Inspection
		virtioWin string
		want      []string // substrings of the error; none: nil
	}{
		{"linux", linux, "", nil},
		{"linux-with-drivers", linux, "/srv/virtio-win.iso", nil},
		{"nothing-found", Inspection{}, "", []string{"/mnt/v: cannot convert", "no operating system"}},
		{"multi-boot", Inspection{Roots: []string{"/dev/sda1", "/dev/sdb1"}}, "", []string{"2 operating systems", "/dev/sda1, /dev/sdb1", "not supported"}},
		{"windows-without-drivers", win, "", []string{`"Windows Server 2022 Standard"`, "--virtio-win ISO|DIR", "--devices compat"}},
		{"windows-with-drivers", win, "/srv/virtio-win.iso", nil},
		{"other", Inspection{Roots: []string{"/dev/sda1"}, Type: "freebsd", Distro: "freebsd", Product: "unknown", Major: 14}, "", []string{"freebsd guest (freebsd 14.0)", "Linux and Windows guests only"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Decide("/mnt/v", c.in, c.virtioWin)
			if c.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("not refused")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestEngineEnv(t *testing.T) {
	t.Setenv("LIBGUESTFS_BACKEND", "")
	t.Setenv("LIBGUESTFS_BACKEND_SETTINGS", "")
	env := strings.Join(engineEnv(Options{NoKVM: true, VirtioWin: "/srv/virtio-win.iso"}), " ")
	for _, w := range []string{"LIBGUESTFS_BACKEND=direct", "LIBGUESTFS_BACKEND_SETTINGS=force_tcg", "VIRTIO_WIN=/srv/virtio-win.iso"} {
		if !strings.Contains(env, w) {
			t.Errorf("engine env %q lacks %s", env, w)
		}
	}
	t.Setenv("LIBGUESTFS_BACKEND", "libvirt")
	t.Setenv("LIBGUESTFS_BACKEND_SETTINGS", "force_kvm")
	env = strings.Join(engineEnv(Options{NoKVM: true}), " ")
	if strings.Contains(env, "LIBGUESTFS_BACKEND=") || !strings.Contains(env, "LIBGUESTFS_BACKEND_SETTINGS=force_kvm:force_tcg") || strings.Contains(env, "VIRTIO_WIN") {
		t.Errorf("engine env %q: the user's backend is kept, TCG added to its settings, no VIRTIO_WIN", env)
	}
	if env := engineEnv(Options{}); len(env) != 0 {
		t.Errorf("with KVM and the user's backend: %q, want nothing added", env)
	}
}
