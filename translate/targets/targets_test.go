package targets

import (
	"sort"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	for _, name := range []string{"libvirt", "qemu", "vmware"} {
		t.Run(name, func(t *testing.T) {
			tg, err := Get(name)
			if err != nil {
				t.Fatal(err)
			}
			if tg.Name() != name {
				t.Errorf("name %q", tg.Name())
			}
			want := map[string]string{"libvirt": "qcow2", "qemu": "qcow2", "vmware": "vmdk"}[name]
			if tg.DefaultFormat() != want {
				t.Errorf("default format %q, want %q", tg.DefaultFormat(), want)
			}
		})
	}
	t.Run("case-insensitive", func(t *testing.T) {
		if _, err := Get("LibVirt"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		_, err := Get("no-such-target")
		if err == nil || !strings.Contains(err.Error(), `unknown target "no-such-target"`) || !strings.Contains(err.Error(), "libvirt") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestNames(t *testing.T) {
	names := Names()
	if !sort.StringsAreSorted(names) {
		t.Errorf("not sorted: %v", names)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("duplicate %q", n)
		}
		seen[n] = true
		if _, err := Get(n); err != nil {
			t.Errorf("Get(%q): %v", n, err)
		}
	}
	for _, n := range []string{"libvirt", "qemu", "vmware"} {
		if !seen[n] {
			t.Errorf("%q missing from %v", n, names)
		}
	}
}
