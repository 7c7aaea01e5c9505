package targets

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/translate"
)

// optionMachine has one of each device an option acts on: a SCSI disk,
// an IDE CD-ROM and an e1000 NIC on the network "VM Network".
func optionMachine() *translate.Machine {
	return &translate.Machine{
		Name: "opt", MemoryMiB: 512, CPUs: 1, Firmware: translate.BIOS, SourceFormat: "vmx", Source: "/src/opt.vmx",
		Disks:  []translate.Disk{{Path: "/src/opt.vmdk", Bus: translate.BusSCSI, Controller: "lsilogic"}},
		CDROMs: []translate.CDROM{{Bus: translate.BusIDE, ControllerIndex: 1}},
		NICs:   []translate.NIC{{MAC: "00:50:56:00:00:01", Model: "e1000", Network: "VM Network", Type: "bridge"}},
	}
}

type emitted struct {
	data  string
	warns []translate.Warning
}

func emitWith(t *testing.T, tg translate.Target, format string, opts translate.Options) emitted {
	t.Helper()
	m := optionMachine()
	disks := []translate.TargetDisk{{Path: fmt.Sprintf("/mnt/opt/opt-disk0.%s", format), Format: format, Size: 1 << 30}}
	outs, warns, err := tg.Emit(m, disks, opts)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, o := range outs {
		b.WriteString(o.Name + "\n")
		b.Write(o.Data)
	}
	return emitted{b.String(), warns}
}

