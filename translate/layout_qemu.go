package translate

import "fmt"

// Warning codes of the QEMU device mapping (the libvirt and qemu
// targets). They are stable.
const (
	WarnController = "MAP_CONTROLLER" // source controller QEMU lacks: moved to another bus
	WarnBus        = "MAP_BUS"        // disk or CD-ROM moved to another bus
	WarnNIC        = "MAP_NIC"        // NIC model QEMU lacks: replaced
	WarnSerial     = "MAP_SERIAL"     // serial port turned into a pty console
	WarnUnitSpill  = "MAP_UNIT_SPILL" // a controller's units ran out: another controller added
	WarnSecureIDE  = "MAP_SECUREBOOT_IDE"
	// WarnUEFIBoot: the boot disk of a UEFI machine sits on a SCSI
	// controller the distributions' OVMF cannot boot from (LSI, pvscsi,
	// LSI SAS): moved to SATA, which every OVMF and every guest drives.
	WarnUEFIBoot = "MAP_UEFI_BOOT_BUS"
)

// OVMF firmware as Debian's ovmf package installs it: the files its
// /usr/share/qemu/firmware descriptors name, which libvirt's firmware
// auto-selection picks. The qemu target names them directly.
const (
	OVMFCode           = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars           = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	OVMFCodeSecureBoot = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
	OVMFVarsSecureBoot = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

// qemuSCSI are the SCSI controllers QEMU emulates, by source model.
var qemuSCSI = []BusRule{
	{Bus: BusSCSI, Models: []string{"", "lsilogic"}, To: BusSCSI, Model: "lsilogic"},
	{Bus: BusSCSI, Models: []string{"pvscsi", "vmpvscsi"}, To: BusSCSI, Model: "vmpvscsi"},
	{Bus: BusSCSI, Models: []string{"lsisas1068"}, To: BusSCSI, Model: "lsisas1068"},
	{Bus: BusSCSI, Models: []string{"lsisas1078"}, To: BusSCSI, Model: "lsisas1078"},
	{Bus: BusSCSI, Models: []string{"virtio-scsi", "virtio"}, To: BusSCSI, Model: "virtio-scsi"},
	{Bus: BusSCSI, To: BusSATA, Code: WarnController, Say: "{what} is on a {ctl} SCSI controller, which QEMU does not emulate: moved to SATA"},
}

// QEMUHardware is what QEMU's q35 and i440fx machines offer, as libvirt
// names it: the libvirt and qemu targets declare it both, so they build
// the same machine.
func QEMUHardware() Hardware {
	return Hardware{
		Layout: LayoutQEMU,
		Disks: append(append([]BusRule(nil), qemuSCSI...),
			BusRule{Bus: BusSATA, To: BusSATA},
			BusRule{Bus: BusIDE, To: BusIDE},
			BusRule{Bus: BusVirtio, To: BusVirtio},
			BusRule{Bus: BusNVMe, To: BusSATA, Code: WarnBus, Say: "{what} is an NVMe disk: moved to SATA (NVMe disks need libvirt 11.2)"},
			BusRule{To: BusSATA, Code: WarnBus, Say: "{what} is on a {bus?} bus: moved to SATA"},
		),
		CDROMs: append([]BusRule{{Bus: BusIDE, To: BusIDE}}, append(append([]BusRule(nil), qemuSCSI...),
			BusRule{To: BusSATA})...),
		VirtioDisk:  BusRule{To: BusVirtio},
		CompatDisk:  BusRule{To: BusSATA},
		VirtioCDROM: BusRule{To: BusSATA},
		CompatCDROM: BusRule{To: BusSATA},
		NICs: []ModelRule{
			{Models: []string{"e1000"}, To: "e1000"},
			{Models: []string{"e1000e"}, To: "e1000e"},
			{Models: []string{"vmxnet3"}, To: "vmxnet3"},
			{Models: []string{"virtio"}, To: "virtio"},
			{Models: []string{"rtl8139"}, To: "rtl8139"},
			{Models: []string{"pcnet"}, To: "pcnet"},
			{Models: []string{"ne2k_pci"}, To: "ne2k_pci"},
			{Models: []string{"vlance", "am79c970a", "am79c973", "pcnet32"}, To: "pcnet"},
			{Models: []string{"", "82540em", "82543gc", "82545em"}, To: "e1000"},
			{To: "e1000", Code: WarnNIC, Say: "NIC {i} model {model} is not emulated by QEMU: e1000 used"},
		},
		VirtioNIC: "virtio", CompatNIC: "e1000e",
		Video: "vga", VirtioVideo: "virtio",
	}
}

// units per QEMU controller.
const (
	qemuSCSIUnits = 7
	qemuSATAPorts = 6
)

// placeQEMU places m's devices on a QEMU machine: Machine is "q35", or
// "pc" (i440fx) when IDE devices are kept.
func (mp *Mapping) placeQEMU(m *Machine, disks []TargetDisk, hw *Hardware) error {
	if len(disks) != len(m.Disks) {
		return fmt.Errorf("%d target disks for %d source disks", len(disks), len(m.Disks))
	}
	mp.Machine = "q35"
	// Choose each drive's bus and controller model.
	type want struct {
		d    Drive
		srcC int // source controller index (kept for IDE)
		srcU int
	}
	var wants []want
	for i, d := range m.Disks {
		w := want{d: Drive{Index: i, Path: disks[i].Path, Format: QEMUFormat(disks[i]), ReadOnly: d.ReadOnly, Boot: d.BootOrder}, srcC: d.ControllerIndex, srcU: d.Unit}
		w.d.Bus, w.d.Model = mp.busFor(hw.Disks, hw.VirtioDisk, hw.CompatDisk, fmt.Sprintf("disk %d", i), d.Bus, d.Controller)
		wants = append(wants, w)
	}
	for i, c := range m.CDROMs {
		w := want{d: Drive{CDROM: true, Index: i, Path: c.Path, Format: "raw", ReadOnly: true, Boot: c.BootOrder}, srcC: c.ControllerIndex, srcU: c.Unit}
		w.d.Bus, w.d.Model = mp.busFor(hw.CDROMs, hw.VirtioCDROM, hw.CompatCDROM, fmt.Sprintf("CD-ROM %d", i), c.Bus, c.Controller)
		wants = append(wants, w)
	}
	// The distributions' OVMF builds leave out the LSI, pvscsi and LSI SAS
	// drivers: a UEFI machine's boot disk on one of them would not be
	// found, and the firmware would drop to its shell.
	if m.Firmware == UEFI {
		boot := -1
		for i, w := range wants {
			if w.d.CDROM {
				continue
			}
			if boot < 0 || (w.d.Boot > 0 && (wants[boot].d.Boot == 0 || w.d.Boot < wants[boot].d.Boot)) {
				boot = i
			}
		}
		if boot >= 0 && wants[boot].d.Bus == BusSCSI {
			switch model := wants[boot].d.Model; model {
			case "lsilogic", "vmpvscsi", "lsisas1068", "lsisas1078":
				mp.warn(WarnUEFIBoot, "boot disk %d is on a %s SCSI controller, which OVMF cannot boot from: moved to SATA (the guest needs its AHCI driver)", wants[boot].d.Index, model)
				wants[boot].d.Bus, wants[boot].d.Model = BusSATA, ""
			}
		}
	}
	// IDE needs i440fx; secure boot needs q35 (SMM): then IDE moves to SATA.
	for i := range wants {
		if wants[i].d.Bus != BusIDE {
			continue
		}
		if m.Firmware == UEFI && m.SecureBoot {
			mp.warn(WarnSecureIDE, "IDE %s moved to SATA: secure boot needs the q35 machine, which has no IDE", wants[i].d.what())
			wants[i].d.Bus = BusSATA
			continue
		}
		if wants[i].srcC > 1 || wants[i].srcU > 1 {
			mp.warn(WarnBus, "IDE %s at ide%d:%d has no place on the i440fx IDE controller: moved to SATA", wants[i].d.what(), wants[i].srcC, wants[i].srcU)
			wants[i].d.Bus = BusSATA
			continue
		}
		mp.Machine = "pc"
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
	ctlIdx := map[Bus]int{} // next free controller index per bus
	type open struct {
		index int
		used  int
	}
	current := map[string]*open{} // key: bus+model+srcC
	prefixes := map[string]int{}
	usedIDE := map[[2]int]bool{}
	for _, w := range wants {
		d := w.d
		switch d.Bus {
		case BusIDE:
			d.Controller, d.AddrBus, d.Unit = 0, w.srcC, w.srcU
			if usedIDE[[2]int{w.srcC, w.srcU}] {
				return fmt.Errorf("two IDE devices at ide%d:%d", w.srcC, w.srcU)
			}
			usedIDE[[2]int{w.srcC, w.srcU}] = true
			if _, ok := ctlIdx[BusIDE]; !ok {
				ctlIdx[BusIDE] = 1
				mp.Controllers = append(mp.Controllers, Controller{Bus: BusIDE, Index: 0})
			}
		case BusSCSI, BusSATA:
			key := fmt.Sprintf("%s/%s/%d", d.Bus, d.Model, w.srcC)
			limit := qemuSCSIUnits
			if d.Bus == BusSATA {
				key = "sata" // one AHCI controller fills before the next
				limit = qemuSATAPorts
			}
			o := current[key]
			if o != nil && o.used >= limit {
				mp.warn(WarnUnitSpill, "%s controller %d is full: another %s controller added", d.Bus, o.index, d.Bus)
				o = nil
			}
			if o == nil {
				o = &open{index: ctlIdx[d.Bus]}
				ctlIdx[d.Bus]++
				current[key] = o
				mp.Controllers = append(mp.Controllers, Controller{Bus: d.Bus, Index: o.index, Model: d.Model})
			}
			d.Controller, d.AddrBus, d.Unit = o.index, 0, o.used
			o.used++
		}
		prefix := map[Bus]string{BusIDE: "hd", BusSCSI: "sd", BusSATA: "sd", BusVirtio: "vd"}[d.Bus]
		if d.Bus == BusIDE {
			d.Dev = "hd" + devSuffix(w.srcC*2+w.srcU)
		} else {
			d.Dev = prefix + devSuffix(prefixes[prefix])
			prefixes[prefix]++
		}
		mp.Drives = append(mp.Drives, d)
	}

	for i, n := range m.NICs {
		mp.NICs[i].Model = mp.nicModel(hw, i, n.Model)
	}
	for _, s := range m.Serials {
		if s.Type != "pty" {
			mp.warn(WarnSerial, "serial port (%s %s) becomes a pty console", s.Type, s.Path)
		}
	}
	return nil
}

func (d Drive) what() string {
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

// QEMUFormat is QEMU's name for an image format: "vpc" for VHD.
func QEMUFormat(d TargetDisk) string {
	if d.QEMUFormat != "" {
		return d.QEMUFormat
	}
	return d.Format
}
