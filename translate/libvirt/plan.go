package libvirt

import "github.com/vmfs/vmfs/translate"

// Warning codes of the device mapping. translate.Map raises them when it
// places a machine on QEMU's hardware (translate.QEMUHardware), which the
// libvirt and qemu targets share. They are stable.
const (
	WarnController = translate.WarnController
	WarnBus        = translate.WarnBus
	WarnNIC        = translate.WarnNIC
	WarnSerial     = translate.WarnSerial
	WarnUnitSpill  = translate.WarnUnitSpill
	WarnPolicy     = translate.WarnPolicy
	WarnSecureIDE  = translate.WarnSecureIDE
	WarnUEFIBoot   = translate.WarnUEFIBoot
)

// Policies of Options.Devices.
const (
	Preserve = translate.Preserve
	Virtio   = translate.Virtio
	Compat   = translate.Compat
)
