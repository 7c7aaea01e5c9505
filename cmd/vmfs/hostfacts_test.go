package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
)

// TestDomainTypeFollowsHost: with KVM hidden (VMFS_NO_KVM=1), a mount's
// XML asks for domain type qemu and says why; --domain-type kvm wins;
// materialize keeps kvm, as the cutover host is usually another.
func TestDomainTypeFollowsHost(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	t.Setenv("VMFS_NO_KVM", "1")
	dir := t.TempDir()
	qemuImg(t, "create", "-f", "vmdk", filepath.Join(dir, "d.vmdk"), "8M")
	write(t, filepath.Join(dir, "vm.vmx"), strings.Replace(vmxTemplate, "%s", "d.vmdk", 1)+
		"ethernet0.present = \"TRUE\"\nethernet0.virtualDev = \"e1000\"\nethernet0.networkName = \"VM Network\"\n")
	src := filepath.Join(dir, "vm.vmx")
	read := func(t *testing.T, path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		name  string
		args  []string
		want  string   // in the XML
		warns []string // in <name>.warnings.txt
	}{
		{"mount-auto", []string{"mount", "--read-only"}, `<domain type="qemu">`, []string{"MAP_DOMAIN_TYPE", "VMFS_NO_KVM=1", "MAP_NET_RENAMED", `"VM Network"`, "--network-map"}},
		{"mount-explicit-kvm", []string{"mount", "--read-only", "--domain-type", "kvm"}, `<domain type="kvm">`, []string{"MAP_DOMAIN_TYPE", "--domain-type kvm"}},
		{"materialize-auto", []string{"materialize"}, `<domain type="kvm">`, nil},
		{"materialize-explicit-qemu", []string{"materialize", "--domain-type", "qemu"}, `<domain type="qemu">`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out string
			if c.args[0] == "mount" {
				out = testenv.Mount(t, append(c.args[1:], src, testenv.MountDir(t))...)
			} else {
				out = filepath.Join(t.TempDir(), "out")
				if b, err := testenv.VMFS(t, append(c.args, "--progress", "none", src, out)...); err != nil {
					t.Fatalf("%v: %s", err, b)
				}
			}
			xml := read(t, filepath.Join(out, "bad.xml"))
			if !strings.Contains(xml, c.want) {
				t.Errorf("XML lacks %s:\n%s", c.want, xml)
			}
			if c.warns == nil {
				return
			}
			ws := read(t, filepath.Join(out, "bad.warnings.txt"))
			for _, w := range c.warns {
				if !strings.Contains(ws, w) {
					t.Errorf("warnings lack %q:\n%s", w, ws)
				}
			}
		})
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"bad-fallback", []string{"--network-fallback", "bridge"}, "--network-fallback"},
		{"bad-domain-type", []string{"--domain-type", "xen"}, "--domain-type"},
		// qcow2, libvirt's default, has no subformat: it would be ignored.
		{"subformat-of-default-format", []string{"--subformat", "fixed"}, "format qcow2 has no subformats"},
		{"subformat-of-raw", []string{"--format", "raw", "--subformat", "monolithicFlat"}, "format raw has no subformats"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stderr, code := runCLI(t, append(append([]string{"materialize"}, c.args...), src, t.TempDir())...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q, want exit 2 naming %q", code, stderr, c.want)
			}
		})
	}
}
