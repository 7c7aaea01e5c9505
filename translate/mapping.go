package translate

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/vmfs/vmfs/layouts/bootfacts"
)

// Warning codes of the mapping step. They are stable.
const (
	// WarnPolicy: an unknown --devices policy; preserve is used.
	WarnPolicy = "MAP_POLICY"
	// WarnDevices: the target has no devices of the asked policy and uses
	// its nearest ones, or has one set of devices and ignores the policy.
	WarnDevices = "MAP_DEVICES"
	// WarnDomainType: the libvirt domain type follows this host (no usable
	// KVM: qemu), or an explicit kvm cannot run here.
	WarnDomainType = "MAP_DOMAIN_TYPE"
	// WarnNetRenamed: a source network name was replaced by the target's
	// default network.
	WarnNetRenamed = "MAP_NET_RENAMED"
	// WarnNetMissing: a target network does not exist (or is not active)
	// in this host's libvirt.
	WarnNetMissing = "MAP_NET_MISSING"
	// WarnNetFallback: a NIC whose network is missing on this host uses
	// user-mode networking (--network-fallback user).
	WarnNetFallback = "MAP_NET_FALLBACK"
	// WarnNetUnchecked: --network-fallback was asked but this host's
	// networks could not be listed.
	WarnNetUnchecked = "MAP_NET_UNCHECKED"
	// WarnNetMapUnused: a --network-map entry names no source network.
	WarnNetMapUnused = "MAP_NET_MAP_UNUSED"
	// WarnIgnored: an option the target cannot apply.
	WarnIgnored = "MAP_OPTION_IGNORED"
)

// Device policies of Options.Devices.
const (
	Preserve = "preserve"
	Virtio   = "virtio"
	Compat   = "compat"
)

// Domain types of Options.DomainType.
const (
	DomainKVM  = "kvm"
	DomainQEMU = "qemu"
)

// FallbackUser is Options.NetworkFallback's one value: user-mode
// networking for networks missing on this host.
const FallbackUser = "user"

// Host is what the host that serves the output offers, as probed. The
// zero value says nothing was probed.
type Host struct {
	// KVMChecked says KVM was probed; KVMErr is "" when /dev/kvm is
	// usable, else why not.
	KVMChecked bool
	KVMErr     string
	// NetworksChecked says libvirt was asked for its networks: Networks
	// are the active ones, Inactive the defined but inactive ones.
	// NetworksErr says why they are not known ("" when they are).
	NetworksChecked bool
	Networks        []string
	Inactive        []string
	NetworksErr     string
}

// Caps say what a target does with each translation option; Map honours
// them or warns.
type Caps struct {
	// Target is the target's name, for messages.
	Target string
	// VirtioSubstitute names the devices the target uses for --devices
	// virtio when it has no virtio devices; "" when it has them.
	VirtioSubstitute string
	// FixedDevices says why the target ignores --devices (it has one set
	// of devices); "" when it applies the policy.
	FixedDevices string
	// DefaultNetwork is the network an unmapped NIC is attached to
	// ("default" for libvirt); "" keeps the source's network name.
	DefaultNetwork string
	// HostNetworks: the target's networks are this host's libvirt
	// networks: they are checked, and --network-fallback applies.
	HostNetworks bool
	// NoNetworkNames says why the target cannot name a network
	// (--network-map is ignored); "" when it can.
	NoNetworkNames string
	// UserNetworking: every NIC uses user-mode networking already.
	UserNetworking bool
	// DomainType: the target has a libvirt domain type (or QEMU
	// accelerator). AccelFallback: left unset, the target tries KVM and
	// falls back to TCG by itself.
	DomainType    bool
	AccelFallback bool
	// VMIDStorage: the target creates the machine under a VM id on a
	// named storage (--vmid, --storage apply).
	VMIDStorage bool
	// OneFilePerDisk says why the target's descriptor names each disk by
	// one file (an OVF References entry per disk), so an image variant
	// that splits a disk over several files cannot be used; "" when a
	// disk may be several files.
	OneFilePerDisk string
	// Hardware is the virtual hardware the target offers: Map places the
	// machine's devices on it.
	Hardware Hardware
	// Kubernetes: the target creates the machine in a Kubernetes cluster
	// (--export-url, --cert-configmap, --token-secret, --namespace,
	// --storage-class and --upload apply).
	Kubernetes bool
}

