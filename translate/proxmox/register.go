package proxmox

import (
	"fmt"

	"github.com/vmfs/vmfs/translate"
)

// Usage, Descriptors, DiskName and Group complete the registration of the
// target (its Name, DefaultFormat and Caps stand beside Emit).

func (Target) Usage() string {
	return "a Proxmox VE qemu-server config and a qm script that imports the disks"
}

func (Target) Descriptors() []string { return []string{".conf", "-import.sh"} }

// DiskName is Proxmox's name of disk i, vm-<vmid>-disk-<N>, the VM id
// the one WithOptions gave (DefaultVMID for the registered value).
func (t Target) DiskName(_ *translate.Machine, i int) string {
	return fmt.Sprintf("vm-%d-disk-%d", t.vmid(), i)
}

// WithOptions is the target naming disks by opts.VMID.
func (Target) WithOptions(opts translate.Options) translate.Target {
	return Target{VMID: opts.VMID}
}

func (t Target) vmid() int {
	if t.VMID == 0 {
		return DefaultVMID
	}
	return t.VMID
}

func (Target) Group() string { return "" }
