package libvirt

import (
	"context"
	"fmt"
	corpusdir "github.com/vmfs/vmfs/internal/corpus"
	"github.com/vmfs/vmfs/internal/hostfacts"
	"github.com/vmfs/vmfs/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/vmx"
)

var corpus = corpusdir.Dir()

func globCorpus(t testing.TB, pattern string) []string { return corpusdir.Glob(t, pattern) }

// vmxMachines parses the corpus .vmx files that describe a machine.
func vmxMachines(t *testing.T, pattern string) map[string]*translate.Machine {
	out := map[string]*translate.Machine{}
	for _, f := range globCorpus(t, pattern) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := vmx.ParseBytes(f, b); err == nil {
			out[filepath.Base(f)] = m
		}
	}
	return out
}

func targetDisks(m *translate.Machine) []translate.TargetDisk {
	var td []translate.TargetDisk
	for i := range m.Disks {
		td = append(td, translate.TargetDisk{Path: fmt.Sprintf("/mnt/vmfs/%s/disk%d.qcow2", FileName(m.Name), i), Format: "qcow2"})
	}
	return td
}

// validate checks XML with libvirt's schema and with the test driver's
// define (which runs libvirt's own domain parser and its checks).
func validate(t *testing.T, data []byte) {
	t.Helper()
	if _, err := exec.LookPath("virt-xml-validate"); err != nil {
		t.Skip("virt-xml-validate not installed (apt-get install libvirt-clients)")
	}
	p := filepath.Join(t.TempDir(), "domain.xml")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("virt-xml-validate", p, "domain").CombinedOutput(); err != nil {
		t.Fatalf("virt-xml-validate: %v\n%s\n%s", err, out, data)
	}
	if out, err := exec.Command("virsh", "-q", "-c", "test:///default", "define", p).CombinedOutput(); err != nil {
		t.Fatalf("virsh -c test:///default define: %v\n%s\n%s", err, out, data)
	}
}

func emit(t *testing.T, m *translate.Machine, opts translate.Options) ([]byte, []translate.Warning) {
	t.Helper()
	out, warns, err := Target{}.Emit(m, targetDisks(m), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Name != translate.FileName(m.Name)+".xml" || out[0].Mode != 0o644 {
		t.Fatalf("files: %d, first %q mode %v", len(out), out[0].Name, out[0].Mode)
	}
	for _, w := range warns {
		if !strings.HasPrefix(w.Code, "MAP_") {
			t.Errorf("warning code %q", w.Code)
		}
	}
	return out[0].Data, warns
}

// TestEmitCorpus: every corpus .vmx → libvirt XML that validates, and that
// the libvirt parser reads back into the same machine.
func TestEmitCorpus(t *testing.T) {
	ms := vmxMachines(t, "vmx/*.vmx")
	for k, v := range vmxMachines(t, "virt-v2v/test-i-vmx-*.vmx") {
		ms[k] = v
	}
	for name, m := range ms {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, _ := emit(t, m, translate.Options{})
			validate(t, data)
			m2, err := ParseBytes("/mnt/vmfs/x.xml", data)
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			roundTrip(t, m, m2, targetDisks(m))
		})
	}
}

func roundTrip(t *testing.T, m, m2 *translate.Machine, td []translate.TargetDisk) {
	t.Helper()
	if m2.Name != FileName(m.Name) || m2.UUID != m.UUID || m2.CPUs != m.CPUs || m2.MemoryMiB != m.MemoryMiB ||
		m2.CoresPerSocket != m.CoresPerSocket || m2.Firmware != m.Firmware || m2.SecureBoot != m.SecureBoot || m2.OSInfo != m.OSInfo {
		t.Errorf("machine changed:\n%+v\n%+v", m, m2)
	}
	if len(m2.Disks) != len(td) {
		t.Fatalf("%d disks, want %d", len(m2.Disks), len(td))
	}
	for i, d := range m2.Disks {
		if d.Path != td[i].Path || d.Format != td[i].Format {
			t.Errorf("disk %d %+v, want %+v", i, d, td[i])
		}
	}
	if len(m2.CDROMs) != len(m.CDROMs) {
		t.Errorf("%d CD-ROMs, want %d", len(m2.CDROMs), len(m.CDROMs))
	}
	if len(m2.NICs) != len(m.NICs) {
		t.Fatalf("%d NICs, want %d", len(m2.NICs), len(m.NICs))
	}
	for i := range m.NICs {
		if m2.NICs[i].MAC != m.NICs[i].MAC {
			t.Errorf("NIC %d MAC %q, want %q", i, m2.NICs[i].MAC, m.NICs[i].MAC)
		}
	}
}

