package probe_test

import (
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/probe"
)

// TestChain: an opened disk names its files, newest first, for each
// format qemu-img makes differencing images of, and a disk without
// parents is a chain of one.
func TestChain(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	for _, tc := range []struct{ format, qemu, ext string }{
		{"qcow2", "qcow2", "qcow2"},
		{"vmdk", "vmdk", "vmdk"},
		{"raw", "raw", "img"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			dir := t.TempDir()
			base := filepath.Join(dir, "base."+tc.ext)
			img(t, "create", "-f", tc.qemu, base, "4M")
			want := []layouts.Layer{{File: base, Format: tc.format}}
			top := base
			if tc.format != "raw" {
				mid := filepath.Join(dir, "mid."+tc.ext)
				top = filepath.Join(dir, "top."+tc.ext)
				img(t, "create", "-f", tc.qemu, "-b", "base."+tc.ext, "-F", tc.qemu, mid)
				img(t, "create", "-f", tc.qemu, "-b", "mid."+tc.ext, "-F", tc.qemu, top)
				want = []layouts.Layer{{File: top, Format: tc.format}, {File: mid, Format: tc.format}, want[0]}
			}
			d, err := probe.Open(top, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if got := layouts.Chain(d); !reflect.DeepEqual(got, want) {
				t.Errorf("chain %+v, want %+v", got, want)
			}
		})
	}
}

func img(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
}
