// Package libvirt writes libvirt domain XML from the neutral machine model
// (the "libvirt" target) and reads domain XML back into it.
//
// The XML is built with libvirt.org/go/libvirtxml structs and marshalled,
// never assembled from strings.
package libvirt

import (
	"encoding/xml"
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/vmfs/vmfs/translate"
)

const libosinfoNS = "http://libosinfo.org/xmlns/libvirt/domain/1.0"

// Target is the libvirt target.
type Target struct{}

var _ translate.Target = Target{}

func (Target) Name() string          { return "libvirt" }
func (Target) DefaultFormat() string { return "qcow2" }

// Caps: NICs on libvirt networks ("default" unless mapped), checked
// against this host's libvirt; a domain type; QEMU's hardware.
func (Target) Caps() translate.Caps {
	return translate.Caps{Target: "libvirt", DefaultNetwork: "default", HostNetworks: true, DomainType: true, Hardware: translate.QEMUHardware()}
}

// Emit writes <name>.xml.
func (Target) Emit(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) ([]translate.OutFile, []translate.Warning, error) {
	dom, warns, err := Domain(m, disks, opts)
	if err != nil {
		return nil, warns, err
	}
	s, err := dom.Marshal()
	if err != nil {
		return nil, warns, fmt.Errorf("libvirt: %s: %w", m.Name, err)
	}
	return []translate.OutFile{{Name: translate.FileName(m.Name) + ".xml", Data: []byte(s + "\n"), Mode: 0o644}}, warns, nil
}

// FileName makes a machine name usable as a file name and libvirt domain
// name: no slashes, no control characters, not empty.
func FileName(name string) string {
	s := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, strings.TrimSpace(name))
	if s == "" || s == "." || s == ".." {
		s = "vm"
	}
	return s
}