// TestPolicies runs the virt-v2v vectors through each device policy.
func TestPolicies(t *testing.T) {
	ms := vmxMachines(t, "virt-v2v/test-i-vmx-*.vmx")
	for _, policy := range []string{Preserve, Virtio, Compat} {
		for name, m := range ms {
			t.Run(policy+"/"+name, func(t *testing.T) {
				t.Parallel()
				data, _ := emit(t, m, translate.Options{Devices: policy})
				validate(t, data)
				var dom libvirtxml.Domain
				if err := dom.Unmarshal(string(data)); err != nil {
					t.Fatal(err)
				}
				for _, d := range dom.Devices.Disks {
					bus := d.Target.Bus
					switch {
					case policy == Virtio && d.Device == "disk" && bus != "virtio",
						policy == Compat && bus != "sata",
						policy == Virtio && d.Device == "cdrom" && bus != "sata":
						t.Errorf("%s %s on %s", d.Device, d.Target.Dev, bus)
					}
				}
				for _, n := range dom.Devices.Interfaces {
					want := map[string]string{Virtio: "virtio", Compat: "e1000e"}[policy]
					if want != "" && n.Model.Type != want {
						t.Errorf("NIC model %s, want %s", n.Model.Type, want)
					}
				}
				if policy != Preserve && dom.OS.Type.Machine != "q35" {
					t.Errorf("machine %s", dom.OS.Type.Machine)
				}
			})
		}
	}
}

