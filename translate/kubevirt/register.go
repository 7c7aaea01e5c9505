package kubevirt

import "github.com/vmfs/vmfs/translate"

// Usage, Descriptors, DiskName and Group complete the registration of the
// target (its Name, DefaultFormat and Caps stand beside Emit).

func (Target) Usage() string {
	return "a KubeVirt VirtualMachine and one CDI DataVolume per disk, importing it from the vmfs HTTPS export, as YAML for kubectl apply"
}

func (Target) Descriptors() []string { return []string{".yaml"} }

func (Target) DiskName(m *translate.Machine, i int) string { return translate.DiskName(m, i) }

// Group is "": the disks are read by the cluster's importers, over the
// network, not by a hypervisor on this host.
func (Target) Group() string { return "" }
