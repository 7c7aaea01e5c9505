package translate

import (
	"fmt"
	"regexp"
)

// DiskName is how most targets name disk i of m: "<name>-disk<i>", the
// name made safe by FileName.
func DiskName(m *Machine, i int) string {
	return fmt.Sprintf("%s-disk%d", FileName(m.Name), i)
}

// OptionTarget is a Target whose file names depend on the translation
// options (Proxmox names disks by the VM id).
type OptionTarget interface {
	Target
	// WithOptions returns the target as it names files under opts.
	WithOptions(opts Options) Target
}

// WithOptions is t as it names files under opts: t itself unless it is
// an OptionTarget.
func WithOptions(t Target, opts Options) Target {
	if ot, ok := t.(OptionTarget); ok {
		return ot.WithOptions(opts)
	}
	return t
}

// Option is a translation option, named as its flag is without the
// dashes.
type Option string

// The translation options.
const (
	OptDevices         Option = "devices"
	OptNetworkMap      Option = "network-map"
	OptDomainType      Option = "domain-type"
	OptNetworkFallback Option = "network-fallback"
	OptVMID            Option = "vmid"
	OptStorage         Option = "storage"
	OptExportURL       Option = "export-url"
	OptCertConfigMap   Option = "cert-configmap"
	OptTokenSecret     Option = "token-secret"
	OptNamespace       Option = "namespace"
	OptStorageClass    Option = "storage-class"
	OptUpload          Option = "upload"
)

// OptionSpec says what an option is to the targets: its flag, the code
// of the warning the mapping raises for it, and which targets act on it
// (by what their Caps say, the one place a target states it).
type OptionSpec struct {
	Option Option
	// Code is the warning code (or its stem) of the option's mapping.
	Code string
	// Taken says whether a target with caps c acts on the option;
	// another target warns that it ignores it.
	Taken func(c Caps) bool
}

// Flag is the option's command-line flag.
func (s OptionSpec) Flag() string { return "--" + string(s.Option) }

// OptionSpecs lists every translation option, once (a new list each
// call: no caller can change another's).
func OptionSpecs() []OptionSpec {
	return []OptionSpec{
		{Option: OptDevices, Code: "MAP_DEVICES", Taken: func(c Caps) bool { return c.FixedDevices == "" }},
		{Option: OptNetworkMap, Code: "MAP_NET", Taken: func(c Caps) bool { return c.NoNetworkNames == "" }},
		{Option: OptDomainType, Code: "MAP_DOMAIN_TYPE", Taken: func(c Caps) bool { return c.DomainType }},
		{Option: OptNetworkFallback, Code: "MAP_NET_FALLBACK", Taken: func(c Caps) bool { return c.HostNetworks }},
		{Option: OptVMID, Code: WarnIgnored, Taken: func(c Caps) bool { return c.VMIDStorage }},
		{Option: OptStorage, Code: WarnIgnored, Taken: func(c Caps) bool { return c.VMIDStorage }},
		{Option: OptExportURL, Code: WarnIgnored, Taken: func(c Caps) bool { return c.Kubernetes }},
		{Option: OptCertConfigMap, Code: WarnIgnored, Taken: func(c Caps) bool { return c.Kubernetes }},
		{Option: OptTokenSecret, Code: WarnIgnored, Taken: func(c Caps) bool { return c.Kubernetes }},
		{Option: OptNamespace, Code: WarnIgnored, Taken: func(c Caps) bool { return c.Kubernetes }},
		{Option: OptStorageClass, Code: WarnIgnored, Taken: func(c Caps) bool { return c.Kubernetes }},
		{Option: OptUpload, Code: WarnIgnored, Taken: func(c Caps) bool { return c.Kubernetes }},
	}
}

// Takes lists the options a target with caps c acts on, in the order of
// OptionSpecs.
func Takes(c Caps) []Option {
	var out []Option
	for _, s := range OptionSpecs() {
		if s.Taken(c) {
			out = append(out, s.Option)
		}
	}
	return out
}

// Check refuses option values no target knows, in the words of their
// flags: the one check of them (Map falls back, with a warning, for
// callers that skip it).
func (o Options) Check() error {
	switch o.Devices {
	case Preserve, Virtio, Compat:
	default:
		return fmt.Errorf("--devices: %q is not one of %s, %s, %s", o.Devices, Preserve, Virtio, Compat)
	}
	if dt := o.DomainType; dt != "" && dt != DomainKVM && dt != DomainQEMU {
		return fmt.Errorf("--domain-type: %q is not %s or %s", dt, DomainKVM, DomainQEMU)
	}
	if f := o.NetworkFallback; f != "" && f != FallbackUser {
		return fmt.Errorf("--network-fallback: %q is not %s", f, FallbackUser)
	}
	if err := o.CheckVMIDStorage(); err != nil {
		return err
	}
	return o.CheckKubernetes()
}

// CheckVMIDStorage refuses a --vmid out of Proxmox VE's range and a
// --storage that is not a storage name (0 and "" take the defaults).
func (o Options) CheckVMIDStorage() error {
	if o.VMID != 0 && (o.VMID < MinVMID || o.VMID > MaxVMID) {
		return fmt.Errorf("--vmid: %d is not between %d and %d", o.VMID, MinVMID, MaxVMID)
	}
	if o.Storage != "" && !storageID.MatchString(o.Storage) {
		return fmt.Errorf("--storage: %q is not a storage name (a lowercase letter, then lowercase letters, digits, '-', '_' or '.', ending in a letter or digit)", o.Storage)
	}
	return nil
}

// The VM ids a Proxmox VE cluster accepts (pve-docs, qm(1): "VMID"
// ranges over 100..999999999).
const (
	MinVMID = 100
	MaxVMID = 999999999
)

// storageID is the form of a Proxmox VE storage name (pve-storage's
// pve-storage-id format).
var storageID = regexp.MustCompile(`^[a-z][a-z0-9_.-]*[a-z0-9]$`)
