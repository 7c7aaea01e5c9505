package convert

import (
	"reflect"
	"strings"
	"testing"
)

func TestConfigNames(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  []ConfigName
		err   string
	}{
		{"ifupdown", map[string]string{"/etc/network/interfaces": `
# comment ens999
source /etc/network/interfaces.d/*
auto lo
iface lo inet loopback
allow-hotplug ens192
iface ens192 inet static
	address 192.0.2.19/24
iface ens192.10 inet manual
auto br0
iface br0 inet dhcp
	bridge_ports ens224 none
`}, []ConfigName{
			{Name: "ens192", File: "/etc/network/interfaces"},
			{Name: "ens192", File: "/etc/network/interfaces"},
			{Name: "ens192", File: "/etc/network/interfaces"},
			{Name: "br0", File: "/etc/network/interfaces"},
			{Name: "br0", File: "/etc/network/interfaces"},
			{Name: "ens224", File: "/etc/network/interfaces"},
		}, ""},
		{"netplan", map[string]string{"/etc/netplan/50-cloud-init.yaml": `
network:
  version: 2
  ethernets:
    ens160:
      addresses: [192.0.2.5/24]
    lan:
      match:
        macaddress: "00:50:56:AA:BB:CC"
      set-name: lan0
    wild:
      match:
        name: "en*"
`}, []ConfigName{
			{Name: "ens160", File: "/etc/netplan/50-cloud-init.yaml"},
			{Name: "lan0", File: "/etc/netplan/50-cloud-init.yaml", MAC: "00:50:56:aa:bb:cc"},
		}, ""},
		{"netplan-broken", map[string]string{"/etc/netplan/a.yaml": "network: [\n"}, nil, "guest file /etc/netplan/a.yaml: netplan:"},
		{"networkmanager", map[string]string{
			"/etc/NetworkManager/system-connections/a.nmconnection": "[connection]\nid=a\ntype=ethernet\ninterface-name=ens33\n[ipv4]\nmethod=manual\naddress1=192.0.2.7/24\n",
			"/etc/NetworkManager/system-connections/b.nmconnection": "[connection]\ntype=ethernet\ninterface-name=ens34\n[ethernet]\nmac-address=00:0C:29:00:00:01\n",
			"/etc/NetworkManager/system-connections/w.nmconnection": "[connection]\ntype=wifi\ninterface-name=wlan0\n",
		}, []ConfigName{
			{Name: "ens33", File: "/etc/NetworkManager/system-connections/a.nmconnection"},
			{Name: "ens34", File: "/etc/NetworkManager/system-connections/b.nmconnection", MAC: "00:0c:29:00:00:01"},
		}, ""},
		{"networkd", map[string]string{
			"/etc/systemd/network/10-a.network": "[Match]\nName=ens192 ens224\n\n[Network]\nAddress=192.0.2.1/24\n",
			"/etc/systemd/network/20-b.network": "[Match]\nName=en*\n",
			"/etc/systemd/network/30-c.network": "[Match]\nMACAddress=00:50:56:00:00:02\nName=ens256\n",
		}, []ConfigName{
			{Name: "ens192", File: "/etc/systemd/network/10-a.network"},
			{Name: "ens224", File: "/etc/systemd/network/10-a.network"},
			{Name: "ens256", File: "/etc/systemd/network/30-c.network", MAC: "00:50:56:00:00:02"},
		}, ""},
		{"ifcfg", map[string]string{
			"/etc/sysconfig/network-scripts/ifcfg-ens192": "DEVICE=ens192\nBOOTPROTO=static\nIPADDR=192.0.2.9\n",
			"/etc/sysconfig/network-scripts/ifcfg-eth1":   "DEVICE=\"eth1\"\nHWADDR=00:50:56:00:00:03\n",
			"/etc/sysconfig/network-scripts/ifcfg-lo":     "DEVICE=lo\n",
			"/etc/sysconfig/network-scripts/ifcfg-bond0":  "DEVICE=bond0\nTYPE=Bond\n",
		}, []ConfigName{
			{Name: "ens192", File: "/etc/sysconfig/network-scripts/ifcfg-ens192"},
			{Name: "eth1", File: "/etc/sysconfig/network-scripts/ifcfg-eth1", MAC: "00:50:56:00:00:03"},
		}, ""},
		{"hostile-names", map[string]string{"/etc/network/interfaces": "iface ../../etc inet static\niface averyveryverylongname0 inet dhcp\niface a\"b inet dhcp\n"}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ConfigNames(c.files)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestPinNames(t *testing.T) {
	ens192 := ConfigName{Name: "ens192", File: "/etc/network/interfaces"}
	cases := []struct {
		name  string
		names []ConfigName
		macs  []string
		udev  string
		file  string // the pin's file; "": no pin
		note  string
	}{
		{"one-name-one-nic", []ConfigName{ens192, ens192}, []string{"00:50:56:3F:00:19"}, "systemd", "/etc/systemd/network/10-vmfs-ens192.link", ""},
		{"old-udev", []ConfigName{ens192}, []string{"00:50:56:3f:00:19"}, "udev", "/etc/udev/rules.d/70-vmfs-net-ens192.rules", ""},
		{"no-udev", []ConfigName{ens192}, []string{"00:50:56:3f:00:19"}, "", "", "no udev"},
		{"bound-by-mac", []ConfigName{{Name: "lan0", File: "/etc/netplan/a.yaml", MAC: "00:50:56:aa:bb:cc"}}, []string{"00:50:56:aa:bb:cc"}, "systemd", "", "tied to MAC 00:50:56:aa:bb:cc"},
		{"two-names-two-nics", []ConfigName{ens192, {Name: "ens224"}}, []string{"00:50:56:00:00:01", "00:50:56:00:00:02"}, "systemd", "", "ens192, ens224 and the descriptor has 2 NIC(s)"},
		{"no-mac", []ConfigName{ens192}, []string{""}, "systemd", "", "NIC 0 has no MAC"},
		{"no-nic", []ConfigName{ens192}, nil, "systemd", "", "has 0 NIC(s)"},
		{"nothing-named", nil, []string{"00:50:56:00:00:01"}, "systemd", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pins, notes := PinNames(c.names, c.macs, c.udev)
			joined := strings.Join(notes, "\n")
			if c.note != "" && !strings.Contains(joined, c.note) {
				t.Errorf("notes %q lack %q", joined, c.note)
			}
			if c.file == "" {
				if len(pins) != 0 {
					t.Fatalf("pinned %+v", pins)
				}
				return
			}
			if len(pins) != 1 || pins[0].File != c.file {
				t.Fatalf("pins = %+v, want one in %s", pins, c.file)
			}
			p := pins[0]
			mac := strings.ToLower(c.macs[0])
			if p.MAC != mac || p.Name != "ens192" {
				t.Errorf("pin %+v", p)
			}
			switch c.udev {
			case "systemd":
				if !strings.Contains(p.Content, "[Match]\nMACAddress="+mac+"\n") || !strings.Contains(p.Content, "[Link]\nName=ens192\n") {
					t.Errorf(".link file:\n%s", p.Content)
				}
			case "udev":
				if !strings.Contains(p.Content, `ATTR{address}=="`+mac+`", NAME="ens192"`) {
					t.Errorf("udev rule:\n%s", p.Content)
				}
			}
		})
	}
}
