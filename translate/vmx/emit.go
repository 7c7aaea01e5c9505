package vmx

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/vmfs/vmfs/translate"
)

// Warning codes of the emitter. They are stable.
const (
	WarnEmitBus    = "VMX_EMIT_BUS"    // disk or CD-ROM moved to a bus VMware has
	WarnEmitNIC    = "VMX_EMIT_NIC"    // NIC model VMware lacks: replaced
	WarnEmitFormat = "VMX_EMIT_FORMAT" // a disk image that is not VMDK
	WarnEmitSerial = "VMX_EMIT_SERIAL" // serial port without a VMware equivalent
	WarnEmitUnits  = "VMX_EMIT_UNITS"  // a controller is full
)

// HardwareVersion is the virtualHW.version written: ESXi 6.7 /
// Workstation 15 and later run it, and it has NVMe, e1000e and vmxnet3.
const HardwareVersion = 14

// Target is the "vmware" target: a .vmx naming its disks.
type Target struct{}

var _ translate.Target = Target{}

func (Target) Name() string          { return "vmware" }
func (Target) DefaultFormat() string { return "vmdk" }

// Caps: VMware has no virtio devices; --devices virtio uses its
// paravirtual ones.
func (Target) Caps() translate.Caps {
	return translate.Caps{Target: "vmware", VirtioSubstitute: "VMware's paravirtual devices (pvscsi disks, vmxnet3 NICs)", Hardware: Hardware()}
}

// scsi are VMware's SCSI controllers by source model; another model
// gets the LSI Logic SAS.
var scsi = []translate.BusRule{
	{Bus: translate.BusSCSI, Models: []string{"lsilogic"}, To: translate.BusSCSI, Model: "lsilogic"},
	{Bus: translate.BusSCSI, Models: []string{"lsisas1068"}, To: translate.BusSCSI, Model: "lsisas1068"},
	{Bus: translate.BusSCSI, Models: []string{"pvscsi", "vmpvscsi"}, To: translate.BusSCSI, Model: "pvscsi"},
	{Bus: translate.BusSCSI, Models: []string{"buslogic"}, To: translate.BusSCSI, Model: "buslogic"},
	{Bus: translate.BusSCSI, To: translate.BusSCSI, Model: "lsisas1068"},
}

// serialFileType is VMware's fileType of each serial port type it keeps.
var serialFileType = map[string]string{"file": "file", "pipe": "pipe", "dev": "device", "tcp": "network"}

// Hardware is what a VMware machine of HardwareVersion offers.
func Hardware() translate.Hardware {
	moves := translate.BusRule{To: translate.BusSATA, Code: WarnEmitBus, Say: "{what} on the {bus} bus moves to SATA"}
	return translate.Hardware{
		Layout: translate.LayoutVMware,
		Disks: append(append([]translate.BusRule(nil), scsi...),
			translate.BusRule{Bus: translate.BusSATA, To: translate.BusSATA},
			translate.BusRule{Bus: translate.BusIDE, To: translate.BusIDE},
			translate.BusRule{Bus: translate.BusNVMe, To: translate.BusNVMe},
			moves),
		CDROMs: append(append([]translate.BusRule(nil), scsi...),
			translate.BusRule{Bus: translate.BusSATA, To: translate.BusSATA},
			translate.BusRule{Bus: translate.BusIDE, To: translate.BusIDE},
			translate.BusRule{Bus: translate.BusNVMe, To: translate.BusSATA},
			moves),
		VirtioDisk:  translate.BusRule{To: translate.BusSCSI, Model: "pvscsi"},
		CompatDisk:  translate.BusRule{To: translate.BusSATA},
		VirtioCDROM: translate.BusRule{To: translate.BusSATA},
		CompatCDROM: translate.BusRule{To: translate.BusSATA},
		NICs: []translate.ModelRule{
			{Models: []string{"e1000", "e1000e", "vmxnet3", "vlance", "vmxnet"}, To: ""},
			{Models: []string{"pcnet"}, To: "vlance"},
			{Models: []string{""}, To: "e1000e"},
			{To: "e1000e", Code: WarnEmitNIC, Say: "NIC {i} model {model} is not a VMware adapter: e1000e used"},
		},
		VirtioNIC: "vmxnet3", CompatNIC: "e1000",
		Formats: []string{"vmdk"}, FormatCode: WarnEmitFormat, FormatSay: "disk {i} is a {format} image: VMware opens only VMDK",
		UnitsCode:   WarnEmitUnits,
		SerialTypes: []string{"file", "pipe", "dev", "tcp"}, SerialCode: WarnEmitSerial, SerialSay: "serial port ({type}) has no VMware equivalent: left out",
	}
}

