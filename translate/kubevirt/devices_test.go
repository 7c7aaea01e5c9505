package kubevirt_test

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	kv "kubevirt.io/api/core/v1"

	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/kubevirt"
)

func codes(ws []translate.Warning) map[string]int {
	out := map[string]int{}
	for _, w := range ws {
		out[w.Code]++
	}
	return out
}

// one emits m with its disks under /mnt/m as qcow2 and checks it.
func one(t *testing.T, m *translate.Machine, opts translate.Options) (output, string, []translate.Warning) {
	t.Helper()
	disks := viewDisks(m, "/mnt/m", "qcow2")
	o, data, warns, err := emit(t, m, disks, opts)
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, disks, opts, o)
	return o, data, warns
}

// TestFirmware: BIOS, UEFI and UEFI with secure boot, each as KubeVirt
// writes it: EFI states secureBoot (KubeVirt's default is on), and secure
// boot brings SMM.
func TestFirmware(t *testing.T) {
	for _, c := range []struct {
		name     string
		fw       translate.Firmware
		sb       bool
		efi, smm bool
	}{
		{"bios", translate.BIOS, false, false, false},
		{"unstated", translate.FirmwareUnknown, false, false, false},
		{"efi", translate.UEFI, false, true, false},
		{"efi-secure-boot", translate.UEFI, true, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &translate.Machine{Name: "fw", CPUs: 1, MemoryMiB: 256, Firmware: c.fw, SecureBoot: c.sb,
				UUID:  "564D1234-5678-9ABC-DEF0-123456789ABC",
				Disks: []translate.Disk{{Path: "/s/d.vmdk", Bus: translate.BusSATA}}}
			o, data, _ := one(t, m, translate.Options{})
			d := o.vm.Spec.Template.Spec.Domain
			bl := d.Firmware.Bootloader
			if (bl.EFI != nil) != c.efi || (bl.BIOS != nil) == c.efi {
				t.Errorf("bootloader %+v:\n%s", bl, data)
			}
			if c.efi && (bl.EFI.SecureBoot == nil || *bl.EFI.SecureBoot != c.sb) {
				t.Errorf("secureBoot %v, want %v", bl.EFI.SecureBoot, c.sb)
			}
			smm := d.Features != nil && d.Features.SMM != nil && *d.Features.SMM.Enabled
			if smm != c.smm {
				t.Errorf("SMM %v, want %v", smm, c.smm)
			}
			if d.Firmware.UUID != "564d1234-5678-9abc-def0-123456789abc" {
				t.Errorf("uuid %q", d.Firmware.UUID)
			}
		})
	}
}

// TestBuses: each source bus and controller lands on the KubeVirt bus
// the policy gives, with a warning where the disk moves.
func TestBuses(t *testing.T) {
	for _, c := range []struct {
		bus     translate.Bus
		ctl     string
		devices string
		want    kv.DiskBus
		warn    bool
	}{
		{translate.BusSATA, "ahci", translate.Preserve, kv.DiskBusSATA, false},
		{translate.BusVirtio, "", translate.Preserve, kv.DiskBusVirtio, false},
		{translate.BusSCSI, "virtio-scsi", translate.Preserve, kv.DiskBusSCSI, false},
		{translate.BusSCSI, "lsilogic", translate.Preserve, kv.DiskBusSATA, true},
		{translate.BusSCSI, "pvscsi", translate.Preserve, kv.DiskBusSATA, true},
		{translate.BusSCSI, "buslogic", translate.Preserve, kv.DiskBusSATA, true},
		{translate.BusIDE, "piix3", translate.Preserve, kv.DiskBusSATA, true},
		{translate.BusNVMe, "", translate.Preserve, kv.DiskBusSATA, true},
		{translate.BusUSB, "", translate.Preserve, kv.DiskBusSATA, true},
		{translate.BusSCSI, "lsilogic", translate.Virtio, kv.DiskBusVirtio, false},
		{translate.BusIDE, "piix3", translate.Virtio, kv.DiskBusVirtio, false},
		{translate.BusVirtio, "", translate.Compat, kv.DiskBusSATA, false},
		{translate.BusSCSI, "virtio-scsi", translate.Compat, kv.DiskBusSATA, false},
	} {
		t.Run(string(c.bus)+"-"+c.ctl+"-"+c.devices, func(t *testing.T) {
			m := &translate.Machine{Name: "bus", CPUs: 1, MemoryMiB: 256, Firmware: translate.UEFI,
				Disks: []translate.Disk{{Path: "/s/d.vmdk", Bus: c.bus, Controller: c.ctl}}}
			o, data, warns := one(t, m, translate.Options{Devices: c.devices})
			ds := o.vm.Spec.Template.Spec.Domain.Devices.Disks
			if len(ds) != 1 || ds[0].Disk.Bus != c.want {
				t.Fatalf("disks %+v, want bus %s:\n%s", ds, c.want, data)
			}
			if got := codes(warns)[kubevirt.WarnBus] > 0; got != c.warn {
				t.Errorf("KUBEVIRT_BUS %v, want %v: %v", got, c.warn, warns)
			}
		})
	}
}

