package translate

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Warning codes of Hyper-V's device mapping. They are stable.
const (
	// WarnHyperVDiskFormat: a disk is in a format Hyper-V cannot attach
	// (not vhdx or vhd), or a VHD on a Generation 2 machine, which needs
	// VHDX.
	WarnHyperVDiskFormat = "HYPERV_DISK_FORMAT"
	// WarnHyperVNIC: a source NIC model becomes a synthetic Hyper-V
	// adapter.
	WarnHyperVNIC = "HYPERV_NIC"
	// WarnHyperVDrivers: a guest not known to be Windows must have the
	// Hyper-V storage (and VMBus) drivers to find its disks on SCSI.
	WarnHyperVDrivers = "HYPERV_DRIVERS"
	// WarnHyperVCDROM: a CD-ROM could not be attached, or its image is not
	// part of the output.
	WarnHyperVCDROM = "HYPERV_CDROM"
	// WarnHyperVSerial: serial ports past COM2 are dropped; COM ports
	// become named pipes.
	WarnHyperVSerial = "HYPERV_SERIAL"
	// WarnHyperVMemory: the memory size was rounded up to Hyper-V's 2 MiB
	// unit.
	WarnHyperVMemory = "HYPERV_MEMORY"
	// WarnHyperVFirmware: the firmware was not stated and the boot disk
	// looks UEFI-only, yet Generation 1 (BIOS) was chosen.
	WarnHyperVFirmware = "HYPERV_FIRMWARE"
	// WarnHyperVMAC: a source MAC address is malformed; Hyper-V assigns
	// one.
	WarnHyperVMAC = "HYPERV_MAC"
)

// Hyper-V limits.
const (
	hypervIDESlots      = 4  // two IDE controllers, two locations each (Gen 1)
	hypervSCSILocations = 64 // locations per SCSI controller
	hypervSCSIMax       = 4  // SCSI controllers per machine
	hypervCOMPorts      = 2  // COM1 and COM2
	hypervMemoryUnitMiB = 2  // startup memory is a multiple of 2 MiB
)

// Secure boot templates of a Generation 2 machine.
const (
	SecureBootWindows = "MicrosoftWindows"
	SecureBootUEFICA  = "MicrosoftUEFICertificateAuthority"
)

// hypervIDEOrder is the order in which Generation 1 disks take IDE slots;
// a CD-ROM, when the machine has one, gets 1:0 (where Hyper-V puts its
// DVD drive), so the disks skip it.
var hypervIDEOrder = [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}}