// TestEveryOptionReachesEveryTarget runs every translation option against
// every target: an option the target takes (translate.Takes of its Caps)
// must change the output; one it does not take must raise a warning of
// its own that names the option (--devices ...) or its code. Silence
// fails, and so does a target that says it takes an option it ignores.
func TestEveryOptionReachesEveryTarget(t *testing.T) {
	noKVM := &translate.Host{KVMChecked: true, KVMErr: "test host without KVM"}
	withKVM := &translate.Host{KVMChecked: true}
	noDefault := &translate.Host{NetworksChecked: true, Networks: []string{"lan"}}
	cases := []struct {
		name   string
		opt    translate.Option // "": every target takes it
		flag   string           // the option's flag, as a warning names it
		code   string           // or a part of the warning code that stands for it
		host   *translate.Host
		format string // the disk format given (default: the target's)
		set    func(*translate.Options)
	}{
		{name: "devices=virtio", opt: translate.OptDevices, set: func(o *translate.Options) { o.Devices = "virtio" }},
		{name: "devices=compat", opt: translate.OptDevices, set: func(o *translate.Options) { o.Devices = "compat" }},
		{name: "network-map", opt: translate.OptNetworkMap, set: func(o *translate.Options) { o.NetworkMap = map[string]string{"VM Network": "br0"} }},
		{name: "domain-type=kvm", opt: translate.OptDomainType, host: noKVM, set: func(o *translate.Options) { o.DomainType = "kvm" }},
		{name: "domain-type=qemu", opt: translate.OptDomainType, host: withKVM, set: func(o *translate.Options) { o.DomainType = "qemu" }},
		{name: "network-fallback=user", opt: translate.OptNetworkFallback, host: noDefault, set: func(o *translate.Options) { o.NetworkFallback = "user" }},
		{name: "vmid=123", opt: translate.OptVMID, set: func(o *translate.Options) { o.VMID = 123 }},
		{name: "storage=tank", opt: translate.OptStorage, set: func(o *translate.Options) { o.Storage = "tank" }},
		{name: "export-url", opt: translate.OptExportURL, set: func(o *translate.Options) { o.ExportURL = "https://vmfs.example:9443/x" }},
		{name: "cert-configmap", opt: translate.OptCertConfigMap, set: func(o *translate.Options) { o.CertConfigMap = "my-ca" }},
		{name: "token-secret", opt: translate.OptTokenSecret, set: func(o *translate.Options) { o.TokenSecret = "my-token" }},
		{name: "namespace", opt: translate.OptNamespace, set: func(o *translate.Options) { o.Namespace = "vms" }},
		{name: "storage-class", opt: translate.OptStorageClass, set: func(o *translate.Options) { o.StorageClass = "fast.ssd" }},
		{name: "upload", opt: translate.OptUpload, set: func(o *translate.Options) { o.Upload = true }},
		{name: "format=raw", flag: "--format", code: "FORMAT", format: "raw", set: func(*translate.Options) {}},
	}
	for i, c := range cases {
		for _, s := range translate.OptionSpecs() {
			if s.Option == c.opt {
				cases[i].flag, cases[i].code = s.Flag(), s.Code
			}
		}
	}
	// Every option has a case.
	for _, s := range translate.OptionSpecs() {
		found := false
		for _, c := range cases {
			found = found || c.opt == s.Option
		}
		if !found {
			t.Errorf("option %s has no case", s.Option)
		}
	}
	// Where the option's effect is the target's own behaviour already, the
	// output must show it.
	already := map[string]string{
		"qemu/network-fallback=user": "-netdev user,id=net0",
	}
	// What some options must write, beyond a change.
	want := map[string][]string{
		"hyperv/network-map":            {"-SwitchName 'br0'"},
		"vmware/network-map":            {`ethernet0.networkName = "br0"`},
		"vmware/devices=virtio":         {`ethernet0.virtualDev = "vmxnet3"`, `scsi0.virtualDev = "pvscsi"`},
		"vmware/devices=compat":         {`ethernet0.virtualDev = "e1000"`, `sata0:0.fileName`},
		"libvirt/network-map":           {"<source network=\"br0\"></source>"},
		"libvirt/network-fallback=user": {"<interface type=\"user\">"},
		"libvirt/domain-type=kvm":       {`<domain type="kvm">`},
		"libvirt/domain-type=qemu":      {`<domain type="qemu">`},
		"qemu/domain-type=qemu":         {"-accel tcg"},
		"ovf/network-map":               {"<rasd:Connection>br0</rasd:Connection>"},
		"virtualbox/network-map":        {`<BridgedInterface name="br0">`},
		"virtualbox/devices=virtio":     {`type="virtio"`, `type="VirtioSCSI"`},
		"proxmox/network-map":           {"net0: e1000=00:50:56:00:00:01,bridge=br0"},
		"proxmox/vmid=123":              {"scsi0: local-lvm:vm-123-disk-0", "vmid=123\n"},
		"proxmox/storage=tank":          {"scsi0: tank:vm-100-disk-0", "storage='tank'\n"},
		"proxmox/devices=virtio":        {"virtio0: local-lvm:vm-100-disk-0", "net0: virtio="},
		"kubevirt/network-map":          {"networkName: br0"},
		"kubevirt/devices=virtio":       {"bus: virtio", "model: virtio"},
		"kubevirt/devices=compat":       {"bus: sata", "model: e1000e"},
		"kubevirt/export-url":           {"url: https://vmfs.example:9443/x/opt/opt-disk0.qcow2"},
		"kubevirt/cert-configmap":       {"certConfigMap: my-ca"},
		"kubevirt/token-secret":         {"- my-token"},
		"kubevirt/namespace":            {"namespace: vms"},
		"kubevirt/storage-class":        {"storageClassName: fast.ssd"},
		"kubevirt/upload":               {"upload: {}", "virtctl image-upload dv opt-disk0 --no-create --image-path='/mnt/opt/opt-disk0.qcow2'"},
	}
	for _, tg := range All() {
		for _, c := range cases {
			key := tg.Name() + "/" + c.name
			takes := c.opt == "" || slices.Contains(translate.Takes(tg.Caps()), c.opt)
			t.Run(key, func(t *testing.T) {
				format := tg.DefaultFormat()
				base := emitWith(t, tg, format, translate.Options{Host: c.host})
				if c.format != "" {
					format = c.format
					if format == tg.DefaultFormat() {
						// The case asks for a format other than the
						// target's: raw is proxmox's own.
						format = "qcow2"
					}
				}
				opts := translate.Options{Host: c.host}
				c.set(&opts)
				got := emitWith(t, tg, format, opts)
				for _, s := range want[key] {
					if !strings.Contains(got.data, s) {
						t.Errorf("output lacks %q:\n%s", s, got.data)
					}
				}
				if s, ok := already[key]; ok {
					if !strings.Contains(got.data, s) {
						t.Errorf("output lacks %q:\n%s", s, got.data)
					}
					return
				}
				if takes {
					if got.data == base.data {
						t.Errorf("%s takes %s, but it changes nothing (warnings: %v)", tg.Name(), c.name, got.warns)
					}
					return
				}
				seen := map[translate.Warning]int{}
				for _, w := range base.warns {
					seen[w]++
				}
				for _, w := range got.warns {
					if seen[w] > 0 {
						seen[w]--
						continue
					}
					if strings.Contains(w.Message, c.flag) || strings.Contains(w.Code, c.code) {
						return
					}
				}
				t.Errorf("%s does not take %s and no warning says so (warnings: %v)", tg.Name(), c.name, got.warns)
			})
		}
	}
}
