package proxmox

import "github.com/vmfs/vmfs/translate"

// Usage, Descriptors, DiskName and Group complete the registration of the
// target (its Name, DefaultFormat and Caps stand beside Emit).

func (Target) Usage() string {
	return "a Proxmox VE qemu-server config and a qm script that imports the disks"
}

func (Target) Descriptors() []string { return []string{".conf", "-import.sh"} }

// DiskName is the name most targets give: the disks keep the machine's
// name in the mount, and `qm` names each one vm-<vmid>-disk-<N> as it
// imports it onto the storage (DiskName does not see --vmid).
func (Target) DiskName(m *translate.Machine, i int) string { return translate.DiskName(m, i) }

func (Target) Group() string { return "" }
