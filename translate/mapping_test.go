package translate

import (
	"slices"
	"strings"
	"testing"
)

func TestMap(t *testing.T) {
	libvirt := Caps{Target: "libvirt", DefaultNetwork: "default", HostNetworks: true, DomainType: true}
	vmware := Caps{Target: "vmware", VirtioSubstitute: "paravirtual"}
	fixed := Caps{Target: "hyperv", FixedDevices: "its own devices"}
	qemu := Caps{Target: "qemu", NoNetworkNames: "user networking", UserNetworking: true, DomainType: true, AccelFallback: true}
	noKVM := &Host{KVMChecked: true, KVMErr: "open /dev/kvm: no such file"}
	kvmOK := &Host{KVMChecked: true}
	nets := func(active, inactive []string) *Host {
		return &Host{NetworksChecked: true, Networks: active, Inactive: inactive}
	}
	machine := func(networks ...string) *Machine {
		m := &Machine{}
		for _, n := range networks {
			m.NICs = append(m.NICs, NIC{Network: n})
		}
		return m
	}
	tests := []struct {
		name    string
		m       *Machine
		opts    Options
		caps    Caps
		devices string
		domain  string
		nets    []NICMap
		warns   []string // codes, in order
		say     string   // in some warning
		err     string
	}{
		{name: "defaults", m: machine(), caps: libvirt, devices: Preserve, domain: DomainKVM},
		{name: "unknown policy", m: machine(), opts: Options{Devices: "fancy"}, caps: libvirt, devices: Preserve, domain: DomainKVM, warns: []string{WarnPolicy}},
		{name: "policy case", m: machine(), opts: Options{Devices: "VirtIO"}, caps: libvirt, devices: Virtio, domain: DomainKVM},
		{name: "virtio substitute", m: machine(), opts: Options{Devices: Virtio}, caps: vmware, devices: Virtio, warns: []string{WarnDevices}, say: "paravirtual"},
		{name: "compat on vmware", m: machine(), opts: Options{Devices: Compat}, caps: vmware, devices: Compat},
		{name: "fixed devices", m: machine(), opts: Options{Devices: Compat}, caps: fixed, devices: Compat, warns: []string{WarnDevices}, say: "--devices compat"},
		{name: "no host kvm", m: machine(), opts: Options{Host: noKVM}, caps: libvirt, devices: Preserve, domain: DomainQEMU, warns: []string{WarnDomainType}, say: "no such file"},
		{name: "host kvm", m: machine(), opts: Options{Host: kvmOK}, caps: libvirt, devices: Preserve, domain: DomainKVM},
		{name: "explicit qemu", m: machine(), opts: Options{DomainType: "qemu", Host: noKVM}, caps: libvirt, devices: Preserve, domain: DomainQEMU},
		{name: "explicit kvm without kvm", m: machine(), opts: Options{DomainType: "kvm", Host: noKVM}, caps: libvirt, devices: Preserve, domain: DomainKVM, warns: []string{WarnDomainType}, say: "--domain-type kvm"},
		{name: "qemu target picks", m: machine(), opts: Options{Host: noKVM}, caps: qemu, devices: Preserve},
		{name: "domain type ignored", m: machine(), opts: Options{DomainType: "qemu"}, caps: vmware, devices: Preserve, warns: []string{WarnIgnored}, say: "--domain-type qemu"},
		{name: "bad domain type", m: machine(), opts: Options{DomainType: "xen"}, caps: libvirt, err: `domain type "xen"`},
		{name: "bad fallback", m: machine(), opts: Options{NetworkFallback: "bridge"}, caps: libvirt, err: `network fallback "bridge"`},
		{name: "renamed once", m: machine("VM Network", "VM Network", "default", ""), caps: libvirt, devices: Preserve, domain: DomainKVM,
			nets: []NICMap{{Network: "default"}, {Network: "default"}, {Network: "default"}, {Network: "default"}}, warns: []string{WarnNetRenamed}, say: `--network-map "VM Network=NAME"`},
		{name: "mapped", m: machine("VM Network", "inside"), opts: Options{NetworkMap: map[string]string{"VM Network": "br0"}}, caps: libvirt, devices: Preserve, domain: DomainKVM,
			nets: []NICMap{{Network: "br0", Mapped: true}, {Network: "default"}}, warns: []string{WarnNetRenamed}, say: `"inside"`},
		{name: "source names kept", m: machine("VM Network"), caps: vmware, devices: Preserve, nets: []NICMap{{Network: "VM Network"}}},
		{name: "unused map entry", m: machine("VM Network"), opts: Options{NetworkMap: map[string]string{"VM Netwrok": "br0"}}, caps: vmware, devices: Preserve,
			nets: []NICMap{{Network: "VM Network"}}, warns: []string{WarnNetMapUnused}, say: "VM Netwrok=br0"},
		{name: "map ignored", m: machine("VM Network"), opts: Options{NetworkMap: map[string]string{"VM Network": "br0"}}, caps: qemu, devices: Preserve,
			nets: []NICMap{{Network: "br0", Mapped: true}}, warns: []string{WarnIgnored}, say: "--network-map VM Network=br0"},
		{name: "network present", m: machine("x"), opts: Options{NetworkMap: map[string]string{"x": "lan"}, Host: nets([]string{"lan", "default"}, nil)}, caps: libvirt, devices: Preserve, domain: DomainKVM,
			nets: []NICMap{{Network: "lan", Mapped: true}}},
		{name: "network missing", m: machine("", ""), opts: Options{Host: nets([]string{"lan"}, nil)}, caps: libvirt, devices: Preserve, domain: DomainKVM,
			nets: []NICMap{{Network: "default"}, {Network: "default"}}, warns: []string{WarnNetMissing}, say: "--network-fallback user"},
		{name: "network inactive", m: machine(""), opts: Options{Host: nets(nil, []string{"default"})}, caps: libvirt, devices: Preserve, domain: DomainKVM,
			nets: []NICMap{{Network: "default"}}, warns: []string{WarnNetMissing}, say: "virsh net-start default"},
		{name: "fallback user", m: machine("", "x"), opts: Options{NetworkFallback: "user", NetworkMap: map[string]string{"x": "lan"}, Host: nets([]string{"lan"}, nil)}, caps: libvirt, devices: Preserve, domain: DomainKVM,
			nets: []NICMap{{Network: "default", User: true}, {Network: "lan", Mapped: true}}, warns: []string{WarnNetFallback}, say: "NIC 0"},
		{name: "fallback unchecked", m: machine(""), opts: Options{NetworkFallback: "user", Host: &Host{NetworksChecked: true, NetworksErr: "libvirt is not running"}}, caps: libvirt, devices: Preserve, domain: DomainKVM,
			nets: []NICMap{{Network: "default"}}, warns: []string{WarnNetUnchecked}, say: "libvirt is not running"},
		{name: "fallback without host", m: machine(""), opts: Options{NetworkFallback: "user"}, caps: libvirt, devices: Preserve, domain: DomainKVM,
			nets: []NICMap{{Network: "default"}}, warns: []string{WarnNetUnchecked}},
		{name: "fallback ignored", m: machine("a"), opts: Options{NetworkFallback: "user"}, caps: vmware, devices: Preserve, nets: []NICMap{{Network: "a"}}, warns: []string{WarnIgnored}, say: "--network-fallback user"},
		{name: "fallback already", m: machine("a"), opts: Options{NetworkFallback: "user"}, caps: qemu, devices: Preserve, nets: []NICMap{{Network: "a"}}},
		{name: "unknown networks unsaid", m: machine(""), opts: Options{Host: &Host{NetworksChecked: true, NetworksErr: "no libvirt"}}, caps: libvirt, devices: Preserve, domain: DomainKVM, nets: []NICMap{{Network: "default"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp, err := Map(tt.m, nil, tt.opts, tt.caps)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mp.Devices != tt.devices || mp.DomainType != tt.domain {
				t.Errorf("devices %q domain %q, want %q %q", mp.Devices, mp.DomainType, tt.devices, tt.domain)
			}
			if !slices.Equal(mp.NICs, tt.nets) {
				t.Errorf("NICs %+v, want %+v", mp.NICs, tt.nets)
			}
			var codes []string
			said := tt.say == ""
			for _, w := range mp.Warnings {
				codes = append(codes, w.Code)
				said = said || strings.Contains(w.Message, tt.say)
				if !strings.HasPrefix(w.Code, "MAP_") {
					t.Errorf("code %s", w.Code)
				}
			}
			if !slices.Equal(codes, tt.warns) {
				t.Errorf("warnings %v, want codes %v", mp.Warnings, tt.warns)
			}
			if !said {
				t.Errorf("no warning says %q: %v", tt.say, mp.Warnings)
			}
		})
	}
}
