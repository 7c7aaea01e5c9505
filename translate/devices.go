package translate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Layouts of Hardware.Layout: how a target's controllers take devices.
const (
	// LayoutQEMU: QEMU's q35 or i440fx machine (the libvirt and qemu
	// targets): one AHCI controller filling before the next, SCSI
	// controllers per source controller, IDE at the source's address.
	LayoutQEMU = "qemu"
	// LayoutVMware: VMware's numbered SCSI, SATA, IDE and NVMe
	// controllers (the vmware and ovf targets), the source's address kept
	// where it is free.
	LayoutVMware = "vmware"
	// LayoutVirtualBox: VirtualBox's named storage controllers.
	LayoutVirtualBox = "virtualbox"
	// LayoutHyperV: a Hyper-V machine of Generation 1 (IDE and SCSI) or
	// 2 (SCSI only), chosen by the firmware.
	LayoutHyperV = "hyperv"
)

// Hardware is the virtual hardware a target offers, declared by the
// target as data: the buses and controller models its disks and CD-ROMs
// can sit on, its NIC models, its video, the image formats it opens. Map
// places the machine's devices on it and raises every warning of that
// placement, once.
type Hardware struct {
	// Layout says how controllers take devices; "" places none (Map
	// resolves the options only).
	Layout string
	// Disks and CDROMs map a source bus and controller model to the
	// target's under --devices preserve; the first rule that matches
	// applies.
	Disks, CDROMs []BusRule
	// VirtioDisk and CompatDisk place every disk under --devices virtio
	// and compat; VirtioCDROM and CompatCDROM every CD-ROM.
	VirtioDisk, CompatDisk, VirtioCDROM, CompatCDROM BusRule
	// NICs map a source NIC model (lowercase) to the target's; the first
	// rule that matches applies. VirtioNIC and CompatNIC are the models
	// of the other policies.
	NICs                 []ModelRule
	VirtioNIC, CompatNIC string
	// Video is the video model; VirtioVideo under --devices virtio.
	Video, VirtioVideo string
	// Formats are the image formats the target opens (lowercase); none:
	// any. FormatCode and FormatSay warn of a disk in another format
	// ({i}: the disk's index, {format}: its format). LayoutVirtualBox and
	// LayoutHyperV have their own format rules.
	Formats    []string
	FormatCode string
	FormatSay  string
	// UnitsCode warns of a CD-ROM left out because its controllers are
	// full.
	UnitsCode string
	// CDROMImagesCode and CDROMImagesSay, when set, warn of a CD-ROM
	// whose image the target leaves out ({i}: its index, {path}: the
	// image).
	CDROMImagesCode, CDROMImagesSay string
	// SerialTypes are the serial port types the target keeps (a port
	// needs a path too); SerialCode and SerialSay warn of each port left
	// out ({type}), or of all at once ({n}: how many) when SerialOnce.
	// LayoutQEMU (a pty console) and LayoutHyperV (COM1 and COM2 as
	// named pipes) have their own rules.
	SerialTypes           []string
	SerialCode, SerialSay string
	SerialOnce            bool
	// Kinds are the controllers the target names, by Model, with their
	// ports (LayoutVirtualBox); MaxControllers bounds how many a machine
	// has.
	Kinds          []ControllerKind
	MaxControllers int
	// MaxNICs bounds the NICs; NICsCode and NICsSay warn of those left
	// out ({i}: the first one).
	MaxNICs           int
	NICsCode, NICsSay string
}

// ControllerKind is a controller model a target names, with its limits.
type ControllerKind struct {
	Model string
	// Name is the controller's name ("SATA", "IDE" ...).
	Name string
	// Ports per controller, Devices per port (IDE: 2, a master and a
	// slave).
	Ports, Devices int
}

// BusRule maps a source bus and controller model to a target's bus and
// controller model.
type BusRule struct {
	// Bus is the source bus; "" matches any.
	Bus Bus
	// Models are source controller models, lowercase ("" for none
	// stated); nil matches any.
	Models []string
	// To is the target bus, Model the target's controller model ("" for
	// none).
	To    Bus
	Model string
	// Code and Say are the warning raised when the rule applies; "" for
	// none. In Say, {what} is the device ("disk 0", "CD-ROM 1"), {ctl}
	// the source controller model, {bus} the source bus and {bus?} the
	// same or "unknown".
	Code, Say string
}

// ModelRule maps source NIC models to a target's.
type ModelRule struct {
	// Models are source models, lowercase ("" for none stated); nil
	// matches any.
	Models []string
	// To is the target's model; "" keeps the source's, lowercased.
	To string
	// Code and Say warn when the rule applies ({i}: the NIC's index,
	// {model}: the source model as written).
	Code, Say string
}

