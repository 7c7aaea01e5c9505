// Package proxmox writes the "proxmox" target: a Proxmox VE qemu-server
// config, <name>.conf (the format of /etc/pve/qemu-server/<vmid>.conf),
// and a bash script, <name>-import.sh, that creates the VM with `qm
// create` and imports each disk of the view with `qm set ... import-from=`
// onto a storage.
//
// The format followed is the one of the Proxmox VE admin guide's
// "Qemu/KVM Virtual Machines" chapter and qm.conf(5) (pve-docs): one
// `key: value` line per option, keys sorted as qm writes them; disks
// `<bus><N>: <storage>:<volume>,size=<size>`, volumes named
// vm-<vmid>-disk-<N> (the names LVM, LVM-thin, ZFS and Ceph storages
// give; directory storages add <vmid>/ and a suffix, which the script
// leaves to qm); `bios: ovmf` with an `efidisk0` (efitype=4m,
// pre-enrolled-keys=1 under secure boot); `machine: q35`; `scsihw:`
// virtio-scsi-single, lsi, lsi53c810, megasas or pvscsi; `net<N>:
// <model>=<MAC>,bridge=<bridge>`; `ostype:` l26, win11, win10, win8,
// win7, wxp, w2k8, other. VM ids range over 100..999999999.
//
// Devices are placed on the hardware of the libvirt and qemu targets
// (translate.QEMUHardware): Proxmox VE runs the same QEMU.
package proxmox

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/vmfs/vmfs/translate"
)

// Warning codes. They are stable.
const (
	WarnCDROM    = "PROXMOX_CDROM"     // a CD-ROM image is left out: the drive is empty
	WarnSCSI     = "PROXMOX_SCSI"      // SCSI controllers of several models: one model for all
	WarnOmitted  = "PROXMOX_OMITTED"   // a drive or NIC the mapping leaves out
	WarnNICModel = "PROXMOX_NIC_MODEL" // a NIC model Proxmox lacks: e1000 used
	WarnOSType   = "PROXMOX_OSTYPE"    // guest OS unknown: ostype other
	WarnSerial   = "PROXMOX_SERIAL"    // a serial port becomes a socket
)

// Defaults of the options.
const (
	DefaultVMID    = 100
	DefaultStorage = "local-lvm"
	DefaultBridge  = "vmbr0"
)

// Target is the proxmox target. The registry holds its zero value;
// WithOptions gives the one a view names disks with.
type Target struct {
	// VMID names the disks (0: DefaultVMID); Emit follows the options.
	VMID int
}

var _ translate.OptionTarget = Target{}

func (Target) Name() string { return "proxmox" }

// DefaultFormat is raw: qm imports raw, qcow2 and vmdk, and converts all
// of them to the storage's own format (raw volumes on LVM, LVM-thin, ZFS
// and Ceph, the default local-lvm among them); a raw view is read as the
// guest sees it, with no image format in between to convert.
func (Target) DefaultFormat() string { return "raw" }

// Caps: QEMU's hardware; NICs on Proxmox bridges (vmbr0 when unmapped,
// said in a warning); a VM id and a storage.
func (Target) Caps() translate.Caps {
	return translate.Caps{
		Target:         "proxmox",
		DefaultNetwork: DefaultBridge,
		VMIDStorage:    true,
		Hardware:       translate.QEMUHardware(),
	}
}

// conf is a qemu-server config being built: keys and values.
type conf map[string]string

// String writes c as qm does: one "key: value" line per key, sorted.
func (c conf) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + ": " + c[k] + "\n")
	}
	return b.String()
}