// TestEmitCases checks the mapping rules on small machines.
func TestEmitCases(t *testing.T) {
	base := func() *translate.Machine {
		return &translate.Machine{
			Name: "vm", MemoryMiB: 1024, CPUs: 2, Firmware: translate.BIOS, UUID: "564d96af-e646-bd86-5c4d-654e7736ef31",
			Disks: []translate.Disk{{Path: "/s/a.vmdk", Bus: translate.BusSCSI, Controller: "lsilogic"}},
			NICs:  []translate.NIC{{MAC: "00:0c:29:00:00:01", Model: "vmxnet3", Network: "VM Network", Type: "network"}},
		}
	}
	tests := []struct {
		name  string
		edit  func(m *translate.Machine)
		opts  translate.Options
		warn  string
		check func(t *testing.T, d *libvirtxml.Domain)
	}{
		{name: "defaults", edit: func(*translate.Machine) {}, check: func(t *testing.T, d *libvirtxml.Domain) {
			if d.Type != "kvm" || d.OS.Type.Machine != "q35" || d.OS.Firmware != "" || d.Memory.Value != 1024 || d.VCPU.Value != 2 {
				t.Errorf("%+v", d)
			}
			if c := d.Devices.Controllers; len(c) != 1 || c[0].Model != "lsilogic" {
				t.Errorf("controllers %+v", c)
			}
			n := d.Devices.Interfaces[0]
			if n.MAC.Address != "00:0c:29:00:00:01" || n.Model.Type != "vmxnet3" || n.Source.Network.Network != "default" {
				t.Errorf("nic %+v", n)
			}
			if d.Devices.Disks[0].Boot.Order != 1 || len(d.Devices.Serials) != 1 || len(d.Devices.Consoles) != 1 {
				t.Errorf("devices %+v", d.Devices)
			}
		}},
		{name: "network map and qemu domain", opts: translate.Options{DomainType: "qemu", NetworkMap: map[string]string{"VM Network": "br-lan"}}, edit: func(*translate.Machine) {}, check: func(t *testing.T, d *libvirtxml.Domain) {
			if d.Type != "qemu" || d.Devices.Interfaces[0].Source.Network.Network != "br-lan" || (d.CPU != nil && d.CPU.Mode != "") {
				t.Errorf("%+v", d)
			}
		}},
		{name: "topology", edit: func(m *translate.Machine) { m.CPUs, m.CoresPerSocket = 8, 4 }, check: func(t *testing.T, d *libvirtxml.Domain) {
			if tp := d.CPU.Topology; tp.Sockets != 2 || tp.Cores != 4 || tp.Threads != 1 {
				t.Errorf("topology %+v", tp)
			}
		}},
		{name: "uefi", edit: func(m *translate.Machine) { m.Firmware = translate.UEFI }, check: func(t *testing.T, d *libvirtxml.Domain) {
			if d.OS.Firmware != "efi" || d.Features.SMM != nil {
				t.Errorf("os %+v", d.OS)
			}
			for _, f := range d.OS.FirmwareInfo.Features {
				if f.Enabled != "no" {
					t.Errorf("feature %+v", f)
				}
			}
		}},
		{name: "secure boot", edit: func(m *translate.Machine) { m.Firmware, m.SecureBoot = translate.UEFI, true }, check: func(t *testing.T, d *libvirtxml.Domain) {
			if d.OS.Firmware != "efi" || d.Features.SMM == nil || d.Features.SMM.State != "on" || d.OS.Type.Machine != "q35" {
				t.Errorf("os %+v features %+v", d.OS, d.Features)
			}
			for _, f := range d.OS.FirmwareInfo.Features {
				if f.Enabled != "yes" {
					t.Errorf("feature %+v", f)
				}
			}
		}},
		{name: "IDE needs i440fx", edit: func(m *translate.Machine) {
			m.Disks[0].Bus = translate.BusIDE
			m.CDROMs = []translate.CDROM{{Bus: translate.BusIDE, ControllerIndex: 1, Path: "/i.iso"}}
		}, check: func(t *testing.T, d *libvirtxml.Domain) {
			if d.OS.Type.Machine != "pc" {
				t.Errorf("machine %s", d.OS.Type.Machine)
			}
			if d.Devices.Disks[0].Target.Dev != "hda" || d.Devices.Disks[1].Target.Dev != "hdc" || d.Devices.Disks[1].Device != "cdrom" {
				t.Errorf("disks %+v %+v", d.Devices.Disks[0].Target, d.Devices.Disks[1].Target)
			}
		}},
		{name: "secure boot moves IDE to SATA", warn: WarnSecureIDE, edit: func(m *translate.Machine) {
			m.Firmware, m.SecureBoot = translate.UEFI, true
			m.CDROMs = []translate.CDROM{{Bus: translate.BusIDE, ControllerIndex: 1}}
		}, check: func(t *testing.T, d *libvirtxml.Domain) {
			if d.OS.Type.Machine != "q35" || d.Devices.Disks[1].Target.Bus != "sata" || (d.Devices.Disks[1].Source != nil && d.Devices.Disks[1].Source.File != nil && d.Devices.Disks[1].Source.File.File != "") {
				t.Errorf("machine %s cdrom %+v", d.OS.Type.Machine, d.Devices.Disks[1])
			}
		}},
		{name: "buslogic moves to SATA", warn: WarnController, edit: func(m *translate.Machine) { m.Disks[0].Controller = "buslogic" }, check: func(t *testing.T, d *libvirtxml.Domain) {
			if d.Devices.Disks[0].Target.Bus != "sata" {
				t.Errorf("disk %+v", d.Devices.Disks[0].Target)
			}
		}},
		{name: "pvscsi", edit: func(m *translate.Machine) { m.Disks[0].Controller = "pvscsi" }, check: func(t *testing.T, d *libvirtxml.Domain) {
			if d.Devices.Controllers[0].Model != "vmpvscsi" {
				t.Errorf("controllers %+v", d.Devices.Controllers)
			}
		}},
		{name: "NVMe moves to SATA", warn: WarnBus, edit: func(m *translate.Machine) { m.Disks[0].Bus = translate.BusNVMe }, check: func(t *testing.T, d *libvirtxml.Domain) {
			if d.Devices.Disks[0].Target.Bus != "sata" {
				t.Errorf("disk %+v", d.Devices.Disks[0].Target)
			}
		}},
		{name: "a full SCSI controller spills", warn: WarnUnitSpill, edit: func(m *translate.Machine) {
			m.Disks = nil
			for i := range 9 {
				m.Disks = append(m.Disks, translate.Disk{Path: fmt.Sprintf("/s/%d.vmdk", i), Bus: translate.BusSCSI, Controller: "pvscsi", Unit: i})
			}
		}, check: func(t *testing.T, d *libvirtxml.Domain) {
			if len(d.Devices.Controllers) != 2 || d.Devices.Disks[8].Address.Drive.Controller == nil || *d.Devices.Disks[8].Address.Drive.Controller != 1 {
				t.Errorf("controllers %+v", d.Devices.Controllers)
			}
		}},
		{name: "unknown NIC model", warn: WarnNIC, edit: func(m *translate.Machine) { m.NICs[0].Model = "vmxnet" }, check: func(t *testing.T, d *libvirtxml.Domain) {
			if d.Devices.Interfaces[0].Model.Type != "e1000" {
				t.Errorf("nic %+v", d.Devices.Interfaces[0].Model)
			}
		}},
		{name: "unknown policy", opts: translate.Options{Devices: "fancy"}, warn: WarnPolicy, edit: func(*translate.Machine) {}, check: func(t *testing.T, d *libvirtxml.Domain) {}},
		{name: "name with slash", edit: func(m *translate.Machine) { m.Name = "a/b" }, check: func(t *testing.T, d *libvirtxml.Domain) {
			if d.Name != "a_b" {
				t.Errorf("name %q", d.Name)
			}
		}},
		{name: "libosinfo", edit: func(m *translate.Machine) { m.OSInfo = "http://microsoft.com/win/10" }, check: func(t *testing.T, d *libvirtxml.Domain) {
			if !strings.Contains(d.Metadata.XML, `id="http://microsoft.com/win/10"`) || d.Clock.Offset != "localtime" {
				t.Errorf("metadata %q clock %+v", d.Metadata.XML, d.Clock)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.edit(m)
			data, warns := emit(t, m, tt.opts)
			validate(t, data)
			if tt.warn != "" {
				found := false
				for _, w := range warns {
					found = found || w.Code == tt.warn
				}
				if !found {
					t.Errorf("no %s warning in %v", tt.warn, warns)
				}
			}
			var d libvirtxml.Domain
			if err := d.Unmarshal(string(data)); err != nil {
				t.Fatal(err)
			}
			tt.check(t, &d)
			m2, err := ParseBytes("/x.xml", data)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, m, m2, targetDisks(m))
		})
	}
	t.Run("disk count mismatch", func(t *testing.T) {
		if _, _, err := (Target{}).Emit(base(), nil, translate.Options{}); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("no memory", func(t *testing.T) {
		m := base()
		m.MemoryMiB = 0
		if _, _, err := (Target{}).Emit(m, targetDisks(m), translate.Options{}); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestMain(m *testing.M) { testenv.Main(m) }

// TestDefineSystem defines and undefines generated domains with the
// system libvirtd (started when it is not running).
func TestDefineSystem(t *testing.T) {
	testenv.StartLibvirt(t)
	// The domain type follows this host, as a mount's does: qemu where
	// /dev/kvm does not work (or VMFS_NO_KVM=1 hides it).
	host := hostfacts.Probe(context.Background(), true, false, os.Getenv)
	ms := vmxMachines(t, "virt-v2v/test-i-vmx-*.vmx")
	for name, m := range ms {
		t.Run(name, func(t *testing.T) {
			m2 := *m
			m2.Name = "vmfs-test-" + strings.TrimSuffix(name, ".vmx")
			m2.UUID = ""
			data, _ := emit(t, &m2, translate.Options{Host: host})
			p := filepath.Join(t.TempDir(), "d.xml")
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("virsh", "-c", "qemu:///system", "define", p).CombinedOutput(); err != nil {
				skipIfGone(t, out)
				t.Fatalf("virsh define: %v\n%s\n%s", err, out, data)
			}
			if out, err := exec.Command("virsh", "-c", "qemu:///system", "undefine", "--nvram", m2.Name).CombinedOutput(); err != nil {
				t.Errorf("virsh undefine: %v\n%s", err, out)
			}
		})
	}
}

// skipIfGone skips when libvirtd went away during the test (the end-to-end
// tests start and stop it).
func skipIfGone(t *testing.T, out []byte) {
	t.Helper()
	if strings.Contains(string(out), "failed to connect to the hypervisor") {
		t.Skipf("libvirtd stopped during the test: %s", strings.TrimSpace(string(out)))
	}
}

// TestStartSystem starts (paused) and destroys generated domains with the
// system libvirtd, when one runs: libvirt then resolves the firmware
// (auto-selected OVMF for UEFI and secure boot) and QEMU checks every
// device.
func TestStartSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("starts VMs")
	}
	testenv.StartLibvirt(t)
	virsh := func(args ...string) (string, error) {
		out, err := exec.Command("virsh", append([]string{"-c", "qemu:///system"}, args...)...).CombinedOutput()
		return string(out), err
	}
	cases := []struct {
		name   string
		policy string
		edit   func(m *translate.Machine)
		want   []string // in the live XML
	}{
		{"uefi-secure-boot", Preserve, func(m *translate.Machine) {
			m.Firmware, m.SecureBoot = translate.UEFI, true
			m.Disks[0].Controller = "virtio-scsi"
		}, []string{"OVMF_CODE_4M.ms.fd", "secure='yes'", "model='virtio-scsi'"}},
		// OVMF has no pvscsi driver: the boot disk moves to SATA.
		{"uefi-pvscsi-boot", Preserve, func(m *translate.Machine) {
			m.Firmware = translate.UEFI
			m.Disks[0].Controller = "pvscsi"
		}, []string{"OVMF_CODE_4M.fd", "bus='sata'"}},
		{"bios-ide", Preserve, func(m *translate.Machine) {
			m.Disks[0].Bus = translate.BusIDE
			m.CDROMs = []translate.CDROM{{Bus: translate.BusIDE, ControllerIndex: 1}}
		}, []string{"machine='pc-i440fx", "bus='ide'"}},
		{"uefi-i440fx-virtio", Preserve, func(m *translate.Machine) {
			m.Firmware = translate.UEFI
			m.Disks[0].Bus = translate.BusVirtio
			m.NICs[0].Model = "virtio"
			m.CDROMs = []translate.CDROM{{Bus: translate.BusIDE, ControllerIndex: 1}}
		}, []string{"machine='pc-i440fx", "OVMF_CODE_4M.fd", "bus='virtio'", "model type='virtio'"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			// QEMU runs as another user: let it reach the image.
			os.Chmod(dir, 0o755)
			os.Chmod(filepath.Dir(dir), 0o755)
			img := filepath.Join(dir, "disk.qcow2")
			if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "16M").CombinedOutput(); err != nil {
				t.Fatalf("qemu-img: %v %s", err, out)
			}
			m := &translate.Machine{
				Name: "vmfs-translate-test-" + c.name, MemoryMiB: 128, CPUs: 1, Firmware: translate.BIOS,
				Disks: []translate.Disk{{Path: "/src/a.vmdk", Bus: translate.BusSCSI, Controller: "lsilogic"}},
				NICs:  []translate.NIC{{MAC: "00:0c:29:00:00:01", Model: "vmxnet3", Network: "VM Network"}},
			}
			c.edit(m)
			dom, _, err := Domain(m, []translate.TargetDisk{{Path: img, Format: "qcow2"}}, translate.Options{Devices: c.policy, DomainType: "qemu"})
			if err != nil {
				t.Fatal(err)
			}
			// No network: the test must not depend on the host's "default" network.
			dom.Devices.Interfaces[0].Source = &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}}
			dom.Devices.Graphics = nil
			data, err := dom.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "d.xml")
			os.WriteFile(p, []byte(data), 0o644)
			virsh("destroy", m.Name)
			virsh("undefine", "--nvram", m.Name)
			if out, err := virsh("define", p); err != nil {
				skipIfGone(t, []byte(out))
				t.Fatalf("define: %v %s", err, out)
			}
			defer virsh("undefine", "--nvram", m.Name)
			if out, err := virsh("start", "--paused", m.Name); err != nil {
				skipIfGone(t, []byte(out))
				t.Fatalf("start: %v %s\n%s", err, out, data)
			}
			live, err := virsh("dumpxml", m.Name)
			virsh("destroy", m.Name)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(live, w) {
					t.Errorf("live XML lacks %q:\n%s", w, live)
				}
			}
		})
	}
}

