package view

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate/libvirt"
	"github.com/vmfs/vmfs/translate/source"
)

// TestCDROMPolicy: an ISO a .vmx names is held to the policy its disks
// are held to. Outside the VM's directory, or a device, the drive is left
// empty with a warning and the descriptor does not name the file; inside,
// or allowed with --allow-path, it is kept.
func TestCDROMPolicy(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "elsewhere.iso")
	if err := os.WriteFile(outside, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		iso   string // "" makes ok.iso in the VM's directory
		allow bool   // --allow-path the ISO's directory
		keep  bool
	}{
		{"in the VM's directory", "", false, true},
		{"outside", outside, false, false},
		{"outside, allowed", outside, true, true},
		{"a host file", "/etc/hostname", false, false},
		{"a device", "/dev/null", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := twoDiskVMX(t)
			iso := tc.iso
			if iso == "" {
				iso = filepath.Join(filepath.Dir(src), "ok.iso")
				if err := os.WriteFile(iso, make([]byte, 4096), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := os.Stat(iso); err != nil {
				t.Skipf("%s: %v", iso, err)
			}
			f, err := os.OpenFile(src, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(f, "ide1:0.present = \"TRUE\"\nide1:0.deviceType = \"cdrom-image\"\nide1:0.fileName = %q\n", iso)
			f.Close()
			env := &layouts.Env{}
			if tc.allow {
				env.AllowDirs = []string{filepath.Dir(iso)}
			}
			l, err := source.Open(src, env)
			if err != nil {
				t.Fatal(err)
			}
			m := l.Machine
			v, err := New(m, libvirt.Target{}, Options{Format: "raw", Dir: "/mnt/view", Env: env})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			var desc strings.Builder
			for _, f := range v.Files {
				if strings.HasSuffix(f.Name, ".xml") {
					b := make([]byte, f.Content.Size())
					f.Content.ReadAt(b, 0)
					desc.Write(b)
				}
			}
			warned := false
			for _, w := range v.Warnings {
				if w.Code == source.WarnCDROMRefused {
					warned = true
					if !strings.Contains(w.Message, iso) {
						t.Errorf("warning %q does not name %s", w.Message, iso)
					}
				}
			}
			named := strings.Contains(desc.String(), iso)
			if named != tc.keep || warned == tc.keep {
				t.Errorf("descriptor names the ISO: %v, warned: %v; want kept: %v\n%s", named, warned, tc.keep, desc.String())
			}
		})
	}
}
