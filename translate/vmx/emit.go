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
	return translate.Caps{Target: "vmware", VirtioSubstitute: "VMware's paravirtual devices (pvscsi disks, vmxnet3 NICs)"}
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
	if len(disks) != len(m.Disks) {
		return nil, nil, fmt.Errorf("vmx: %s: %d target disks for %d source disks", m.Name, len(disks), len(m.Disks))
	}
	mp, err := translate.Map(m, opts, Target{}.Caps())
	if err != nil {
		return nil, nil, fmt.Errorf("vmx: %s: %w", m.Name, err)
	}
	warns := mp.Warnings
	warn := func(code, f string, a ...any) {
		warns = append(warns, translate.Warning{Code: code, Message: fmt.Sprintf(f, a...)})
	}
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

	// Place drives: keep the bus where VMware has it, keep addresses when free.
	type place struct {
		bus  translate.Bus
		ctl  int
		unit int
	}
	used := map[place]bool{}
	ctlModel := map[int]string{} // scsi controller models
	ctlSeen := map[string]bool{}
	limit := map[translate.Bus]int{translate.BusSCSI: 16, translate.BusSATA: 30, translate.BusIDE: 2, translate.BusNVMe: 15}
	ctlLimit := map[translate.Bus]int{translate.BusSCSI: 4, translate.BusSATA: 4, translate.BusIDE: 2, translate.BusNVMe: 4}
	alloc := func(bus translate.Bus, ctl, unit int) (place, bool) {
		p := place{bus, ctl, unit}
		okUnit := unit >= 0 && unit < limit[bus] && !(bus == translate.BusSCSI && unit == 7)
		if okUnit && ctl >= 0 && ctl < ctlLimit[bus] && !used[p] {
			used[p] = true
			return p, true
		}
		for c := 0; c < ctlLimit[bus]; c++ {
			for u := 0; u < limit[bus]; u++ {
				if bus == translate.BusSCSI && u == 7 {
					continue
				}
				q := place{bus, c, u}
				if !used[q] {
					used[q] = true
					return q, true
				}
			}
		}
		return place{}, false
	}
	scsiModel := func(src string) string {
		if mp.Devices == translate.Virtio {
			return "pvscsi"
		}
		switch strings.ToLower(src) {
		case "lsilogic", "lsisas1068", "pvscsi", "buslogic":
			return strings.ToLower(src)
		case "vmpvscsi":
			return "pvscsi"
		}
		return "lsisas1068"
	}
	busFor := func(b translate.Bus, what string) translate.Bus {
		switch mp.Devices {
		case translate.Virtio:
			return translate.BusSCSI
		case translate.Compat:
			return translate.BusSATA
		}
		switch b {
		case translate.BusSCSI, translate.BusSATA, translate.BusIDE, translate.BusNVMe:
			return b
		}
		warn(WarnEmitBus, "%s on the %s bus moves to SATA", what, b)
		return translate.BusSATA
	}
	var devLines [][2]string
	var hddOrder []string
	for i, d := range m.Disks {
		bus := busFor(d.Bus, fmt.Sprintf("disk %d", i))
		p, ok := alloc(bus, d.ControllerIndex, d.Unit)
		if !ok {
			return nil, warns, fmt.Errorf("vmx: %s: no free %s slot for disk %d", m.Name, bus, i)
		}
		if bus == translate.BusSCSI {
			if _, ok := ctlModel[p.ctl]; !ok {
				ctlModel[p.ctl] = scsiModel(d.Controller)
			}
		}
		ns := fmt.Sprintf("%s%d:%d", bus, p.ctl, p.unit)
		ctlSeen[fmt.Sprintf("%s%d", bus, p.ctl)] = true
		hddOrder = append(hddOrder, ns)
		f := strings.ToLower(disks[i].Format)
		if f != "" && f != "vmdk" {
			warn(WarnEmitFormat, "disk %d is a %s image: VMware opens only VMDK", i, f)
		}
		devLines = append(devLines, [2]string{ns + ".present", "TRUE"}, [2]string{ns + ".fileName", disks[i].Path})
		if bus == translate.BusSCSI {
			devLines = append(devLines, [2]string{ns + ".deviceType", "scsi-hardDisk"})
		}
		if d.ReadOnly {
			devLines = append(devLines, [2]string{ns + ".mode", "independent-nonpersistent"})
		}
	}
	for i, c := range m.CDROMs {
		bus := busFor(c.Bus, fmt.Sprintf("CD-ROM %d", i))
		if mp.Devices != translate.Preserve {
			bus = translate.BusSATA
		}
		if bus == translate.BusNVMe {
			bus = translate.BusSATA
		}
		p, ok := alloc(bus, c.ControllerIndex, c.Unit)
		if !ok {
			warn(WarnEmitUnits, "no free %s slot for CD-ROM %d: left out", bus, i)
			continue
		}
		if bus == translate.BusSCSI {
			if _, ok := ctlModel[p.ctl]; !ok {
				ctlModel[p.ctl] = scsiModel(c.Controller)
			}
		}
		ns := fmt.Sprintf("%s%d:%d", bus, p.ctl, p.unit)
		ctlSeen[fmt.Sprintf("%s%d", bus, p.ctl)] = true
		devLines = append(devLines, [2]string{ns + ".present", "TRUE"})
		if c.Path != "" {
			devLines = append(devLines, [2]string{ns + ".deviceType", "cdrom-image"}, [2]string{ns + ".fileName", c.Path})
		} else {
			devLines = append(devLines, [2]string{ns + ".deviceType", "cdrom-raw"}, [2]string{ns + ".fileName", "auto detect"},
				[2]string{ns + ".startConnected", "FALSE"}, [2]string{ns + ".autodetect", "TRUE"})
		}
	}
	var ctls []string
	for c := range ctlSeen {
		ctls = append(ctls, c)
	}
	sort.Strings(ctls)
	for _, c := range ctls {
		if strings.HasPrefix(c, "ide") {
			continue
		}
		w.set(c+".present", "TRUE")
		if strings.HasPrefix(c, "scsi") {
			n, _ := strconv.Atoi(strings.TrimPrefix(c, "scsi"))
			w.set(c+".virtualDev", ctlModel[n])
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
		model := strings.ToLower(n.Model)
		switch mp.Devices {
		case translate.Virtio:
			model = "vmxnet3"
		case translate.Compat:
			model = "e1000"
		}
		switch model {
		case "e1000", "e1000e", "vmxnet3", "vlance", "vmxnet":
		case "pcnet":
			model = "vlance"
		default:
			if model != "" {
				warn(WarnEmitNIC, "NIC %d model %s is not a VMware adapter: e1000e used", i, n.Model)
			}
			model = "e1000e"
		}
		w.set(ns+".virtualDev", model)
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
	for _, sp := range m.Serials {
		ft := map[string]string{"file": "file", "pipe": "pipe", "dev": "device", "tcp": "network"}[sp.Type]
		if ft == "" || sp.Path == "" {
			warn(WarnEmitSerial, "serial port (%s) has no VMware equivalent: left out", sp.Type)
			continue
		}
		ns := "serial" + strconv.Itoa(n)
		n++
		w.set(ns+".present", "TRUE")
		w.set(ns+".fileType", ft)
		w.set(ns+".fileName", sp.Path)
	}
	return []byte(strings.Join(w.lines, "\n") + "\n"), warns, nil
}
