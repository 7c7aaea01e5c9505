package libvirt

import (
	"fmt"
	"strings"

	"github.com/vmfs/vmfs/translate"
)

// Warning codes of the device mapping. They are stable.
const (
	WarnController = "MAP_CONTROLLER" // source controller QEMU lacks: moved to another bus
	WarnBus        = "MAP_BUS"        // disk or CD-ROM moved to another bus
	WarnNIC        = "MAP_NIC"        // NIC model QEMU lacks: replaced
	WarnSerial     = "MAP_SERIAL"     // serial port turned into a pty console
	WarnUnitSpill  = "MAP_UNIT_SPILL" // a controller's units ran out: another controller added
	WarnPolicy     = translate.WarnPolicy
	WarnSecureIDE  = "MAP_SECUREBOOT_IDE"
	// WarnUEFIBoot: the boot disk of a UEFI machine sits on a SCSI
	// controller the distributions' OVMF cannot boot from (LSI, pvscsi,
	// LSI SAS): moved to SATA, which every OVMF and every guest drives.
	WarnUEFIBoot = "MAP_UEFI_BOOT_BUS"
)

// Policies of Options.Devices.
const (
	Preserve = translate.Preserve
	Virtio   = translate.Virtio
	Compat   = translate.Compat
)

// Plan is how a machine's devices map onto a QEMU machine: which buses,
// controllers, unit addresses and device models. The libvirt and qemu
// targets both emit from it, so they agree.
type Plan struct {
	// Machine is the QEMU machine type: "q35", or "pc" (i440fx) when IDE
	// devices are kept.
	Machine     string
	Drives      []Drive
	Controllers []Controller
	NICs        []NIC
	Video       string // "vga", "virtio"
}

// Drive is a disk or CD-ROM placed on a bus.
type Drive struct {
	CDROM  bool
	Index  int    // index into Machine.Disks or Machine.CDROMs
	Path   string // "" for an empty CD-ROM
	Format string
	// Bus is the libvirt bus: "scsi", "sata", "ide", "virtio".
	Bus string
	// Dev is the libvirt target name (sda, hdc, vda ...).
	Dev string
	// Controller, AddrBus and Unit address the drive on its controller
	// (unused for virtio).
	Controller int
	AddrBus    int
	Unit       int
	Boot       int // boot order, 0: none
	ReadOnly   bool
}

// Controller is a disk controller of the plan.
type Controller struct {
	Type  string // "scsi", "sata", "ide"
	Index int
	Model string // libvirt model ("lsilogic", "vmpvscsi", "lsisas1068", "virtio-scsi"), "" for sata/ide
}

// NIC is a network adapter of the plan.
type NIC struct {
	MAC     string
	Model   string // libvirt/QEMU model: e1000, e1000e, vmxnet3, virtio, rtl8139, pcnet
	Network string // target network name
	// User: user-mode networking instead of Network.
	User bool
}

// units per controller.
const (
	scsiUnits = 7
	sataPorts = 6
)

// NewPlan maps m's devices under the policy of opts, as the libvirt
// target does. disks are the images the target names, in the order of
// m.Disks.
func NewPlan(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) (*Plan, []translate.Warning, error) {
	mp, err := translate.Map(m, opts, Target{}.Caps())
	if err != nil {
		return nil, nil, err
	}
	p, warns, err := PlanFor(m, disks, mp)
	return p, append(mp.Warnings, warns...), err
}