// Mapping is one machine mapped onto one target: the translation options
// resolved and every device placed on the target's hardware, with every
// warning raised once, here. The emitter writes it.
type Mapping struct {
	// Devices is the device policy: preserve, virtio or compat.
	Devices string
	// DomainType is kvm or qemu; "" for a target without one, or one that
	// picks its accelerator itself.
	DomainType string
	// Machine is the machine type: QEMU's "q35" or "pc" (i440fx, when
	// IDE devices are kept); "1" or "2", the Hyper-V generation.
	Machine string
	// Video is the video model.
	Video string
	// Drives are the disks and CD-ROMs placed, disks first; Controllers
	// the disk controllers they need, in the order of first use (Hyper-V:
	// the SCSI controllers to add to those New-VM creates).
	Drives      []Drive
	Controllers []Controller
	// BootDisk is the index of the disk the firmware boots first, where
	// the target names one (Hyper-V); -1 for none.
	BootDisk int
	// MemoryMiB is the memory where the target rounds it (Hyper-V), 0
	// otherwise.
	MemoryMiB int64
	// SecureBootTemplate is the secure boot template of a target that
	// names one (Hyper-V), "" otherwise.
	SecureBootTemplate string
	// NICs, one per Machine.NICs.
	NICs []NICMap
	// SerialOmit, one per Machine.Serials where the target places them:
	// the port is left out.
	SerialOmit []bool
	Warnings   []Warning
}

// NICMap is where one NIC is attached.
type NICMap struct {
	// Network is the target network: the --network-map name, the
	// target's default network, or the source's.
	Network string
	// Mapped says Network comes from --network-map.
	Mapped bool
	// User: user-mode networking (the network is missing on this host
	// and --network-fallback user was given).
	User bool
	// Model is the target's NIC model; Omit: the NIC has no place on the
	// target and is left out.
	Model string
	Omit  bool
	// MAC is the address in the target's form where the target rewrites
	// it (Hyper-V: AABBCCDDEEFF); "" otherwise, or when it is malformed.
	MAC string
}

// Said is mp's warnings: none for a nil Mapping (Map failed on an
// option), those raised before the failure when Map failed placing a
// device.
func (mp *Mapping) Said() []Warning {
	if mp == nil {
		return nil
	}
	return mp.Warnings
}

func (mp *Mapping) warn(code, format string, args ...any) {
	mp.Warnings = append(mp.Warnings, Warning{Code: code, Message: fmt.Sprintf(format, args...)})
}

// Map maps m, with its disks at disks (in the order of m.Disks), onto a
// target with caps: it resolves opts and places every device on
// caps.Hardware. It fails on an option value that has no meaning (a
// domain type other than kvm or qemu, a network fallback other than
// user) and on a machine the hardware cannot hold; the Mapping returned
// with a placement error holds the warnings raised before it.
func Map(m *Machine, disks []TargetDisk, opts Options, caps Caps) (*Mapping, error) {
	mp := &Mapping{BootDisk: -1}
	name := caps.Target
	if name == "" {
		name = "this"
	}

	switch p := strings.ToLower(opts.Devices); p {
	case "":
		mp.Devices = Preserve
	case Preserve, Virtio, Compat:
		mp.Devices = p
	default:
		mp.warn(WarnPolicy, "unknown device policy %q: preserve used", opts.Devices)
		mp.Devices = Preserve
	}
	switch {
	case mp.Devices == Preserve:
	case caps.FixedDevices != "":
		mp.warn(WarnDevices, "--devices %s has no effect on the %s target: %s", mp.Devices, name, caps.FixedDevices)
	case mp.Devices == Virtio && caps.VirtioSubstitute != "":
		mp.warn(WarnDevices, "--devices virtio: the %s target has no virtio devices: %s used", name, caps.VirtioSubstitute)
	}

	dt := strings.ToLower(opts.DomainType)
	if dt != "" && dt != DomainKVM && dt != DomainQEMU {
		return nil, fmt.Errorf("domain type %q is not kvm or qemu", opts.DomainType)
	}
	h := opts.Host
	switch {
	case !caps.DomainType:
		if dt != "" {
			mp.warn(WarnIgnored, "--domain-type %s has no effect on the %s target: it has no domain type", dt, name)
		}
	case dt == "" && caps.AccelFallback:
		// The target tries KVM and falls back to TCG itself.
	case dt == "":
		mp.DomainType = DomainKVM
		if h != nil && h.KVMChecked && h.KVMErr != "" {
			mp.DomainType = DomainQEMU
			mp.warn(WarnDomainType, "this host has no usable KVM (%s): domain type qemu (software emulation, slower); --domain-type kvm writes kvm", h.KVMErr)
		}
	default:
		mp.DomainType = dt
		if dt == DomainKVM && h != nil && h.KVMChecked && h.KVMErr != "" {
			mp.warn(WarnDomainType, "--domain-type kvm: this host has no usable KVM (%s): the domain will not start here", h.KVMErr)
		}
	}

	fallback := strings.ToLower(opts.NetworkFallback)
	if fallback != "" && fallback != FallbackUser {
		return nil, fmt.Errorf("network fallback %q is not user", opts.NetworkFallback)
	}
	used := map[string]bool{}
	renamed := map[string]bool{}
	for _, n := range m.NICs {
		used[n.Network] = true
		nm := NICMap{Network: n.Network}
		if v, ok := opts.NetworkMap[n.Network]; ok && v != "" {
			nm.Network, nm.Mapped = v, true
		} else if caps.DefaultNetwork != "" {
			nm.Network = caps.DefaultNetwork
			if n.Network != "" && n.Network != caps.DefaultNetwork && !renamed[n.Network] {
				renamed[n.Network] = true
				mp.warn(WarnNetRenamed, "source network %q becomes %s network %q: name another with --network-map %q", n.Network, name, caps.DefaultNetwork, n.Network+"=NAME")
			}
		}
		mp.NICs = append(mp.NICs, nm)
	}
	var keys []string
	for k := range opts.NetworkMap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !used[k] {
			mp.warn(WarnNetMapUnused, "--network-map %s=%s: no NIC is on a source network %q", k, opts.NetworkMap[k], k)
		} else if caps.NoNetworkNames != "" {
			mp.warn(WarnIgnored, "--network-map %s=%s has no effect on the %s target: %s", k, opts.NetworkMap[k], name, caps.NoNetworkNames)
		}
	}

	switch {
	case caps.HostNetworks:
		mp.checkHostNetworks(h, fallback, name)
	case fallback == "" || caps.UserNetworking:
	default:
		mp.warn(WarnIgnored, "--network-fallback %s has no effect on the %s target: its networks are not this host's libvirt networks", fallback, name)
	}
	if !caps.VMIDStorage {
		if opts.VMID != 0 {
			mp.warn(WarnIgnored, "--vmid %d has no effect on the %s target: it has no VM ids", opts.VMID, name)
		}
		if opts.Storage != "" {
			mp.warn(WarnIgnored, "--storage %s has no effect on the %s target: it names no storage", opts.Storage, name)
		}
	}
	mp.kubernetesIgnored(opts, caps, name)
	if err := mp.place(m, disks, &caps.Hardware); err != nil {
		return mp, err
	}
	return mp, nil
}