// Emit writes <name>.vmx.
func (Target) Emit(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) ([]translate.OutFile, []translate.Warning, error) {
	b, warns, err := Marshal(m, disks, opts)
	if err != nil {
		return nil, warns, err
	}
	return []translate.OutFile{{Name: translate.FileName(m.Name) + ".vmx", Data: b, Mode: 0o644}}, warns, nil
}

// writer collects key = value lines in order.
type writer struct {
	lines []string
}

func (w *writer) set(k, v string) { w.lines = append(w.lines, k+" = \""+escape(v)+"\"") }

// escape writes what cannot stand between quotes as |XX.
func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '|' || c == '#' || c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, "|%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// vmwareUUID writes a canonical UUID the way uuid.bios holds it.
func vmwareUUID(u string) (string, bool) {
	h := strings.ReplaceAll(strings.ToLower(u), "-", "")
	if len(h) != 32 {
		return "", false
	}
	for i := 0; i < 32; i++ {
		if _, ok := hexNibble(h[i]); !ok {
			return "", false
		}
	}
	var parts []string
	for i := 0; i < 16; i++ {
		parts = append(parts, h[2*i:2*i+2])
	}
	return strings.Join(parts[:8], " ") + "-" + strings.Join(parts[8:], " "), true
}

// Marshal generates the .vmx text of m with its disks at disks.
func Marshal(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) ([]byte, []translate.Warning, error) {
	mp, err := translate.Map(m, disks, opts, Target{}.Caps())
	if err != nil {
		return nil, mp.Said(), fmt.Errorf("vmx: %s: %w", m.Name, err)
	}
	warns := mp.Warnings
	w := &writer{}
	w.set(".encoding", "UTF-8")
	w.set("config.version", "8")
	w.set("virtualHW.version", strconv.Itoa(HardwareVersion))
	w.set("displayName", m.Name)
	guest := ""
	if m.SourceFormat == "vmx" {
		guest = m.GuestOS
	}
	if guest == "" {
		guest = GuestOS(m.OSInfo)
	}
	if guest == "" {
		guest = "other-64"
	}
	w.set("guestOS", guest)
	mem := m.MemoryMiB
	if mem <= 0 {
		mem = DefaultMemoryMiB
	}
	w.set("memSize", strconv.FormatInt(mem, 10))
	cpus := max(m.CPUs, 1)
	w.set("numvcpus", strconv.Itoa(cpus))
	if m.CoresPerSocket > 0 {
		w.set("cpuid.coresPerSocket", strconv.Itoa(m.CoresPerSocket))
	}
	if m.Firmware == translate.UEFI {
		w.set("firmware", "efi")
		if m.SecureBoot {
			w.set("uefi.secureBoot.enabled", "TRUE")
		}
	}
	if u, ok := vmwareUUID(m.UUID); ok {
		w.set("uuid.bios", u)
		w.set("uuid.action", "keep")
	}
	w.set("pciBridge0.present", "TRUE")
	for i := 4; i <= 7; i++ {
		p := "pciBridge" + strconv.Itoa(i)
		w.set(p+".present", "TRUE")
		w.set(p+".virtualDev", "pcieRootPort")
		w.set(p+".functions", "8")
	}
	w.set("svga.present", "TRUE")

	// Drives as the mapping placed them; controllers in name order.
	var devLines [][2]string
	var hddOrder []string
	for _, d := range mp.Drives {
		if d.Omit {
			continue
		}
		ns := fmt.Sprintf("%s%d:%d", d.Bus, d.Controller, d.Unit)
		devLines = append(devLines, [2]string{ns + ".present", "TRUE"})
		switch {
		case !d.CDROM:
			hddOrder = append(hddOrder, ns)
			devLines = append(devLines, [2]string{ns + ".fileName", d.Path})
			if d.Bus == translate.BusSCSI {
				devLines = append(devLines, [2]string{ns + ".deviceType", "scsi-hardDisk"})
			}
			if d.ReadOnly {
				devLines = append(devLines, [2]string{ns + ".mode", "independent-nonpersistent"})
			}
		case d.Path != "":
			devLines = append(devLines, [2]string{ns + ".deviceType", "cdrom-image"}, [2]string{ns + ".fileName", d.Path})
		default:
			devLines = append(devLines, [2]string{ns + ".deviceType", "cdrom-raw"}, [2]string{ns + ".fileName", "auto detect"},
				[2]string{ns + ".startConnected", "FALSE"}, [2]string{ns + ".autodetect", "TRUE"})
		}
	}
	ctls := map[string]translate.Controller{}
	var names []string
	for _, c := range mp.Controllers {
		n := fmt.Sprintf("%s%d", c.Bus, c.Index)
		ctls[n] = c
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := ctls[n]
		if c.Bus == translate.BusIDE {
			continue
		}
		w.set(n+".present", "TRUE")
		if c.Bus == translate.BusSCSI {
			w.set(n+".virtualDev", c.Model)
		}
	}
	for _, l := range devLines {
		w.set(l[0], l[1])
	}
	if len(hddOrder) > 1 {
		// The source's disk order, the first being the boot disk.
		w.set("bios.hddOrder", strings.Join(hddOrder, ","))
	}
	for i, n := range m.NICs {
		ns := "ethernet" + strconv.Itoa(i)
		w.set(ns+".present", "TRUE")
		w.set(ns+".virtualDev", mp.NICs[i].Model)
		net := mp.NICs[i].Network
		switch n.Type {
		case "nat", "hostonly", "bridge":
			w.set(ns+".connectionType", map[string]string{"nat": "nat", "hostonly": "hostonly", "bridge": "bridged"}[n.Type])
			if net != "" {
				w.set(ns+".networkName", net)
			}
		case "custom":
			w.set(ns+".connectionType", "custom")
			if net != "" {
				w.set(ns+".vnet", net)
			}
		default:
			if net != "" {
				w.set(ns+".networkName", net)
			} else {
				w.set(ns+".connectionType", "bridged")
			}
		}
		switch {
		case strings.HasPrefix(n.MAC, "00:50:56:"):
			// VMware's range for static addresses.
			w.set(ns+".addressType", "static")
			w.set(ns+".address", n.MAC)
		case n.MAC != "":
			// Outside it VMware refuses a static address, but keeps a
			// generated one as long as uuid.bios does not change.
			w.set(ns+".addressType", "generated")
			w.set(ns+".generatedAddress", n.MAC)
			w.set(ns+".generatedAddressOffset", "0")
		default:
			w.set(ns+".addressType", "generated")
		}
	}
	n := 0
	for i, sp := range m.Serials {
		if mp.SerialOmit[i] {
			continue
		}
		ns := "serial" + strconv.Itoa(n)
		n++
		w.set(ns+".present", "TRUE")
		w.set(ns+".fileType", serialFileType[sp.Type])
		w.set(ns+".fileName", sp.Path)
	}
	return []byte(strings.Join(w.lines, "\n") + "\n"), warns, nil
}