// PlanFor maps m's devices as mp decided. The warnings are the device
// mapping's, not mp's.
func PlanFor(m *translate.Machine, disks []translate.TargetDisk, mp *translate.Mapping) (*Plan, []translate.Warning, error) {
	if len(disks) != len(m.Disks) {
		return nil, nil, fmt.Errorf("%d target disks for %d source disks", len(disks), len(m.Disks))
	}
	if len(mp.NICs) != len(m.NICs) {
		return nil, nil, fmt.Errorf("%d mapped NICs for %d NICs", len(mp.NICs), len(m.NICs))
	}
	var warns []translate.Warning
	warn := func(code, f string, a ...any) {
		warns = append(warns, translate.Warning{Code: code, Message: fmt.Sprintf(f, a...)})
	}
	policy := mp.Devices
	p := &Plan{Machine: "q35", Video: "vga"}
	if policy == Virtio {
		p.Video = "virtio"
	}

	// Choose each drive's bus and controller model.
	type want struct {
		d     Drive
		model string // scsi controller model
		srcC  int    // source controller index (kept for IDE)
		srcU  int
	}
	var wants []want
	for i, d := range m.Disks {
		w := want{d: Drive{Index: i, Path: disks[i].Path, Format: QEMUFormat(disks[i]), ReadOnly: d.ReadOnly, Boot: d.BootOrder}, srcC: d.ControllerIndex, srcU: d.Unit}
		w.d.Bus, w.model = diskBus(policy, d.Bus, d.Controller, fmt.Sprintf("disk %d", i), warn)
		wants = append(wants, w)
	}
	for i, c := range m.CDROMs {
		w := want{d: Drive{CDROM: true, Index: i, Path: c.Path, Format: "raw", ReadOnly: true, Boot: c.BootOrder}, srcC: c.ControllerIndex, srcU: c.Unit}
		switch {
		case policy == Preserve && c.Bus == translate.BusIDE:
			w.d.Bus = "ide"
		case policy == Preserve && c.Bus == translate.BusSCSI:
			w.d.Bus, w.model = diskBus(policy, c.Bus, c.Controller, fmt.Sprintf("CD-ROM %d", i), warn)
			if w.d.Bus == "virtio" {
				w.d.Bus = "sata"
			}
		default:
			w.d.Bus = "sata"
		}
		wants = append(wants, w)
	}
	// The distributions' OVMF builds leave out the LSI, pvscsi and LSI SAS
	// drivers: a UEFI machine's boot disk on one of them would not be
	// found, and the firmware would drop to its shell.
	if m.Firmware == translate.UEFI {
		boot := -1
		for i, w := range wants {
			if w.d.CDROM {
				continue
			}
			if boot < 0 || (w.d.Boot > 0 && (wants[boot].d.Boot == 0 || w.d.Boot < wants[boot].d.Boot)) {
				boot = i
			}
		}
		if boot >= 0 && wants[boot].d.Bus == "scsi" {
			switch model := wants[boot].model; model {
			case "lsilogic", "vmpvscsi", "lsisas1068", "lsisas1078":
				warn(WarnUEFIBoot, "boot disk %d is on a %s SCSI controller, which OVMF cannot boot from: moved to SATA (the guest needs its AHCI driver)", wants[boot].d.Index, model)
				wants[boot].d.Bus, wants[boot].model = "sata", ""
			}
		}
	}
	// IDE needs i440fx; secure boot needs q35 (SMM): then IDE moves to SATA.
	for i := range wants {
		if wants[i].d.Bus != "ide" {
			continue
		}
		if m.Firmware == translate.UEFI && m.SecureBoot {
			warn(WarnSecureIDE, "IDE %s moved to SATA: secure boot needs the q35 machine, which has no IDE", what(wants[i].d))
			wants[i].d.Bus = "sata"
			continue
		}
		if wants[i].srcC > 1 || wants[i].srcU > 1 {
			warn(WarnBus, "IDE %s at ide%d:%d has no place on the i440fx IDE controller: moved to SATA", what(wants[i].d), wants[i].srcC, wants[i].srcU)
			wants[i].d.Bus = "sata"
			continue
		}
		p.Machine = "pc"
	}
	// Boot order: source order when stated, else disks first in order, then CD-ROMs.
	stated := false
	for _, w := range wants {
		if w.d.Boot > 0 {
			stated = true
		}
	}
	if !stated {
		for i := range wants {
			wants[i].d.Boot = i + 1
		}
	}

	// Addresses.
	ctlIdx := map[string]int{} // next free controller index per type
	type open struct {
		index int
		used  int
		model string
	}
	current := map[string]*open{} // key: type+model+srcC
	prefixes := map[string]int{}
	usedIDE := map[[2]int]bool{}
	for _, w := range wants {
		d := w.d
		switch d.Bus {
		case "ide":
			d.Controller, d.AddrBus, d.Unit = 0, w.srcC, w.srcU
			if usedIDE[[2]int{w.srcC, w.srcU}] {
				return nil, warns, fmt.Errorf("two IDE devices at ide%d:%d", w.srcC, w.srcU)
			}
			usedIDE[[2]int{w.srcC, w.srcU}] = true
			if _, ok := ctlIdx["ide"]; !ok {
				ctlIdx["ide"] = 1
				p.Controllers = append(p.Controllers, Controller{Type: "ide", Index: 0})
			}
		case "scsi", "sata":
			key := fmt.Sprintf("%s/%s/%d", d.Bus, w.model, w.srcC)
			limit := scsiUnits
			if d.Bus == "sata" {
				key = "sata" // one AHCI controller fills before the next
				limit = sataPorts
			}
			o := current[key]
			if o != nil && o.used >= limit {
				warn(WarnUnitSpill, "%s controller %d is full: another %s controller added", d.Bus, o.index, d.Bus)
				o = nil
			}
			if o == nil {
				o = &open{index: ctlIdx[d.Bus], model: w.model}
				ctlIdx[d.Bus]++
				current[key] = o
				p.Controllers = append(p.Controllers, Controller{Type: d.Bus, Index: o.index, Model: w.model})
			}
			d.Controller, d.AddrBus, d.Unit = o.index, 0, o.used
			o.used++
		}
		prefix := map[string]string{"ide": "hd", "scsi": "sd", "sata": "sd", "virtio": "vd"}[d.Bus]
		if d.Bus == "ide" {
			d.Dev = "hd" + devSuffix(w.srcC*2+w.srcU)
		} else {
			d.Dev = prefix + devSuffix(prefixes[prefix])
			prefixes[prefix]++
		}
		p.Drives = append(p.Drives, d)
	}

	for i, n := range m.NICs {
		model := nicModel(policy, n.Model, i, warn)
		p.NICs = append(p.NICs, NIC{MAC: n.MAC, Model: model, Network: mp.NICs[i].Network, User: mp.NICs[i].User})
	}
	for _, s := range m.Serials {
		if s.Type != "pty" {
			warn(WarnSerial, "serial port (%s %s) becomes a pty console", s.Type, s.Path)
		}
	}
	return p, warns, nil
}