// placeHyperV places m's devices on a Hyper-V machine: Generation 2 (all
// on SCSI) for UEFI, else Generation 1 (the boot disk and as many as fit
// on IDE, one IDE slot kept for a DVD drive, the rest on SCSI).
// Controllers are the SCSI controllers to add to those New-VM creates.
func (mp *Mapping) placeHyperV(m *Machine, disks []TargetDisk, hw *Hardware) error {
	if m.CPUs <= 0 || m.MemoryMiB <= 0 {
		return fmt.Errorf("machine has %d CPUs and %d MiB of memory", m.CPUs, m.MemoryMiB)
	}
	if len(disks) != len(m.Disks) {
		return fmt.Errorf("%d target disks for %d machine disks", len(disks), len(m.Disks))
	}
	gen := 1
	if m.Firmware == UEFI {
		gen = 2
	}
	mp.Machine = strconv.Itoa(gen)
	mp.BootDisk = hypervBootDisk(m, disks)
	for i, d := range disks {
		mp.Drives = append(mp.Drives, Drive{Index: i, Path: d.Path, Format: d.Format, ReadOnly: m.Disks[i].ReadOnly, Boot: m.Disks[i].BootOrder})
	}
	for i, c := range m.CDROMs {
		mp.Drives = append(mp.Drives, Drive{CDROM: true, Index: i, Path: c.Path, ReadOnly: true, Boot: c.BootOrder, Omit: true})
	}
	cds := mp.Drives[len(disks):]
	scsiUsed := 0
	nextSCSI := func(d *Drive) bool {
		if scsiUsed >= hypervSCSIMax*hypervSCSILocations {
			return false
		}
		d.Bus, d.Controller, d.Unit = BusSCSI, scsiUsed/hypervSCSILocations, scsiUsed%hypervSCSILocations
		scsiUsed++
		return true
	}
	var order []int // disks, boot disk first
	if mp.BootDisk >= 0 {
		order = append(order, mp.BootDisk)
	}
	for i := range disks {
		if i != mp.BootDisk {
			order = append(order, i)
		}
	}
	first := 1 // the first SCSI controller to add
	if gen == 2 {
		for _, i := range order {
			if !nextSCSI(&mp.Drives[i]) {
				return fmt.Errorf("%d disks and CD-ROMs do not fit on %d SCSI controllers", len(disks)+len(m.CDROMs), hypervSCSIMax)
			}
		}
		for i := range cds {
			if !nextSCSI(&cds[i]) {
				return fmt.Errorf("%d disks and CD-ROMs do not fit on %d SCSI controllers", len(disks)+len(m.CDROMs), hypervSCSIMax)
			}
			cds[i].Omit = false
		}
	} else {
		// Generation 1: DVD drives attach to IDE only; SCSI cannot boot.
		first = 0
		reserved := [2]int{1, 0}
		free := map[[2]int]bool{}
		for _, s := range hypervIDEOrder {
			free[s] = true
		}
		diskIDE := hypervIDESlots
		if len(m.CDROMs) > 0 {
			diskIDE--
		}
		used := 0
		for _, i := range order {
			if used < diskIDE {
				for _, s := range hypervIDEOrder {
					if free[s] && (len(m.CDROMs) == 0 || s != reserved) {
						d := &mp.Drives[i]
						d.Bus, d.Controller, d.Unit = BusIDE, s[0], s[1]
						free[s] = false
						break
					}
				}
				used++
				continue
			}
			if !nextSCSI(&mp.Drives[i]) {
				return fmt.Errorf("%d disks do not fit on IDE and %d SCSI controllers", len(disks), hypervSCSIMax)
			}
		}
		for i := range cds {
			for _, s := range append([][2]int{reserved}, hypervIDEOrder...) {
				if free[s] {
					cds[i].Bus, cds[i].Controller, cds[i].Unit, cds[i].Omit = BusIDE, s[0], s[1], false
					free[s] = false
					break
				}
			}
		}
	}
	if scsiUsed > 0 {
		for c := first; c < (scsiUsed+hypervSCSILocations-1)/hypervSCSILocations; c++ {
			mp.Controllers = append(mp.Controllers, Controller{Bus: BusSCSI, Index: c})
		}
	}

	mp.MemoryMiB = m.MemoryMiB
	if r := mp.MemoryMiB % hypervMemoryUnitMiB; r != 0 {
		mp.MemoryMiB += hypervMemoryUnitMiB - r
		mp.warn(WarnHyperVMemory, "memory of %d MiB rounded up to %d MiB: Hyper-V assigns memory in units of %d MiB", m.MemoryMiB, mp.MemoryMiB, hypervMemoryUnitMiB)
	}
	if m.Firmware == FirmwareUnknown && mp.BootDisk >= 0 {
		if b := disks[mp.BootDisk].Boot; b.HasESP && !b.HasBIOSBP {
			mp.warn(WarnHyperVFirmware, "the source does not state its firmware and the boot disk has an EFI System Partition but no BIOS boot partition: Generation 1 (BIOS) was chosen and may not boot; change -Generation 1 to 2 in the script if the guest boots with UEFI")
		}
	}
	for i, d := range disks {
		switch f := strings.ToLower(d.Format); {
		case f != "vhdx" && f != "vhd":
			mp.warn(WarnHyperVDiskFormat, "disk %d (%s) is %s, which Hyper-V cannot attach: use --format vhdx", i, Comment(filepath.Base(d.Path)), Comment(d.Format))
		case f == "vhd" && gen == 2:
			mp.warn(WarnHyperVDiskFormat, "disk %d (%s) is a VHD, which a Generation 2 machine cannot attach: use --format vhdx", i, Comment(filepath.Base(d.Path)))
		}
	}
	windows := hypervWindows(m)
	anySCSI := false
	for _, d := range mp.Drives[:len(disks)] {
		anySCSI = anySCSI || d.Bus == BusSCSI
	}
	if !windows && anySCSI {
		mp.warn(WarnHyperVDrivers, "the guest is not known to be Windows and its disks are on Hyper-V's synthetic SCSI controller: the guest needs the Hyper-V drivers (hv_vmbus, hv_storvsc; hv_netvsc for the network) in its kernel or initramfs before the move")
	}
	for i, c := range m.CDROMs {
		if cds[i].Omit {
			mp.warn(WarnHyperVCDROM, "CD-ROM %d (%s) dropped: a Generation 1 machine has DVD drives on IDE only and its %d IDE slots are taken", i, Comment(orEmpty(c.Path)), hypervIDESlots)
		}
	}
	outDir := ""
	if len(disks) > 0 {
		outDir = filepath.Dir(disks[0].Path)
	}
	for i, c := range m.CDROMs {
		if cds[i].Omit || c.Path == "" {
			continue
		}
		if rel, ok := inside(outDir, c.Path); ok {
			cds[i].Local = rel
		} else {
			mp.warn(WarnHyperVCDROM, "CD-ROM %d image %s is not part of the output: copy it to the Hyper-V host and attach it with Set-VMDvdDrive; the script leaves the drive empty when it does not find the file", i, Comment(c.Path))
		}
	}
	for i, n := range m.NICs {
		if !synthetic(n.Model) {
			model := n.Model
			if model == "" {
				model = "unstated"
			}
			mp.warn(WarnHyperVNIC, "NIC %d (source model %s) becomes a synthetic Hyper-V network adapter: the guest needs the Hyper-V network driver (hv_netvsc on Linux; in-box on Windows since Windows Server 2008) and sees a new adapter", i, Comment(model))
		}
		if n.MAC != "" {
			if s, ok := staticMAC(n.MAC); ok {
				mp.NICs[i].MAC = s
			} else {
				mp.warn(WarnHyperVMAC, "NIC %d MAC address %q is malformed: Hyper-V assigns one", i, n.MAC)
			}
		}
	}
	for i := range m.Serials {
		mp.SerialOmit = append(mp.SerialOmit, i >= hypervCOMPorts)
		if i >= hypervCOMPorts {
			mp.warn(WarnHyperVSerial, "serial port %d dropped: Hyper-V has %d COM ports", i, hypervCOMPorts)
		}
	}
	if len(m.Serials) > 0 {
		mp.warn(WarnHyperVSerial, "serial ports become named pipes (\\\\.\\pipe\\%s-com1 ...) on the Hyper-V host", FileName(m.Name))
	}
	if gen == 2 && m.SecureBoot {
		mp.SecureBootTemplate = SecureBootUEFICA
		if windows {
			mp.SecureBootTemplate = SecureBootWindows
		}
	}
	return nil
}

