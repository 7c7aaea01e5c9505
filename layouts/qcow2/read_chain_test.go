package qcow2_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/probe"
)

func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// writeRandom writes random data, zero runs and holes to a raw file.
func writeRandom(t *testing.T, path string, size int64, seed int64) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(size)
	for off := int64(0); off < size; {
		n := min(int64(4096*(1+rng.Intn(32))), size-off)
		if rng.Intn(2) == 0 {
			buf := make([]byte, n)
			rng.Read(buf)
			clear(buf[n/3 : n/2])
			f.WriteAt(buf, off)
		}
		off += n
	}
}

// TestMixedChain reads qcow2 overlays over backing files of other formats,
// opened through the probe package, against qemu-img.
func TestMixedChain(t *testing.T) {
	t.Parallel()
	const size = 3<<20 + 5*512
	writes := func(fmt_, p string, seed int) {
		tool(t, "qemu-io", "-f", fmt_,
			"-c", fmt.Sprintf("write -P %d 65536 70000", 0x40+seed),
			"-c", fmt.Sprintf("write -P %d 1048576 4096", 0x50+seed),
			"-c", "write -z 2097152 65536",
			p)
	}
	cases := []struct {
		name  string
		build func(t *testing.T, dir string) string
	}{
		{"qcow2-vmdkflat-raw", func(t *testing.T, dir string) string {
			// A monolithicFlat VMDK: a descriptor over a raw extent.
			writeRandom(t, filepath.Join(dir, "src.raw"), size, 1)
			tool(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", filepath.Join(dir, "src.raw"), filepath.Join(dir, "mid.vmdk"))
			top := filepath.Join(dir, "top.qcow2")
			tool(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.vmdk", "-F", "vmdk", top, fmt.Sprint(size))
			writes("qcow2", top, 2)
			return top
		}},
		{"qcow2-vmdk-vmdk", func(t *testing.T, dir string) string {
			writeRandom(t, filepath.Join(dir, "src.raw"), size, 6)
			tool(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", filepath.Join(dir, "src.raw"), filepath.Join(dir, "base.vmdk"))
			tool(t, "qemu-img", "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", filepath.Join(dir, "mid.vmdk"), fmt.Sprint(size))
			writes("vmdk", filepath.Join(dir, "mid.vmdk"), 1)
			top := filepath.Join(dir, "top.qcow2")
			tool(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.vmdk", "-F", "vmdk", top, fmt.Sprint(size))
			writes("qcow2", top, 2)
			return top
		}},
		{"qcow2-vhd", func(t *testing.T, dir string) string {
			writeRandom(t, filepath.Join(dir, "src.raw"), size, 2)
			tool(t, "qemu-img", "convert", "-f", "raw", "-O", "vpc", filepath.Join(dir, "src.raw"), filepath.Join(dir, "base.vhd"))
			top := filepath.Join(dir, "top.qcow2")
			tool(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.vhd", "-F", "vpc", top, fmt.Sprint(size+1<<20))
			writes("qcow2", top, 3)
			return top
		}},
		{"qcow2-vhdx", func(t *testing.T, dir string) string {
			writeRandom(t, filepath.Join(dir, "src.raw"), size, 3)
			tool(t, "qemu-img", "convert", "-f", "raw", "-O", "vhdx", filepath.Join(dir, "src.raw"), filepath.Join(dir, "base.vhdx"))
			top := filepath.Join(dir, "top.qcow2")
			tool(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.vhdx", "-F", "vhdx", top, fmt.Sprint(size))
			writes("qcow2", top, 4)
			return top
		}},
		{"qcow2-vdi", func(t *testing.T, dir string) string {
			writeRandom(t, filepath.Join(dir, "src.raw"), size, 4)
			tool(t, "qemu-img", "convert", "-f", "raw", "-O", "vdi", filepath.Join(dir, "src.raw"), filepath.Join(dir, "base.vdi"))
			top := filepath.Join(dir, "top.qcow2")
			tool(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.vdi", "-F", "vdi", top, fmt.Sprint(size))
			writes("qcow2", top, 5)
			return top
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := tc.build(t, dir)
			d, err := probe.Open(p, nil)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer d.Close()
			got := make([]byte, d.Size())
			if n, err := d.ReadAt(got, 0); n != len(got) {
				t.Fatalf("ReadAt = %d, %v", n, err)
			}
			conv := filepath.Join(dir, "qemu.raw")
			tool(t, "qemu-img", "convert", "-f", "qcow2", "-O", "raw", p, conv)
			want, _ := os.ReadFile(conv)
			if !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Fatalf("bytes differ from qemu-img convert at %d (sizes %d, %d)", i, len(got), len(want))
			}
			var qm []struct {
				Start, Length int64
				Data, Zero    bool
			}
			json.Unmarshal([]byte(tool(t, "qemu-img", "map", "--output=json", "-f", "qcow2", p)), &qm)
			exts, err := d.Extents(0, d.Size())
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range qm {
				for _, e := range exts {
					lo, hi := max(e.Off, q.Start), min(e.End(), q.Start+q.Length)
					// qemu reports the sparse holes of a flat (raw) extent
					// as data+zero; only data that is not known zero must
					// be Data here.
					if lo < hi && (e.Kind == layouts.Data && !q.Data || q.Data && !q.Zero && e.Kind != layouts.Data) {
						t.Errorf("[%d,%d): ours %v, qemu-img map data=%v", lo, hi, e.Kind, q.Data)
					}
				}
			}
		})
	}
}