// TestParseCorpus reads the corpus's libvirt domain files.
func TestParseCorpus(t *testing.T) {
	wantErr := map[string]string{
		"virt-manager__virt-manager__virt-install-win11.xml":                               "more than one top-level element",
		"virt-manager__virt-manager__virt-install-bhyve-uefi.xml":                          "more than one top-level element",
		"virt-manager__virt-manager__virt-install-aarch64-kvm-gic.xml":                     "aarch64 machine",
		"virt-manager__virt-manager__virt-install-ppc64-pseries-f20.xml":                   "ppc64 machine",
		"virt-manager__virt-manager__virt-install-default-f27.xml":                         "OS type \"exe\"",
		"virt-manager__virt-manager__virt-install-vz-ct-template.xml":                      "OS type \"exe\"",
		"virt-manager__virt-manager__virt-install-xen-default.xml":                         "OS type \"xen\"",
		"virt-manager__virt-manager__virt-install-boot-uefi-secure-boot.xml":               "no disk backed by a local file",
		"virt-manager__virt-manager__virt-install-x86_64-launch-security-sev-snp-full.xml": "no disk backed by a local file",
	}
	check := map[string]func(t *testing.T, m *translate.Machine){
		"fox-it__dissect.target__qemu.xml": func(t *testing.T, m *translate.Machine) {
			if m.Name != "linux2022" || m.MemoryMiB != 1970 || m.CPUs != 2 || m.OSInfo != "http://libosinfo.org/linux/2022" || m.Firmware != translate.BIOS {
				t.Errorf("%+v", m)
			}
			if len(m.Disks) != 2 || m.Disks[1].Path != "/var/lib/libvirt/images/second-disk.qcow2" || m.Disks[1].Format != "qcow2" || m.Disks[1].Bus != translate.BusVirtio {
				t.Errorf("disks %+v", m.Disks)
			}
			if len(m.NICs) != 1 || m.NICs[0] != (translate.NIC{MAC: "52:54:00:e9:ba:f3", Model: "virtio", Network: "default", Type: "network"}) {
				t.Errorf("nics %+v", m.NICs)
			}
		},
		"virt-manager__virt-manager__virt-install-many-devices.xml": func(t *testing.T, m *translate.Machine) {
			if m.Firmware != translate.UEFI || !m.SecureBoot || m.CPUs != 9 || m.CoresPerSocket != 9 { // 1 socket of 3 cores × 3 threads
				t.Errorf("%+v", m)
			}
		},
	}
	for _, f := range globCorpus(t, "libvirt/*.xml") {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseBytes(f, b)
			if want, ok := wantErr[name]; ok {
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), name) {
					t.Fatalf("err = %v, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c := check[name]; c != nil {
				c(t, m)
			}
			// Every domain read converts to a domain that validates.
			data, _ := emit(t, m, translate.Options{})
			validate(t, data)
		})
	}
}