func uintp(v uint) *uint { return &v }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Domain builds the libvirt domain of m.
func Domain(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) (*libvirtxml.Domain, []translate.Warning, error) {
	mp, err := translate.Map(m, disks, opts, Target{}.Caps())
	if err != nil {
		return nil, mp.Said(), fmt.Errorf("libvirt: %s: %w", m.Name, err)
	}
	warns := mp.Warnings
	if m.CPUs <= 0 || m.MemoryMiB <= 0 {
		return nil, warns, fmt.Errorf("libvirt: %s: machine has %d CPUs and %d MiB of memory", m.Name, m.CPUs, m.MemoryMiB)
	}
	domType := mp.DomainType
	dom := &libvirtxml.Domain{
		Type:          domType,
		Name:          FileName(m.Name),
		UUID:          m.UUID,
		Memory:        &libvirtxml.DomainMemory{Value: uint(m.MemoryMiB), Unit: "MiB"},
		CurrentMemory: &libvirtxml.DomainCurrentMemory{Value: uint(m.MemoryMiB), Unit: "MiB"},
		VCPU:          &libvirtxml.DomainVCPU{Placement: "static", Value: uint(m.CPUs)},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: mp.Machine, Type: "hvm"},
		},
		Features: &libvirtxml.DomainFeatureList{
			ACPI: &libvirtxml.DomainFeature{},
			APIC: &libvirtxml.DomainFeatureAPIC{},
		},
		Clock:      &libvirtxml.DomainClock{Offset: "utc"},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices:    &libvirtxml.DomainDeviceList{},
	}
	if isWindows(m) {
		dom.Clock.Offset = "localtime"
	}
	if m.CoresPerSocket > 0 && m.CPUs%m.CoresPerSocket == 0 {
		dom.CPU = &libvirtxml.DomainCPU{Topology: &libvirtxml.DomainCPUTopology{
			Sockets: m.CPUs / m.CoresPerSocket, Dies: 1, Cores: m.CoresPerSocket, Threads: 1,
		}}
	}
	if domType == "kvm" {
		if dom.CPU == nil {
			dom.CPU = &libvirtxml.DomainCPU{}
		}
		dom.CPU.Mode = "host-passthrough"
		dom.CPU.Check = "none"
	}
	if m.Firmware == translate.UEFI {
		dom.OS.Firmware = "efi"
		// Firmware auto-selection: libvirt picks the OVMF build (and its
		// variable store template) from the firmware descriptors of the
		// host (/usr/share/qemu/firmware) by the features asked. libvirt
		// 9.0 refuses an explicit <loader> or <nvram template> together
		// with firmware='efi', so none is written.
		if m.SecureBoot {
			dom.Features.SMM = &libvirtxml.DomainFeatureSMM{State: "on"}
		}
		dom.OS.FirmwareInfo = &libvirtxml.DomainOSFirmwareInfo{Features: []libvirtxml.DomainOSFirmwareFeature{
			{Enabled: yesNo(m.SecureBoot), Name: "enrolled-keys"},
			{Enabled: yesNo(m.SecureBoot), Name: "secure-boot"},
		}}
	}
	if m.OSInfo != "" {
		md, err := xml.Marshal(libosinfoMeta{NS: libosinfoNS, OS: libosinfoOS{ID: m.OSInfo}})
		if err != nil {
			return nil, warns, fmt.Errorf("libvirt: %s: %w", m.Name, err)
		}
		dom.Metadata = &libvirtxml.DomainMetadata{XML: string(md)}
	}

	dev := dom.Devices
	for _, c := range mp.Controllers {
		ctl := libvirtxml.DomainController{Type: string(c.Bus), Index: uintp(uint(c.Index)), Model: c.Model}
		dev.Controllers = append(dev.Controllers, ctl)
	}
	for _, d := range mp.Drives {
		disk := libvirtxml.DomainDisk{
			Device: "disk",
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: d.Format},
			Target: &libvirtxml.DomainDiskTarget{Dev: d.Dev, Bus: string(d.Bus)},
		}
		if d.CDROM {
			disk.Device = "cdrom"
			disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
		} else if d.ReadOnly {
			disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
		}
		if d.Path != "" {
			disk.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: d.Path}}
		}
		if d.Bus != translate.BusVirtio {
			disk.Address = &libvirtxml.DomainAddress{Drive: &libvirtxml.DomainAddressDrive{
				Controller: uintp(uint(d.Controller)), Bus: uintp(uint(d.AddrBus)), Target: uintp(0), Unit: uintp(uint(d.Unit)),
			}}
		}
		if d.Boot > 0 {
			disk.Boot = &libvirtxml.DomainDeviceBoot{Order: uint(d.Boot)}
		}
		dev.Disks = append(dev.Disks, disk)
	}
	for i, n := range mp.NICs {
		iface := libvirtxml.DomainInterface{
			Source: &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: n.Network}},
			Model:  &libvirtxml.DomainInterfaceModel{Type: n.Model},
		}
		if n.User {
			iface.Source = &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}}
		}
		if mac := m.NICs[i].MAC; mac != "" {
			iface.MAC = &libvirtxml.DomainInterfaceMAC{Address: mac}
		}
		dev.Interfaces = append(dev.Interfaces, iface)
	}
	dev.Serials = []libvirtxml.DomainSerial{{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainSerialTarget{Port: uintp(0)},
	}}
	dev.Consoles = []libvirtxml.DomainConsole{{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: uintp(0)},
	}}
	dev.Inputs = []libvirtxml.DomainInput{{Type: "tablet", Bus: "usb"}}
	dev.Graphics = []libvirtxml.DomainGraphic{{VNC: &libvirtxml.DomainGraphicVNC{Port: -1, AutoPort: "yes"}}}
	dev.Videos = []libvirtxml.DomainVideo{{Model: libvirtxml.DomainVideoModel{Type: mp.Video}}}
	return dom, warns, nil
}

type libosinfoMeta struct {
	XMLName xml.Name    `xml:"libosinfo:libosinfo"`
	NS      string      `xml:"xmlns:libosinfo,attr"`
	OS      libosinfoOS `xml:"libosinfo:os"`
}

type libosinfoOS struct {
	ID string `xml:"id,attr"`
}

func isWindows(m *translate.Machine) bool {
	return strings.HasPrefix(m.OSInfo, "http://microsoft.com/win/") ||
		strings.HasPrefix(strings.ToLower(m.GuestOS), "win")
}