// hypervBootDisk picks the disk to boot: the one with the lowest boot
// order the source states, else the first with a partition table, else
// the first.
func hypervBootDisk(m *Machine, disks []TargetDisk) int {
	if len(disks) == 0 {
		return -1
	}
	best := -1
	for i, d := range m.Disks {
		if d.BootOrder > 0 && (best < 0 || d.BootOrder < m.Disks[best].BootOrder) {
			best = i
		}
	}
	if best >= 0 {
		return best
	}
	for i, d := range disks {
		if d.Boot.Table != "" {
			return i
		}
	}
	return 0
}

func orEmpty(path string) string {
	if path == "" {
		return "empty"
	}
	return path
}

// inside returns path relative to dir when path is inside dir.
func inside(dir, path string) (string, bool) {
	if dir == "" || !filepath.IsAbs(path) {
		return "", false
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// hypervWindows reports whether the guest is Windows, from the libosinfo
// id or the source's own guest OS identifier.
func hypervWindows(m *Machine) bool {
	g := strings.ToLower(m.GuestOS)
	return strings.HasPrefix(m.OSInfo, "http://microsoft.com/win") ||
		strings.HasPrefix(g, "win") || strings.Contains(g, "windows") || strings.HasPrefix(g, "longhorn")
}

// synthetic reports whether a source NIC model already is Hyper-V's
// synthetic adapter.
func synthetic(model string) bool {
	switch strings.ToLower(model) {
	case "netvsc", "hv_netvsc", "hyperv", "hyper-v", "synthetic":
		return true
	}
	return false
}

// staticMAC turns aa:bb:cc:dd:ee:ff into AABBCCDDEEFF, the form Hyper-V's
// -StaticMacAddress takes.
func staticMAC(mac string) (string, bool) {
	s := strings.ToUpper(strings.NewReplacer(":", "", "-", "").Replace(mac))
	if len(s) != 12 {
		return "", false
	}
	if _, err := strconv.ParseUint(s, 16, 64); err != nil {
		return "", false
	}
	return s, true
}

// Comment makes s safe inside a one-line comment of a generated script:
// line breaks (including the Unicode ones) and other control characters
// become spaces.
func Comment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 {
			return ' '
		}
		return r
	}, s)
}