// Emit writes <name>.conf and <name>-import.sh (mode 0755).
func (Target) Emit(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) ([]translate.OutFile, []translate.Warning, error) {
	if err := opts.CheckVMIDStorage(); err != nil {
		return nil, nil, fmt.Errorf("proxmox: %s: %w", m.Name, err)
	}
	mp, err := translate.Map(m, disks, opts, Target{}.Caps())
	if err != nil {
		return nil, mp.Said(), fmt.Errorf("proxmox: %s: %w", m.Name, err)
	}
	warns := mp.Warnings
	warn := func(code, format string, args ...any) {
		warns = append(warns, translate.Warning{Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if m.CPUs <= 0 || m.MemoryMiB <= 0 {
		return nil, warns, fmt.Errorf("proxmox: %s: machine has %d CPUs and %d MiB of memory", m.Name, m.CPUs, m.MemoryMiB)
	}
	vmid := opts.VMID
	if vmid == 0 {
		vmid = DefaultVMID
	}
	storage := opts.Storage
	if storage == "" {
		storage = DefaultStorage
	}
	name := translate.FileName(m.Name)
	c := conf{}
	// The create options, in the order of the script; the config holds
	// them and the disks.
	var create [][2]string
	set := func(k, v string) {
		c[k] = v
		create = append(create, [2]string{k, v})
	}
	set("name", dnsName(m.Name))
	set("memory", strconv.FormatInt(m.MemoryMiB, 10))
	sockets, cores := 1, m.CPUs
	if m.CoresPerSocket > 0 && m.CPUs%m.CoresPerSocket == 0 {
		sockets, cores = m.CPUs/m.CoresPerSocket, m.CoresPerSocket
	}
	set("sockets", strconv.Itoa(sockets))
	set("cores", strconv.Itoa(cores))
	ost := OSType(m.OSInfo)
	if ost == "other" {
		ost = familyOSType(m.GuestOS)
	}
	if ost == "other" {
		warn(WarnOSType, "guest OS %q (%s) has no Proxmox ostype: other (set it with qm set %d --ostype)", m.GuestOS, m.SourceFormat, vmid)
	}
	set("ostype", ost)
	if mp.Machine == "q35" {
		set("machine", "q35")
	}
	if m.UUID != "" && translate.IsUUID(m.UUID) {
		set("smbios1", "uuid="+strings.ToLower(m.UUID))
	}
	if m.Firmware == translate.UEFI {
		set("bios", "ovmf")
	}
	// vga: std is Proxmox's default (the VGA QEMU gives); virtio is the
	// one other the mapping picks.
	if mp.Video == "virtio" {
		set("vga", "virtio")
	}
	for i, sp := range m.Serials {
		if i < len(mp.SerialOmit) && mp.SerialOmit[i] {
			continue
		}
		if i >= 4 {
			warn(WarnOmitted, "serial port %d: Proxmox has serial0..serial3: left out", i)
			continue
		}
		// A socket is the serial port `qm terminal` opens; the source's
		// file, pipe or device is not carried over.
		if sp.Type != "" && sp.Type != "pty" {
			warn(WarnSerial, "serial port %d (%s %s): a Proxmox socket (qm terminal %d --iface serial%d)", i, sp.Type, sp.Path, vmid, i)
		}
		set(fmt.Sprintf("serial%d", i), "socket")
	}
	var scsihw string
	for _, ctl := range mp.Controllers {
		if ctl.Bus != translate.BusSCSI {
			continue
		}
		hw := map[string]string{
			"lsilogic": "lsi", "lsisas1068": "lsi", "lsisas1078": "megasas",
			"vmpvscsi": "pvscsi", "virtio-scsi": "virtio-scsi-single",
		}[ctl.Model]
		if hw == "" {
			return nil, warns, fmt.Errorf("proxmox: %s: SCSI controller model %q has no Proxmox scsihw", m.Name, ctl.Model)
		}
		if scsihw != "" && hw != scsihw {
			warn(WarnSCSI, "SCSI controllers %s and %s: Proxmox has one SCSI controller model per VM: %s used", scsihw, hw, scsihw)
			continue
		}
		scsihw = hw
	}
	if scsihw != "" {
		set("scsihw", scsihw)
	}
	for i, n := range mp.NICs {
		if n.Omit {
			warn(WarnOmitted, "NIC %d has no place on Proxmox: left out", i)
			continue
		}
		model := map[string]string{"virtio": "virtio", "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "rtl8139", "vmxnet3": "vmxnet3"}[n.Model]
		if model == "" {
			model = "e1000"
			warn(WarnNICModel, "NIC %d: model %q has no Proxmox model: e1000", i, n.Model)
		}
		v := model
		if mac := m.NICs[i].MAC; translate.IsMAC(mac) {
			v += "=" + strings.ToUpper(mac)
		}
		bridge := n.Network
		if !bridgeOK(bridge) {
			warn(WarnOmitted, "NIC %d: network %q is not a Proxmox bridge name: %s used", i, n.Network, DefaultBridge)
			bridge = DefaultBridge
		}
		set(fmt.Sprintf("net%d", i), v+",bridge="+bridge)
	}

	// Disks: the config names the volumes qm gives them on import, in
	// import order; the script imports each from the view.
	type imp struct{ key, path string }
	var imports []imp
	slot := map[translate.Bus]int{}
	usedIDE := map[int]bool{}
	bus := map[translate.Bus]string{translate.BusSCSI: "scsi", translate.BusSATA: "sata", translate.BusIDE: "ide", translate.BusVirtio: "virtio"}
	maxSlot := map[string]int{"scsi": 31, "sata": 6, "ide": 4, "virtio": 16}
	var boot []string
	volume := 0
	for i, d := range mp.Drives {
		if d.Omit {
			warn(WarnOmitted, "drive %d has no place on Proxmox: left out", i)
			continue
		}
		b := bus[d.Bus]
		if b == "" {
			return nil, warns, fmt.Errorf("proxmox: %s: drive %d on bus %q Proxmox lacks", m.Name, i, d.Bus)
		}
		n := slot[d.Bus]
		slot[d.Bus]++
		if d.Bus == translate.BusIDE {
			// ideN is bus N/2, unit N%2, as the source placed it.
			n = d.AddrBus*2 + d.Unit
			if usedIDE[n] || n >= maxSlot[b] {
				return nil, warns, fmt.Errorf("proxmox: %s: drive %d at IDE %d:%d, which Proxmox cannot hold", m.Name, i, d.AddrBus, d.Unit)
			}
			usedIDE[n] = true
		}
		if n >= maxSlot[b] {
			return nil, warns, fmt.Errorf("proxmox: %s: more than %d %s drives", m.Name, maxSlot[b], b)
		}
		key := fmt.Sprintf("%s%d", b, n)
		if d.CDROM {
			if d.Path != "" {
				warn(WarnCDROM, "CD-ROM %s: image %s is not imported: the drive is empty (upload the ISO and qm set %d --%s STORAGE:iso/NAME.iso,media=cdrom)", key, d.Path, vmid, key)
			}
			c[key] = "none,media=cdrom"
			create = append(create, [2]string{key, "none,media=cdrom"})
			continue
		}
		if d.Path == "" || !strings.HasPrefix(d.Path, "/") {
			return nil, warns, fmt.Errorf("proxmox: %s: disk %d has no absolute path in the view", m.Name, d.Index)
		}
		v := fmt.Sprintf("%s:vm-%d-disk-%d", storage, vmid, volume)
		volume++
		if d.Index < len(disks) && disks[d.Index].Size > 0 {
			v += ",size=" + size(disks[d.Index].Size)
		}
		c[key] = v
		imports = append(imports, imp{key, d.Path})
		if d.Boot > 0 {
			boot = append(boot, key)
		}
	}
	if len(boot) > 0 {
		c["boot"] = "order=" + strings.Join(boot, ";")
	}
	efi := ""
	if m.Firmware == translate.UEFI {
		efi = "efitype=4m"
		if m.SecureBoot {
			efi += ",pre-enrolled-keys=1"
		}
		c["efidisk0"] = fmt.Sprintf("%s:vm-%d-disk-%d,%s,size=4M", storage, vmid, volume, efi)
	}

	var s strings.Builder
	s.WriteString("#!/bin/bash\n")
	fmt.Fprintf(&s, "# %s: generated by vmfs from %s (%s).\n", translate.OneLine(m.Name), translate.OneLine(m.Source), translate.OneLine(m.SourceFormat))
	fmt.Fprintf(&s, "# Run on a Proxmox VE node that sees the disks: creates VM %d and imports\n# them onto storage %s (--vmid and --storage choose others).\n", vmid, storage)
	s.WriteString("set -euo pipefail\n")
	fmt.Fprintf(&s, "vmid=%d\n", vmid)
	fmt.Fprintf(&s, "storage=%s\n", translate.ShellQuote(storage))
	s.WriteString("qm create \"$vmid\"")
	for _, kv := range create {
		fmt.Fprintf(&s, " \\\n  --%s %s", kv[0], translate.ShellQuote(kv[1]))
	}
	s.WriteString("\n")
	for _, im := range imports {
		// import-from takes the path as a property value: a comma in it
		// would end it.
		if strings.Contains(im.path, ",") {
			return nil, warns, fmt.Errorf("proxmox: %s: disk path %s holds a ',', which qm's import-from cannot take", m.Name, im.path)
		}
		fmt.Fprintf(&s, "qm set \"$vmid\" --%s \"$storage:0,import-from=\"%s\n", im.key, translate.ShellQuote(im.path))
	}
	if efi != "" {
		fmt.Fprintf(&s, "qm set \"$vmid\" --efidisk0 \"$storage:1,%s\"\n", efi)
	}
	if len(boot) > 0 {
		fmt.Fprintf(&s, "qm set \"$vmid\" --boot %s\n", translate.ShellQuote(c["boot"]))
	}
	s.WriteString("qm config \"$vmid\"\n")
	return []translate.OutFile{
		{Name: name + ".conf", Data: []byte(c.String()), Mode: 0o644},
		{Name: name + "-import.sh", Data: []byte(s.String()), Mode: 0o755},
	}, warns, nil
}

// size is n bytes as a Proxmox disk size, rounded up to the KiB.
func size(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "G"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	}
	return strconv.FormatInt((n+1023)>>10, 10) + "K"
}

// OSType is the Proxmox ostype of a libosinfo id: l26 for Linux, win11,
// win10 (also Windows Server 2016..2022), win8, win7, wxp, w2k8; other
// otherwise.
func OSType(osinfo string) string {
	id := strings.ToLower(osinfo)
	for _, w := range []struct{ suffix, t string }{
		{"microsoft.com/win/11", "win11"}, {"microsoft.com/win/2k25", "win11"},
		{"microsoft.com/win/10", "win10"}, {"microsoft.com/win/2k22", "win10"},
		{"microsoft.com/win/2k19", "win10"}, {"microsoft.com/win/2k16", "win10"},
		{"microsoft.com/win/8.1", "win8"}, {"microsoft.com/win/8", "win8"}, {"microsoft.com/win/2k12r2", "win8"}, {"microsoft.com/win/2k12", "win8"},
		{"microsoft.com/win/7", "win7"}, {"microsoft.com/win/2k8r2", "win7"},
		{"microsoft.com/win/2k8", "w2k8"}, {"microsoft.com/win/vista", "w2k8"},
		{"microsoft.com/win/xp", "wxp"}, {"microsoft.com/win/2k3", "wxp"},
	} {
		if strings.HasSuffix(id, w.suffix) {
			return w.t
		}
	}
	for _, l := range []string{"fedoraproject.org/", "ubuntu.com/", "debian.org/", "redhat.com/rhel", "centos.org/", "opensuse.org/", "suse.com/", "archlinux.org/", "alpinelinux.org/", "almalinux.org/", "rockylinux.org/", "oracle.com/ol", "gentoo.org/", "mageia.org/", "linux"} {
		if strings.Contains(id, l) {
			return "l26"
		}
	}
	return "other"
}

// familyOSType is the ostype of a source's own guest OS identifier
// (VMware guestOS, VirtualBox OSType) that names no release libosinfo
// knows, by its family: ostype tunes QEMU for a family, not a release.
func familyOSType(guestOS string) string {
	g := strings.ToLower(guestOS)
	switch {
	case strings.Contains(g, "windows11"), strings.Contains(g, "win11"):
		return "win11"
	case strings.Contains(g, "windows10"), strings.Contains(g, "win10"):
		return "win10"
	}
	for _, l := range []string{"linux", "ubuntu", "debian", "centos", "rhel", "redhat", "fedora", "suse", "sles", "oracle", "archlinux", "gentoo", "mandriva", "mandrake", "turbolinux", "xandros", "asianux", "almalinux", "rockylinux", "photon", "coreos"} {
		if strings.Contains(g, l) {
			return "l26"
		}
	}
	return "other"
}

// dnsName is a VM name as Proxmox takes it (a DNS name: letters, digits,
// '-' and '.', starting and ending alphanumeric); "vm" when none is left.
func dnsName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= 63 {
			break
		}
	}
	out := strings.Trim(b.String(), "-.")
	for strings.Contains(out, "..") {
		out = strings.ReplaceAll(out, "..", ".")
	}
	if out == "" {
		return "vm"
	}
	return out
}

// bridgeOK: a Linux bridge name Proxmox takes (vmbrN, or any interface
// name of up to 15 letters, digits, '-', '_' and '.').
func bridgeOK(s string) bool {
	if s == "" || len(s) > 15 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