func TestParseBytes(t *testing.T) {
	const disk = `<devices><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='d.img'/><target dev='sda' bus='sata'/></disk></devices>`
	tests := []struct {
		name, in, wantErr string
		check             func(t *testing.T, m *translate.Machine)
	}{
		{name: "memory units", in: `<domain type='kvm'><name>a</name><memory unit='GiB'>2</memory>` + disk + `</domain>`, check: func(t *testing.T, m *translate.Machine) {
			if m.MemoryMiB != 2048 || m.CPUs != 1 || m.Disks[0].Path != "/x/d.img" {
				t.Errorf("%+v", m)
			}
		}},
		{name: "default unit KiB", in: `<domain type='kvm'><name>a</name><memory>1048576</memory>` + disk + `</domain>`, check: func(t *testing.T, m *translate.Machine) {
			if m.MemoryMiB != 1024 {
				t.Errorf("%+v", m)
			}
		}},
		{name: "loader means UEFI", in: `<domain type='kvm'><name>a</name><memory unit='MiB'>1</memory><os><type>hvm</type><loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader></os>` + disk + `</domain>`, check: func(t *testing.T, m *translate.Machine) {
			if m.Firmware != translate.UEFI || !m.SecureBoot {
				t.Errorf("%+v", m)
			}
		}},
		{name: "comments and declaration", in: "<?xml version='1.0'?>\n<!-- hi -->\n<domain type='kvm'><name>a</name><memory unit='MiB'>1</memory>" + disk + "</domain>\n<!-- bye -->\n", check: func(t *testing.T, m *translate.Machine) {}},
		{name: "no memory", in: `<domain type='kvm'><name>a</name>` + disk + `</domain>`, wantErr: "states no memory"},
		{name: "huge memory", in: `<domain type='kvm'><name>a</name><memory unit='TiB'>99999999</memory>` + disk + `</domain>`, wantErr: "too large"},
		{name: "bad unit", in: `<domain type='kvm'><name>a</name><memory unit='parsecs'>1</memory>` + disk + `</domain>`, wantErr: "unknown unit"},
		{name: "not a domain", in: `<network><name>a</name></network>`, wantErr: "root element is <network>"},
		{name: "invalid XML", in: `<domain><name>a</nam>`, wantErr: "invalid"},
		{name: "empty", in: ``, wantErr: "no <domain> element"},
		{name: "text after", in: `<domain type='kvm'><name>a</name><memory unit='MiB'>1</memory>` + disk + `</domain>junk`, wantErr: "text after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseBytes("/x/a.xml", []byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "/x/a.xml") {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m)
		})
	}
}