// TestBootOrder: boot orders are unique and follow the source's (disks
// only: CD-ROMs are left out, with a warning).
func TestBootOrder(t *testing.T) {
	m := &translate.Machine{Name: "boot", CPUs: 1, MemoryMiB: 256,
		Disks: []translate.Disk{
			{Path: "/s/a.vmdk", Bus: translate.BusSATA, BootOrder: 3},
			{Path: "/s/b.vmdk", Bus: translate.BusSATA, BootOrder: 1},
			{Path: "/s/c.vmdk", Bus: translate.BusSATA},
		},
		CDROMs: []translate.CDROM{{Bus: translate.BusIDE, Path: "/s/x.iso", BootOrder: 2}},
	}
	o, _, warns := one(t, m, translate.Options{})
	var got []int
	for _, d := range o.vm.Spec.Template.Spec.Domain.Devices.Disks {
		b := 0
		if d.BootOrder != nil {
			b = int(*d.BootOrder)
		}
		got = append(got, b)
	}
	if !slices.Equal(got, []int{2, 1, 0}) {
		t.Errorf("boot orders %v, want [2 1 0]", got)
	}
	if codes(warns)[kubevirt.WarnCDROM] != 1 {
		t.Errorf("warnings %v", warns)
	}
}

// TestNICs: models by the policy, MACs kept, the first NIC on the pod
// network (masquerade), mapped NICs on Multus (bridge), a second NIC on
// the pod network left out, and no NIC at all stays none.
func TestNICs(t *testing.T) {
	nic := func(model, network string) translate.NIC {
		return translate.NIC{MAC: "00:50:56:AA:BB:01", Model: model, Network: network}
	}
	for _, c := range []struct {
		name    string
		nics    []translate.NIC
		opts    translate.Options
		models  []string
		multus  []string // per interface: the NAD, "" for the pod network
		warnNIC int
	}{
		{"e1000", []translate.NIC{nic("e1000", "lan")}, translate.Options{}, []string{"e1000"}, []string{""}, 0},
		{"e1000e", []translate.NIC{nic("e1000e", "lan")}, translate.Options{}, []string{"e1000e"}, []string{""}, 0},
		{"vmxnet3", []translate.NIC{nic("vmxnet3", "lan")}, translate.Options{}, []string{"e1000e"}, []string{""}, 1},
		{"vlance", []translate.NIC{nic("vlance", "lan")}, translate.Options{}, []string{"pcnet"}, []string{""}, 0},
		{"unstated", []translate.NIC{nic("", "lan")}, translate.Options{}, []string{"e1000"}, []string{""}, 0},
		{"virtio-policy", []translate.NIC{nic("e1000", "lan")}, translate.Options{Devices: translate.Virtio}, []string{"virtio"}, []string{""}, 0},
		{"compat-policy", []translate.NIC{nic("virtio", "lan")}, translate.Options{Devices: translate.Compat}, []string{"e1000e"}, []string{""}, 0},
		{"two-on-pod", []translate.NIC{nic("e1000", "a"), nic("e1000", "b")}, translate.Options{}, []string{"e1000"}, []string{""}, 1},
		{"multus", []translate.NIC{nic("e1000", "a"), nic("virtio", "b")},
			translate.Options{NetworkMap: map[string]string{"b": "vlan/trunk-10"}}, []string{"e1000", "virtio"}, []string{"", "vlan/trunk-10"}, 0},
		{"all-multus", []translate.NIC{nic("e1000", "a"), nic("e1000", "b")},
			translate.Options{NetworkMap: map[string]string{"a": "br0", "b": "br1"}}, []string{"e1000", "e1000"}, []string{"br0", "br1"}, 0},
		{"none", nil, translate.Options{}, nil, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &translate.Machine{Name: "nic", CPUs: 1, MemoryMiB: 256, NICs: c.nics,
				Disks: []translate.Disk{{Path: "/s/d.vmdk", Bus: translate.BusSATA}}}
			o, data, warns := one(t, m, c.opts)
			spec := o.vm.Spec.Template.Spec
			var models, multus []string
			for i, iface := range spec.Domain.Devices.Interfaces {
				models = append(models, iface.Model)
				if iface.MacAddress != "00:50:56:aa:bb:01" {
					t.Errorf("interface %d MAC %q", i, iface.MacAddress)
				}
				n := spec.Networks[i]
				if n.Multus != nil {
					multus = append(multus, n.Multus.NetworkName)
				} else {
					multus = append(multus, "")
				}
			}
			if !slices.Equal(models, c.models) || !slices.Equal(multus, c.multus) {
				t.Errorf("models %q networks %q, want %q %q:\n%s", models, multus, c.models, c.multus, data)
			}
			if got := codes(warns)[kubevirt.WarnNIC]; got != c.warnNIC {
				t.Errorf("%d KUBEVIRT_NIC warnings, want %d: %v", got, c.warnNIC, warns)
			}
		})
	}
}

