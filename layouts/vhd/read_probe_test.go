package vhd_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/layouts/probe"
)

// TestProbe checks that probing finds VHD and VHDX images made by qemu-img,
// and leaves other formats alone.
func TestProbe(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	cases := []struct {
		name, format, opts, want string
	}{
		{"dynamic.vhd", "vpc", "subformat=dynamic", "vhd"},
		{"fixed.vhd", "vpc", "subformat=fixed", "vhd"},
		{"dynamic.vhdx", "vhdx", "subformat=dynamic", "vhdx"},
		{"fixed.vhdx", "vhdx", "subformat=fixed", "vhdx"},
		{"plain.raw", "raw", "", "raw"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			args := []string{"create", "-q", "-f", c.format}
			if c.opts != "" {
				args = append(args, "-o", c.opts)
			}
			if out, err := exec.Command("qemu-img", append(args, p, "3M")...).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img: %v: %s", err, out)
			}
			d, err := probe.Open(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Format() != c.want {
				t.Fatalf("probed as %s, want %s", d.Format(), c.want)
			}
		})
	}
}