func what(d Drive) string {
	if d.CDROM {
		return fmt.Sprintf("CD-ROM %d", d.Index)
	}
	return fmt.Sprintf("disk %d", d.Index)
}

// devSuffix names the n-th drive: a..z, aa..
func devSuffix(n int) string {
	s := ""
	for n >= 0 {
		s = string(rune('a'+n%26)) + s
		n = n/26 - 1
	}
	return s
}

// diskBus maps a source bus and controller model under a policy to a
// libvirt bus and SCSI controller model.
func diskBus(policy string, bus translate.Bus, ctl, what string, warn func(string, string, ...any)) (string, string) {
	switch policy {
	case Virtio:
		return "virtio", ""
	case Compat:
		return "sata", ""
	}
	switch bus {
	case translate.BusSCSI:
		switch strings.ToLower(ctl) {
		case "", "lsilogic":
			return "scsi", "lsilogic"
		case "pvscsi", "vmpvscsi":
			return "scsi", "vmpvscsi"
		case "lsisas1068", "lsisas1078":
			return "scsi", strings.ToLower(ctl)
		case "virtio-scsi", "virtio":
			return "scsi", "virtio-scsi"
		default:
			warn(WarnController, "%s is on a %s SCSI controller, which QEMU does not emulate: moved to SATA", what, ctl)
			return "sata", ""
		}
	case translate.BusSATA:
		return "sata", ""
	case translate.BusIDE:
		return "ide", ""
	case translate.BusVirtio:
		return "virtio", ""
	case translate.BusNVMe:
		warn(WarnBus, "%s is an NVMe disk: moved to SATA (NVMe disks need libvirt 11.2)", what)
		return "sata", ""
	default:
		warn(WarnBus, "%s is on a %s bus: moved to SATA", what, orUnknown(string(bus)))
		return "sata", ""
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// nicModel maps a source NIC model under a policy.
func nicModel(policy, model string, i int, warn func(string, string, ...any)) string {
	switch policy {
	case Virtio:
		return "virtio"
	case Compat:
		return "e1000e"
	}
	switch m := strings.ToLower(model); m {
	case "e1000", "e1000e", "vmxnet3", "virtio", "rtl8139", "pcnet", "ne2k_pci":
		return m
	case "vlance", "am79c970a", "am79c973", "pcnet32":
		return "pcnet"
	case "":
		return "e1000"
	case "82540em", "82543gc", "82545em":
		return "e1000"
	default:
		warn(WarnNIC, "NIC %d model %s is not emulated by QEMU: e1000 used", i, model)
		return "e1000"
	}
}

// QEMUFormat is QEMU's name for the format of d ("vpc" for VHD), as the
// view found it in the format registry; a disk named without it keeps its
// format's name.
func QEMUFormat(d translate.TargetDisk) string {
	if d.QEMUFormat != "" {
		return d.QEMUFormat
	}
	return d.Format
}