// TestRefused: what a cluster cannot take is an error naming it, never
// YAML the API server would reject.
func TestRefused(t *testing.T) {
	base := func() *translate.Machine {
		return &translate.Machine{Name: "r", CPUs: 1, MemoryMiB: 256,
			Disks: []translate.Disk{{Path: "/s/d.vmdk", Bus: translate.BusSATA}},
			NICs:  []translate.NIC{{Model: "e1000", Network: "lan"}}}
	}
	for _, c := range []struct {
		name   string
		opts   translate.Options
		format string
		mod    func(*translate.Machine)
		want   string
	}{
		{"vmdk-image", translate.Options{}, "vmdk", nil, "raw or qcow2"},
		{"bad-nad", translate.Options{NetworkMap: map[string]string{"lan": "Bad_Name"}}, "qcow2", nil, "NetworkAttachmentDefinition"},
		{"bad-nad-namespace", translate.Options{NetworkMap: map[string]string{"lan": "a.b/c"}}, "qcow2", nil, "NetworkAttachmentDefinition"},
		{"no-memory", translate.Options{}, "qcow2", func(m *translate.Machine) { m.MemoryMiB = 0 }, "memory"},
		{"bad-url", translate.Options{ExportURL: "https://h:8443/x?y=1"}, "qcow2", nil, "--export-url"},
		{"bad-namespace", translate.Options{Namespace: "a.b"}, "qcow2", nil, "--namespace"},
		{"upload-with-cert", translate.Options{Upload: true, CertConfigMap: "ca"}, "qcow2", nil, "--cert-configmap"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := base()
			if c.mod != nil {
				c.mod(m)
			}
			_, _, _, err := emit(t, m, viewDisks(m, "/mnt/r", c.format), c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want one naming %q", err, c.want)
			}
		})
	}
}