// checkHostNetworks checks each NIC's network against this host's
// libvirt, and applies the fallback to the missing ones.
func (mp *Mapping) checkHostNetworks(h *Host, fallback, name string) {
	if h == nil || !h.NetworksChecked || h.NetworksErr != "" {
		if fallback != "" {
			why := "this host was not asked"
			if h != nil && h.NetworksErr != "" {
				why = h.NetworksErr
			}
			mp.warn(WarnNetUnchecked, "--network-fallback %s: the networks were not checked (%s): every NIC keeps its network", fallback, why)
		}
		return
	}
	said := map[string]bool{}
	for i := range mp.NICs {
		n := &mp.NICs[i]
		if slices.Contains(h.Networks, n.Network) {
			continue
		}
		state := "does not exist on this host"
		if slices.Contains(h.Inactive, n.Network) {
			state = "is not active on this host (virsh net-start " + n.Network + ")"
		}
		if fallback == FallbackUser {
			n.User = true
			mp.warn(WarnNetFallback, "NIC %d: %s network %q %s: user-mode networking used (--network-fallback user)", i, name, n.Network, state)
			continue
		}
		if !said[n.Network] {
			said[n.Network] = true
			mp.warn(WarnNetMissing, "%s network %q %s: the machine will not start here; create it, choose another with --network-map, or use --network-fallback user", name, n.Network, state)
		}
	}
}

// WarnFirmwareFromDisk: the descriptor does not state the firmware and
// the boot disk's partition table settles it (UEFI).
const WarnFirmwareFromDisk = "FIRMWARE_FROM_DISK"

// FirmwareFromBoot is the firmware a disk's partition table calls for: a
// GPT with an EFI System Partition and no BIOS boot partition means UEFI,
// anything else BIOS.
func FirmwareFromBoot(b bootfacts.Facts) Firmware {
	if b.Table == "gpt" && b.HasESP && !b.HasBIOSBP {
		return UEFI
	}
	return BIOS
}

// SettleFirmware settles a firmware m's descriptor left unstated from the
// boot disk (the first of disks), by FirmwareFromBoot; UEFI so chosen is
// said in a warning of m.
func SettleFirmware(m *Machine, disks []TargetDisk) {
	if m.Firmware != FirmwareUnknown || len(disks) == 0 {
		return
	}
	m.Firmware = FirmwareFromBoot(disks[0].Boot)
	if m.Firmware == UEFI {
		m.Warn(WarnFirmwareFromDisk, "the descriptor does not state the firmware; the boot disk has an EFI System Partition: UEFI")
	}
}

// VMDKAdapter is the adapter type a VMDK image of disk d declares in its
// descriptor: the source's IDE or SCSI controller (BusLogic, pvscsi, else
// LSI Logic), LSI Logic for any other bus.
func VMDKAdapter(d Disk) string {
	switch d.Bus {
	case BusIDE:
		return "ide"
	case BusSCSI:
		switch d.Controller {
		case "buslogic":
			return "buslogic"
		case "pvscsi":
			return "pvscsi"
		}
		return "lsilogic"
	}
	return "lsilogic"
}