// TestVirtV2VPrintSource compares with virt-v2v's --print-source output
// for its libvirt input test-print-source.xml.in. The other libvirt inputs
// there (test-mac.xml.in ...) are libvirt test-driver <node> documents,
// not domains, and are refused as such.
func TestVirtV2VPrintSource(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(corpus, "virt-v2v/test-print-source.xml.in"))
	if err != nil {
		t.Skip(err)
	}
	b = []byte(strings.ReplaceAll(string(b), "@abs_top_builddir@", "/build"))
	m, err := ParseBytes("/build/test-print-source.xml", b)
	if err != nil {
		t.Fatal(err)
	}
	// source name: windows; memory: 1073741824; nr vCPUs: 64;
	// CPU topology: sockets: 4 cores/socket: 8 threads/core: 2;
	// disks: 0 [virtio-blk]; NICs: Network "default" mac: 00:11:22:33:44:55 [virtio]
	if m.Name != "windows" || m.MemoryMiB != 1024 || m.CPUs != 64 || m.CoresPerSocket != 16 {
		t.Errorf("%+v", m)
	}
	if len(m.Disks) != 1 || m.Disks[0].Bus != translate.BusVirtio || m.Disks[0].Path != "/build/test-data/phony-guests/windows.img" {
		t.Errorf("disks %+v", m.Disks)
	}
	if len(m.NICs) != 1 || m.NICs[0] != (translate.NIC{MAC: "00:11:22:33:44:55", Model: "virtio", Network: "default", Type: "network"}) {
		t.Errorf("nics %+v", m.NICs)
	}
	b, err = os.ReadFile(filepath.Join(corpus, "virt-v2v/test-mac.xml.in"))
	if err != nil {
		t.Skip(err)
	}
	if _, err := ParseBytes("test-mac.xml", b); err == nil || !strings.Contains(err.Error(), "root element is <node>") {
		t.Errorf("err = %v", err)
	}
}

