package convert

import (
	"bufio"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The guest's network configuration names interfaces; a name that the
// configuration does not tie to a MAC changes when the NIC's model or PCI
// slot does (ens192 on VMware, enp1s0 under QEMU's q35), and the static
// address written for it no longer applies. These files are read to find
// such names.
var (
	// netConfigFiles are single files.
	netConfigFiles = []string{"/etc/network/interfaces"}
	// netConfigDirs are directories whose files (by suffix) are read.
	netConfigDirs = []struct{ dir, suffix string }{
		{"/etc/network/interfaces.d", ""},
		{"/etc/netplan", ".yaml"},
		{"/etc/NetworkManager/system-connections", ".nmconnection"},
		{"/etc/systemd/network", ".network"},
		{"/etc/sysconfig/network-scripts", ""}, // ifcfg-*
	}
)

// ConfigName is an interface name the guest's network configuration uses.
type ConfigName struct {
	Name string
	File string // where it is named
	// MAC is set when the configuration itself ties the name to a MAC
	// (netplan match.macaddress, NetworkManager mac-address, networkd
	// MACAddress, ifcfg HWADDR): such a name needs nothing from vmfs.
	MAC string
}

// ConfigNames reads the interface names of the guest's network
// configuration from files (guest path -> contents). Loopback, globs and
// the names of virtual interfaces (VLANs and aliases count for their
// parent) are left out; a file that does not parse is an error naming it.
func ConfigNames(files map[string]string) ([]ConfigName, error) {
	var out []ConfigName
	add := func(file, name, mac string) {
		if i := strings.IndexAny(name, ".:"); i > 0 {
			name = name[:i] // ens192.10, ens192:1 -> ens192
		}
		if name == "" || name == "lo" || strings.ContainsAny(name, "*?[]!") || !validIfName(name) {
			return
		}
		out = append(out, ConfigName{Name: name, File: file, MAC: strings.ToLower(mac)})
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		body := files[p]
		dir, base := path.Split(p)
		var err error
		switch {
		case p == "/etc/network/interfaces" || dir == "/etc/network/interfaces.d/":
			ifupdownNames(body, func(n string) { add(p, n, "") })
		case dir == "/etc/netplan/":
			err = netplanNames(body, func(n, mac string) { add(p, n, mac) })
		case dir == "/etc/NetworkManager/system-connections/":
			nmNames(body, func(n, mac string) { add(p, n, mac) })
		case dir == "/etc/systemd/network/":
			networkdNames(body, func(n, mac string) { add(p, n, mac) })
		case dir == "/etc/sysconfig/network-scripts/" && strings.HasPrefix(base, "ifcfg-"):
			ifcfgNames(body, func(n, mac string) { add(p, n, mac) })
		}
		if err != nil {
			return nil, fmt.Errorf("guest file %s: %w", p, err)
		}
	}
	return out, nil
}

// validIfName is what Linux takes as an interface name: 1 to 15 bytes, no
// slash or white space.
func validIfName(n string) bool {
	if len(n) == 0 || len(n) > 15 || n == "." || n == ".." {
		return false
	}
	return !strings.ContainsAny(n, "/ \t\n\"'\\=")
}

// ifupdownNames: /etc/network/interfaces(5): iface, auto, allow-*, and the
// ports of bridges and bonds.
func ifupdownNames(body string, add func(string)) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch {
		case f[0] == "iface" && len(f) > 1:
			add(f[1])
		case f[0] == "auto" || strings.HasPrefix(f[0], "allow-"):
			for _, n := range f[1:] {
				add(n)
			}
		case f[0] == "bridge_ports" || f[0] == "bridge-ports" || f[0] == "bond-slaves" || f[0] == "bond_slaves":
			for _, n := range f[1:] {
				if n != "none" && n != "all" {
					add(n)
				}
			}
		}
	}
}

// netplanNames: network.ethernets.<id> with match.macaddress (bound),
// match.name, or the id itself; set-name renames a matched NIC.
func netplanNames(body string, add func(name, mac string)) error {
	var doc struct {
		Network struct {
			Ethernets map[string]struct {
				Match struct {
					Name       string `yaml:"name"`
					MACAddress string `yaml:"macaddress"`
				} `yaml:"match"`
				SetName string `yaml:"set-name"`
			} `yaml:"ethernets"`
		} `yaml:"network"`
	}
	if err := yaml.Unmarshal([]byte(body), &doc); err != nil {
		return fmt.Errorf("netplan: %w", err)
	}
	ids := make([]string, 0, len(doc.Network.Ethernets))
	for id := range doc.Network.Ethernets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		e := doc.Network.Ethernets[id]
		name := id
		if e.Match.Name != "" {
			name = e.Match.Name
		}
		if e.SetName != "" && e.Match.MACAddress != "" {
			name = e.SetName
		}
		add(name, e.Match.MACAddress)
	}
	return nil
}

