package targets

import (
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/translate"
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

// TestDescriptorsAreEmitted: the descriptor names a target registers are
// the names its Emit writes, in order.
func TestDescriptorsAreEmitted(t *testing.T) {
	for _, tg := range All() {
		t.Run(tg.Name(), func(t *testing.T) {
			m := optionMachine()
			disks := []translate.TargetDisk{{Path: "/mnt/opt/" + tg.DiskName(m, 0) + "." + tg.DefaultFormat(), Format: tg.DefaultFormat(), Size: 1 << 30}}
			outs, _, err := tg.Emit(m, disks, translate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, o := range outs {
				got = append(got, o.Name)
			}
			for _, d := range tg.Descriptors() {
				want = append(want, translate.FileName(m.Name)+d)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Emit writes %q, the registration says %q", got, want)
			}
		})
	}
}

// TestHelp: the --to help names every target once, in the table's order.
func TestHelp(t *testing.T) {
	h := Help()
	rest, ok := strings.CutPrefix(h, "target: ")
	if !ok {
		t.Fatalf("help %q", h)
	}
	var want []string
	for _, tg := range All() {
		want = append(want, tg.Name())
	}
	if got := strings.Split(rest, ", "); !slices.Equal(got, want) {
		t.Errorf("help names %q, want %q", got, want)
	}
}

// TestAllIsACopy: what All returns cannot change the table.
func TestAllIsACopy(t *testing.T) {
	a := All()
	a[0] = nil
	if All()[0] == nil {
		t.Fatal("All hands out the table itself")
	}
}

// TestREADMETable: the README's table of targets is the one the registry
// makes; the failure prints the table to paste.
func TestREADMETable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), Table()) {
		t.Errorf("README.md lacks the table of targets; it must read:\n%s", Table())
	}
	var names []string
	for _, tg := range All() {
		names = append(names, tg.Name())
	}
	if row := "| `--to " + strings.Join(names, `\|`) + "` |"; !strings.Contains(string(b), row) {
		t.Errorf("README.md's flag table lacks %s", row)
	}
}