// Drive is a disk or CD-ROM as the target gets it.
type Drive struct {
	CDROM bool
	// Index is the index into Machine.Disks or Machine.CDROMs.
	Index int
	// Path is the image ("" for an empty CD-ROM); Format its format as
	// the target names it.
	Path   string
	Format string
	// Bus is the target bus, Model the controller model it asked for.
	Bus   Bus
	Model string
	// Dev is the target's device name where it has one (libvirt's sda,
	// hdc, vda ...).
	Dev string
	// Controller is the index of the drive's controller: into
	// Mapping.Controllers for LayoutVirtualBox, the controller's number
	// on its bus otherwise. AddrBus and Unit address the drive on it
	// (VirtualBox: Unit is the port, AddrBus the device on the port).
	Controller int
	AddrBus    int
	Unit       int
	// Boot is the boot order, 0 for none.
	Boot     int
	ReadOnly bool
	// Local is a CD-ROM image's path relative to the directory of the
	// disk images when it lies inside it (LayoutHyperV), "" otherwise.
	Local string
	// Omit: the drive has no place on the target and is left out.
	Omit bool
}

// Controller is a disk controller as the target gets it, in the order of
// first use.
type Controller struct {
	Bus   Bus
	Index int
	// Model is the target's controller model ("lsilogic", "VirtualSCSI",
	// "AHCI" ...), "" where the bus has one.
	Model string
	// Name and Ports, for targets that name controllers and count their
	// ports (VirtualBox).
	Name  string
	Ports int
}

func (mp *Mapping) say(code, say string, kv ...string) {
	if code == "" {
		return
	}
	mp.Warnings = append(mp.Warnings, Warning{Code: code, Message: strings.NewReplacer(kv...).Replace(say)})
}

// apply is r with its warning raised for the device what.
func (mp *Mapping) apply(r BusRule, what string, bus Bus, ctl string) (Bus, string) {
	mp.say(r.Code, r.Say, "{what}", what, "{ctl}", ctl, "{bus}", string(bus), "{bus?}", orUnknown(string(bus)))
	return r.To, r.Model
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// busFor places a device of the given source bus and controller by the
// policy: the first of rules that matches under preserve (none: the
// source's bus, no model), virtio or compat otherwise.
func (mp *Mapping) busFor(rules []BusRule, virtio, compat BusRule, what string, bus Bus, ctl string) (Bus, string) {
	switch mp.Devices {
	case Virtio:
		return mp.apply(virtio, what, bus, ctl)
	case Compat:
		return mp.apply(compat, what, bus, ctl)
	}
	lc := strings.ToLower(ctl)
	for _, r := range rules {
		if (r.Bus == "" || r.Bus == bus) && (r.Models == nil || slices.Contains(r.Models, lc)) {
			return mp.apply(r, what, bus, ctl)
		}
	}
	return bus, ""
}

// nicModel maps the model of NIC i by the policy.
func (mp *Mapping) nicModel(hw *Hardware, i int, model string) string {
	switch mp.Devices {
	case Virtio:
		return hw.VirtioNIC
	case Compat:
		return hw.CompatNIC
	}
	lc := strings.ToLower(model)
	for _, r := range hw.NICs {
		if r.Models == nil || slices.Contains(r.Models, lc) {
			mp.say(r.Code, r.Say, "{i}", strconv.Itoa(i), "{model}", model)
			if r.To == "" {
				return lc
			}
			return r.To
		}
	}
	return model
}

// video is the target's video model under the policy.
func (mp *Mapping) video(hw *Hardware) string {
	if mp.Devices == Virtio && hw.VirtioVideo != "" {
		return hw.VirtioVideo
	}
	return hw.Video
}

// formatWarn warns of disk i in a format the target does not open.
func (mp *Mapping) formatWarn(hw *Hardware, i int, format string) {
	f := strings.ToLower(format)
	if f == "" || len(hw.Formats) == 0 || slices.Contains(hw.Formats, f) {
		return
	}
	mp.say(hw.FormatCode, hw.FormatSay, "{i}", strconv.Itoa(i), "{format}", f)
}

// place maps m's devices onto hw.
func (mp *Mapping) place(m *Machine, disks []TargetDisk, hw *Hardware) error {
	mp.Video = mp.video(hw)
	switch hw.Layout {
	case "":
		return nil
	case LayoutQEMU:
		return mp.placeQEMU(m, disks, hw)
	case LayoutVMware:
		return mp.placeVMware(m, disks, hw)
	case LayoutVirtualBox:
		return mp.placeVirtualBox(m, disks, hw)
	case LayoutHyperV:
		return mp.placeHyperV(m, disks, hw)
	}
	return fmt.Errorf("unknown device layout %q", hw.Layout)
}
