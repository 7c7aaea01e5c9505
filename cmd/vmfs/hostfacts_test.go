package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

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
		{"vmid-too-small", []string{"--to", "proxmox", "--vmid", "99"}, "--vmid"},
		{"vmid-zero", []string{"--to", "proxmox", "--vmid", "0"}, "--vmid"},
		{"vmid-too-large", []string{"--to", "proxmox", "--vmid", "1000000000"}, "--vmid"},
		{"vmid-not-a-number", []string{"--to", "proxmox", "--vmid", "x"}, "vmid"},
		{"bad-storage", []string{"--to", "proxmox", "--storage", "Local LVM"}, "--storage"},
		{"export-url-not-https", []string{"--to", "kubevirt", "--export-url", "ftp://h/x"}, "--export-url"},
		{"export-url-no-host", []string{"--to", "kubevirt", "--export-url", "https:///x"}, "--export-url"},
		{"export-url-credentials", []string{"--to", "kubevirt", "--export-url", "https://u:p@h:8443"}, "--export-url"},
		{"bad-namespace", []string{"--to", "kubevirt", "--namespace", "VMs"}, "--namespace"},
		{"bad-storage-class", []string{"--to", "kubevirt", "--storage-class", "fast_ssd"}, "--storage-class"},
		{"bad-cert-configmap", []string{"--to", "kubevirt", "--cert-configmap", "-ca"}, "--cert-configmap"},
		{"bad-token-secret", []string{"--to", "kubevirt", "--token-secret", "a/b"}, "--token-secret"},
		{"upload-and-export-url", []string{"--to", "kubevirt", "--upload", "--export-url", "https://h:8443"}, "--export-url"},
		{"upload-and-token-secret", []string{"--to", "kubevirt", "--upload", "--token-secret", "t"}, "--token-secret"},
		// qcow2, libvirt's default, has no subformat: it would be ignored.
		{"subformat-of-default-format", []string{"--subformat", "fixed"}, "qcow2 has no variants"},
		{"subformat-of-raw", []string{"--format", "raw", "--subformat", "monolithicFlat"}, "raw has no variants"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stderr, code := runCLI(t, append(append([]string{"materialize"}, c.args...), src, t.TempDir())...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q, want exit 2 naming %q", code, stderr, c.want)
			}
		})
	}
}

// TestMountStartsOnThisHost mounts a VMware VM whose NIC is on "VM
// Network" with --network-fallback user and starts the mounted XML with
// the system libvirtd, changing only its name and UUID: the NIC is on
// libvirt's 'default' network when this host has it active, on user-mode
// networking (with a MAP_NET_FALLBACK warning) when it has not.
func TestMountStartsOnThisHost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a VM")
	}
	testenv.NeedCommands(t, "qemu-img")
	testenv.StartLibvirt(t)
	dir := t.TempDir()
	qemuImg(t, "create", "-f", "vmdk", filepath.Join(dir, "d.vmdk"), "8M")
	write(t, filepath.Join(dir, "vm.vmx"), strings.Replace(vmxTemplate, "%s", "d.vmdk", 1)+
		"ethernet0.present = \"TRUE\"\nethernet0.virtualDev = \"e1000\"\nethernet0.networkName = \"VM Network\"\n")
	active, err := testenv.Virsh("net-list", "--name")
	if err != nil {
		t.Fatal(err)
	}
	hasDefault := slices.Contains(strings.Fields(active), "default")
	mnt := testenv.Mount(t, "--overlay", t.TempDir(), "--domain-type", "qemu", "--network-fallback", "user", filepath.Join(dir, "vm.vmx"), testenv.MountDir(t))
	b, err := os.ReadFile(filepath.Join(mnt, "bad.xml"))
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := os.ReadFile(filepath.Join(mnt, "bad.warnings.txt"))
	want, wantWarn := `<interface type="user">`, "MAP_NET_FALLBACK"
	if hasDefault {
		want, wantWarn = `<source network="default">`, "MAP_NET_RENAMED"
	}
	if !strings.Contains(string(b), want) || !strings.Contains(string(ws), wantWarn) {
		t.Fatalf("'default' active: %v; XML lacks %s or warnings lack %s:\n%s\n%s", hasDefault, want, wantWarn, b, ws)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(string(b)); err != nil {
		t.Fatal(err)
	}
	d.Name, d.UUID = fmt.Sprintf("vmfs-net-mount-%d", os.Getpid()), ""
	x, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "d.xml")
	write(t, p, x)
	if _, err := testenv.Virsh("define", p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testenv.Virsh("destroy", d.Name)
		if _, err := testenv.Virsh("undefine", d.Name); err != nil {
			t.Error(err)
		}
	})
	if _, err := testenv.Virsh("start", "--paused", d.Name); err != nil {
		t.Fatalf("%v\n%s", err, x)
	}
}