// iniSections reads a keyfile (NetworkManager, systemd): section ->
// key -> values, in order.
func iniSections(body string) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	sec := ""
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			sec = strings.ToLower(strings.TrimSpace(l[1 : len(l)-1]))
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		if out[sec] == nil {
			out[sec] = map[string][]string{}
		}
		k = strings.TrimSpace(k)
		out[sec][k] = append(out[sec][k], strings.TrimSpace(v))
	}
	return out
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1] // the last assignment wins
}

// nmNames: [connection] interface-name of an Ethernet connection, bound
// when [ethernet] (or [802-3-ethernet]) has mac-address.
func nmNames(body string, add func(name, mac string)) {
	s := iniSections(body)
	conn := s["connection"]
	if typ := first(conn["type"]); typ != "" && typ != "ethernet" && typ != "802-3-ethernet" {
		return
	}
	mac := first(s["ethernet"]["mac-address"])
	if mac == "" {
		mac = first(s["802-3-ethernet"]["mac-address"])
	}
	if n := first(conn["interface-name"]); n != "" {
		add(n, mac)
	}
}

// networkdNames: [Match] Name= (white-space separated), bound by
// MACAddress=.
func networkdNames(body string, add func(name, mac string)) {
	m := iniSections(body)["match"]
	mac := first(m["MACAddress"])
	for _, v := range m["Name"] {
		for _, n := range strings.Fields(v) {
			add(n, mac)
		}
	}
}

// ifcfgNames: DEVICE= (or the file's suffix), bound by HWADDR=, which
// initscripts rename the NIC by.
func ifcfgNames(body string, add func(name, mac string)) {
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok && !strings.HasPrefix(k, "#") {
			vars[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	if t := vars["TYPE"]; t != "" && !strings.EqualFold(t, "Ethernet") {
		return
	}
	if n := vars["DEVICE"]; n != "" {
		add(n, vars["HWADDR"])
	}
}

// Pin is one interface name kept across the move: the NIC with MAC gets
// Name, written as File into the guest.
type Pin struct {
	Name, MAC string
	File      string // guest path
	Content   string
}

// PinNames pairs the names the guest's configuration uses without a MAC
// with the view's NICs (their MACs, in the descriptor's order). A pairing
// is only made where it is certain: one such name and one NIC. Everything
// else is said in the notes returned; nothing is guessed. udev says how
// the guest names devices: "systemd" (.link files), "udev" (rules), or ""
// (neither is there: nothing can be written).
func PinNames(names []ConfigName, macs []string, udev string) ([]Pin, []string) {
	var notes []string
	var free []string
	for _, n := range names {
		if n.MAC != "" {
			notes = append(notes, fmt.Sprintf("%s: %s is tied to MAC %s by the guest's own configuration", n.File, n.Name, n.MAC))
			continue
		}
		if !slices.Contains(free, n.Name) {
			free = append(free, n.Name)
		}
	}
	if len(free) == 0 {
		return nil, notes
	}
	var known []string
	for i, m := range macs {
		if m == "" {
			notes = append(notes, fmt.Sprintf("NIC %d has no MAC in the mount's descriptor (libvirt makes one up at define): its name cannot be kept", i))
			continue
		}
		known = append(known, strings.ToLower(m))
	}
	if len(free) != 1 || len(macs) != 1 || len(known) != 1 {
		notes = append(notes, fmt.Sprintf("the guest's configuration names %s and the descriptor has %d NIC(s): which name belongs to which MAC cannot be told, so no name is pinned; tie them to their MACs in the guest's configuration",
			strings.Join(free, ", "), len(macs)))
		return nil, notes
	}
	p := Pin{Name: free[0], MAC: known[0]}
	switch udev {
	case "systemd":
		p.File = "/etc/systemd/network/10-vmfs-" + p.Name + ".link"
		p.Content = fmt.Sprintf("# Written by vmfs convert: the NIC with this MAC keeps the name it had\n"+
			"# on the source hypervisor, so that the configuration naming it applies.\n"+
			"[Match]\nMACAddress=%s\n\n[Link]\nName=%s\n", p.MAC, p.Name)
	case "udev":
		p.File = "/etc/udev/rules.d/70-vmfs-net-" + p.Name + ".rules"
		p.Content = fmt.Sprintf("# Written by vmfs convert: the NIC with this MAC keeps the name it had\n"+
			"# on the source hypervisor.\n"+
			"SUBSYSTEM==\"net\", ACTION==\"add\", ATTR{address}==\"%s\", NAME=\"%s\"\n", p.MAC, p.Name)
	default:
		notes = append(notes, fmt.Sprintf("the guest has no udev to name %s by its MAC: its name is not pinned", p.Name))
		return nil, notes
	}
	return []Pin{p}, notes
}
