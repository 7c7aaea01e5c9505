package hyperv

import "github.com/vmfs/vmfs/translate"

// Usage, Descriptors, DiskName and Group complete the registration of the
// target (its Name, DefaultFormat and Caps stand beside Emit).

func (Target) Usage() string { return "a Hyper-V PowerShell script that creates the machine" }

func (Target) Descriptors() []string { return []string{".ps1"} }

func (Target) DiskName(m *translate.Machine, i int) string { return translate.DiskName(m, i) }

func (Target) Group() string { return "" }