func TestParseMissingDisk(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.xml")
	os.WriteFile(p, []byte(`<domain type='kvm'><name>a</name><memory unit='MiB'>1</memory><devices><disk type='file' device='disk'><source file='gone.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>`), 0o644)
	m, err := Parse(p)
	if err != nil {
		t.Fatal(err)
	}
	err = translate.CheckDisks(m)
	if err == nil || !strings.Contains(err.Error(), "gone.qcow2 on virtio0:0 is missing") {
		t.Fatalf("err = %v", err)
	}
}

// FuzzParseLibvirt: the parser never panics, and what it accepts can be
// emitted and read back with the same counts.
func FuzzParseLibvirt(f *testing.F) {
	// Run with -fuzzminimizetime=1x on a loaded machine: minimizing
	// inputs of several KiB otherwise stalls the workers for minutes.
	files, _ := filepath.Glob(filepath.Join(corpus, "libvirt/*.xml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		`<domain type='kvm'><name>a</name><uuid>564d96af-e646-bd86-5c4d-654e7736ef31</uuid><memory unit='GiB'>2</memory><vcpu>4</vcpu><cpu><topology sockets='2' cores='2' threads='1'/></cpu>` +
			`<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type><firmware><feature enabled='yes' name='secure-boot'/></firmware></os>` +
			`<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/a.qcow2'/><target dev='sda' bus='scsi'/><address type='drive' controller='0' bus='0' target='0' unit='3'/><boot order='1'/></disk>` +
			`<controller type='scsi' index='0' model='vmpvscsi'/><disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><address type='drive' controller='0' bus='1' target='0' unit='0'/></disk>` +
			`<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><model type='e1000e'/></interface><serial type='file'><source path='/s.log'/></serial></devices></domain>`,
		`<domain type='qemu'><name>b</name><memory>1048576</memory><metadata><libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0"><libosinfo:os id="http://microsoft.com/win/10"/></libosinfo:libosinfo></metadata>` +
			`<os><type>hvm</type><loader readonly='yes' secure='yes' type='pflash'>/OVMF.fd</loader></os><devices><disk type='block' device='disk'><source dev='/dev/sdb'/><target dev='vda' bus='virtio'/></disk>` +
			`<interface type='network'><source network='default'/><model type='virtio'/></interface></devices></domain>`,
	} {
		f.Add([]byte(s))
	}
	// Hostile: nested past the depth limit, and wider than the element
	// limit, in a few KiB.
	f.Add([]byte(domHead + "</devices><metadata>" + strings.Repeat("<a>", 70) + strings.Repeat("</a>", 70) + "</metadata></domain>"))
	f.Add([]byte(domHead + strings.Repeat("<x/>", xmlLimits.Elements) + "</devices></domain>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseBytes("/x/a.xml", b)
		if err != nil {
			return
		}
		if len(m.Disks) == 0 || m.CPUs < 1 || m.MemoryMiB < 1 {
			t.Fatalf("accepted an impossible machine %+v", m)
		}
		out, _, err := Target{}.Emit(m, targetDisks(m), translate.Options{})
		if err != nil {
			return // e.g. two IDE devices at one address
		}
		m2, err := ParseBytes("/x/a.xml", out[0].Data)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out[0].Data)
		}
		if len(m2.Disks) != len(m.Disks) || m2.CPUs != m.CPUs || m2.MemoryMiB != m.MemoryMiB || len(m2.NICs) != len(m.NICs) {
			t.Fatalf("round trip changed the machine:\n%+v\n%+v", m, m2)
		}
	})
}

func BenchmarkEmit(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(corpus, "virt-v2v/test-i-vmx-1.vmx"))
	if err != nil {
		b.Skip(err)
	}
	m, err := vmx.ParseBytes("/x/test-i-vmx-1.vmx", data)
	if err != nil {
		b.Fatal(err)
	}
	td := targetDisks(m)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := (Target{}).Emit(m, td, translate.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