// TestOptions: the cluster options land where CDI and KubeVirt read
// them; plain http is said; the default export is said.
func TestOptions(t *testing.T) {
	m := &translate.Machine{Name: "opts", CPUs: 2, MemoryMiB: 1000, TPM: true,
		Disks:   []translate.Disk{{Path: "/s/a.vmdk", Bus: translate.BusSATA}, {Path: "/s/b.vmdk", Bus: translate.BusSATA}},
		Serials: []translate.Serial{{Type: "pty"}, {Type: "pty"}}}
	t.Run("default", func(t *testing.T) {
		o, _, warns := one(t, m, translate.Options{})
		if got := o.dvs[1].Spec.Source.HTTP.URL; got != "https://vmfs.vmfs.svc:8443/opts/opts-disk1.qcow2" {
			t.Errorf("url %q", got)
		}
		c := codes(warns)
		if c[kubevirt.WarnExportURL] != 1 || c[kubevirt.WarnSerial] != 1 || c[kubevirt.WarnPlainHTTP] != 0 {
			t.Errorf("warnings %v", warns)
		}
		if o.vm.Spec.Template.Spec.Domain.Devices.TPM == nil {
			t.Errorf("no TPM")
		}
		// 1000 MiB is not a whole GiB: the quantity says MiB.
		if g := o.vm.Spec.Template.Spec.Domain.Memory.Guest.String(); g != "1000Mi" {
			t.Errorf("guest memory %s", g)
		}
	})
	t.Run("set", func(t *testing.T) {
		opts := translate.Options{ExportURL: "HTTP://10.1.2.3:8080/vmfs/", CertConfigMap: "ca.x", TokenSecret: "tok", Namespace: "ns-1", StorageClass: "gold"}
		o, data, warns := one(t, m, opts)
		if got := o.dvs[0].Spec.Source.HTTP.URL; got != "http://10.1.2.3:8080/vmfs/opts/opts-disk0.qcow2" { // the scheme lowercased
			t.Errorf("url %q", got)
		}
		c := codes(warns)
		if c[kubevirt.WarnExportURL] != 0 || c[kubevirt.WarnPlainHTTP] != 1 {
			t.Errorf("warnings %v", warns)
		}
		if !strings.Contains(data, "virtctl start opts -n ns-1") {
			t.Errorf("no start command:\n%s", data)
		}
	})
	t.Run("upload", func(t *testing.T) {
		_, data, _ := one(t, m, translate.Options{Upload: true, Namespace: "ns-1"})
		for _, want := range []string{
			"virtctl image-upload dv opts-disk0 --no-create --image-path='/mnt/m/opts-disk0.qcow2' -n ns-1\n",
			"virtctl image-upload dv opts-disk1 --no-create --image-path='/mnt/m/opts-disk1.qcow2' -n ns-1\n",
		} {
			if !strings.Contains(data, want) {
				t.Errorf("lacks %q:\n%s", want, data)
			}
		}
		if strings.Contains(data, "https://") {
			t.Errorf("an upload names an export:\n%s", data)
		}
	})
}

// TestObjectName: names as the API server checks them, valid labels
// kept as they are.
func TestObjectName(t *testing.T) {
	for in, want := range map[string]string{
		"web01": "web01", "Web 01": "web-01", "db_02.example.com": "db-02-example-com", "--x--": "x",
		"": "vm", "ÜÉ": "vm", "Ünï cødé": "n-c-d", strings.Repeat("a", 70): strings.Repeat("a", 63),
		strings.Repeat("a", 62) + "_b": strings.Repeat("a", 62), "0day": "0day",
	} {
		if got := kubevirt.ObjectName(in); got != want {
			t.Errorf("ObjectName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := kubevirt.DataVolumeName(strings.Repeat("a", 60)+"-b", 12); got != strings.Repeat("a", 56)+"-disk12" {
		t.Errorf("DataVolumeName %q", got)
	}
}

// FuzzObjectName: whatever a machine is named, its objects' names are
// DNS-1123 labels (checked by apimachinery, the API server's own
// check), the names are stable, translate's checks agree with
// apimachinery's, and the YAML decodes strictly.
func FuzzObjectName(f *testing.F) {
	for _, s := range []string{"web01", "Web 01", "", "-", "a\nkind: Secret", "ÜÉ", "x---y", strings.Repeat("z", 80), "a.b", "'\"`$(x)", "\x00"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, name string, disk int) {
		n := kubevirt.ObjectName(name)
		label(t, "ObjectName", n)
		if kubevirt.ObjectName(n) != n {
			t.Errorf("ObjectName(%q) = %q, not stable", n, kubevirt.ObjectName(n))
		}
		if len(validation.IsDNS1123Label(name)) == 0 && n != name {
			t.Errorf("valid label %q became %q", name, n)
		}
		if got, want := translate.IsDNSLabel(name), len(validation.IsDNS1123Label(name)) == 0; got != want {
			t.Errorf("IsDNSLabel(%q) = %v, apimachinery says %v", name, got, want)
		}
		if got, want := translate.IsDNSSubdomain(name), len(validation.IsDNS1123Subdomain(name)) == 0; got != want {
			t.Errorf("IsDNSSubdomain(%q) = %v, apimachinery says %v", name, got, want)
		}
		label(t, "DataVolumeName", kubevirt.DataVolumeName(n, max(disk, 0)))
		m := &translate.Machine{Name: name, Source: name, SourceFormat: "vmx", CPUs: 1, MemoryMiB: 64,
			Disks: []translate.Disk{{Path: "/s/d.vmdk", Bus: translate.BusSATA}},
			NICs:  []translate.NIC{{Model: "e1000", Network: name}}}
		one(t, m, translate.Options{Upload: disk%2 == 1})
	})
}
