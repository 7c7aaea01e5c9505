package libvirt

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/vmfs/vmfs/internal/xmlguard"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
)

// MaxSize bounds the domain XML that Parse reads.
const MaxSize = 4 << 20

// xmlLimits bound a domain XML before it is decoded: real ones hold some
// hundreds of elements, ten levels deep, and decoding costs some KiB per
// element (a <disk/> of 7 bytes becomes a struct of 3 KiB).
var xmlLimits = xmlguard.Limits{Depth: 64, Elements: 10000, Attrs: 50000, TagAttrs: 1000}

// Warning codes of the parser. They are stable.
const (
	WarnDiskSkipped = "LIBVIRT_DISK_SKIPPED" // a disk that is not a local file
	WarnNICNoMAC    = "LIBVIRT_NIC_NO_MAC"
)

// Parse reads the domain XML at path. Whether its disks exist is
// translate.CheckDisks's to say.
func Parse(path string) (*translate.Machine, error) { return ParseIn(path, nil) }

// ParseIn is Parse of a domain XML among env's files (a remote source's
// in its remote tree).
func ParseIn(path string, env *layouts.Env) (*translate.Machine, error) {
	b, err := translate.ReadDescriptorIn(env, path, MaxSize, "a domain XML")
	if err != nil {
		return nil, translate.DescriptorError("libvirt", path, err)
	}
	m, err := ParseBytes(path, b)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ParseBytes parses domain XML b named name. It opens no file.
func ParseBytes(name string, b []byte) (*translate.Machine, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("libvirt: %s: %d bytes is too large for a domain XML (limit %d)", name, len(b), MaxSize)
	}
	if err := xmlguard.Check(b, xmlLimits); err != nil {
		return nil, fmt.Errorf("libvirt: %s: %w", name, err)
	}
	dom, err := decodeOne(b)
	if err != nil {
		return nil, fmt.Errorf("libvirt: %s: %w", name, err)
	}
	m := &translate.Machine{
		Name:         dom.Name,
		UUID:         strings.ToLower(dom.UUID),
		CPUs:         1,
		Firmware:     translate.BIOS,
		Source:       name,
		SourceFormat: "libvirt",
	}
	if m.Name == "" {
		m.Name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	}
	if dom.Memory != nil {
		mib, err := toMiB(dom.Memory.Value, dom.Memory.Unit)
		if err != nil {
			return nil, fmt.Errorf("libvirt: %s: memory: %w", name, err)
		}
		m.MemoryMiB = mib
	}
	if m.MemoryMiB <= 0 {
		return nil, fmt.Errorf("libvirt: %s: domain states no memory", name)
	}
	if dom.VCPU != nil && dom.VCPU.Value > 0 {
		if dom.VCPU.Value > 4096 {
			return nil, fmt.Errorf("libvirt: %s: %d vCPUs is not a CPU count", name, dom.VCPU.Value)
		}
		m.CPUs = int(dom.VCPU.Value)
	}
	if dom.Devices != nil && len(dom.Devices.TPMs) > 0 {
		m.TPM = true
	}
	if dom.CPU != nil && dom.CPU.Topology != nil {
		tp := dom.CPU.Topology
		if dom.VCPU == nil || dom.VCPU.Value == 0 {
			// No <vcpu>: the topology gives the count, as libvirt does.
			n := int64(max(tp.Sockets, 1)) * int64(max(tp.Dies, 1)) * int64(max(tp.Clusters, 1)) * int64(max(tp.Cores, 1)) * int64(max(tp.Threads, 1))
			if n > 4096 || n < 1 {
				return nil, fmt.Errorf("libvirt: %s: CPU topology of %d vCPUs is not a CPU count", name, n)
			}
			m.CPUs = int(n)
		}
		// Per socket as VMware counts it: logical CPUs, threads included.
		if per := max(tp.Cores, 1) * max(tp.Threads, 1) * max(tp.Dies, 1) * max(tp.Clusters, 1); tp.Cores > 0 && per > 0 && per <= m.CPUs && m.CPUs%per == 0 {
			m.CoresPerSocket = per
		}
	}
	if o := dom.OS; o != nil {
		if t := o.Type; t != nil {
			if t.Arch != "" && t.Arch != "x86_64" && t.Arch != "i686" {
				return nil, fmt.Errorf("libvirt: %s: domain %q is a %s machine: only x86 guests are supported", name, m.Name, t.Arch)
			}
			if t.Type != "" && t.Type != "hvm" {
				return nil, fmt.Errorf("libvirt: %s: domain %q has OS type %q: only hardware-virtualized (hvm) guests are supported", name, m.Name, t.Type)
			}
		}
		if o.Firmware == "efi" || (o.Loader != nil && o.Loader.Type == "pflash") ||
			(o.Loader != nil && strings.Contains(strings.ToLower(o.Loader.Path), "ovmf")) {
			m.Firmware = translate.UEFI
		}
		if o.Loader != nil && o.Loader.Secure == "yes" {
			m.SecureBoot = true
		}
		if o.FirmwareInfo != nil {
			for _, f := range o.FirmwareInfo.Features {
				if f.Name == "secure-boot" && f.Enabled == "yes" {
					m.SecureBoot = true
				}
			}
		}
		if m.Firmware != translate.UEFI {
			m.SecureBoot = false
		}
	}
	if dom.Metadata != nil {
		m.OSInfo = osinfoFromMetadata(dom.Metadata.XML)
		m.GuestOS = m.OSInfo
	}
	dir := filepath.Dir(name)
	if dom.Devices != nil {
		models := map[string]string{} // "scsi/0" → model
		for _, c := range dom.Devices.Controllers {
			if c.Index != nil {
				models[fmt.Sprintf("%s/%d", c.Type, *c.Index)] = c.Model
			}
		}
		for i, d := range dom.Devices.Disks {
			var bus translate.Bus
			ctlIdx, unit := 0, i
			if d.Target != nil {
				bus = translate.Bus(d.Target.Bus)
			}
			if d.Address != nil && d.Address.Drive != nil {
				a := d.Address.Drive
				if a.Controller != nil {
					ctlIdx = int(*a.Controller)
				}
				if a.Unit != nil {
					unit = int(*a.Unit)
				}
				if bus == translate.BusIDE && a.Bus != nil {
					ctlIdx = int(*a.Bus)
				}
			}
			ctl := ""
			switch bus {
			case translate.BusSCSI:
				ctl = models[fmt.Sprintf("scsi/%d", ctlIdx)]
				if ctl == "vmpvscsi" {
					ctl = "pvscsi"
				}
			case translate.BusSATA:
				ctl = "ahci"
			case translate.BusIDE:
				ctl = "piix3"
			}
			path := ""
			if d.Source != nil {
				switch {
				case d.Source.File != nil:
					path = d.Source.File.File
				case d.Source.Block != nil:
					path = d.Source.Block.Dev
				}
			}
			if path != "" && !filepath.IsAbs(path) {
				path = filepath.Join(dir, path)
			}
			boot := 0
			if d.Boot != nil {
				boot = int(d.Boot.Order)
			}
			switch d.Device {
			case "cdrom":
				m.CDROMs = append(m.CDROMs, translate.CDROM{Path: path, Bus: bus, Controller: ctl, ControllerIndex: ctlIdx, Unit: unit, BootOrder: boot})
			case "", "disk":
				if path == "" {
					m.Warn(WarnDiskSkipped, "disk %d (%s) is not a local file or block device: skipped", i, diskTarget(d))
					continue
				}
				format := ""
				if d.Driver != nil {
					format = d.Driver.Type
				}
				m.Disks = append(m.Disks, translate.Disk{Path: path, Format: format, Bus: bus, Controller: ctl, ControllerIndex: ctlIdx, Unit: unit, ReadOnly: d.ReadOnly != nil, BootOrder: boot})
			default:
				m.Warn(WarnDiskSkipped, "%s %d is not carried over", d.Device, i)
			}
		}
		for i, n := range dom.Devices.Interfaces {
			nic := translate.NIC{}
			if n.MAC != nil {
				nic.MAC = strings.ToLower(n.MAC.Address)
			}
			if n.Model != nil {
				nic.Model = n.Model.Type
			}
			if s := n.Source; s != nil {
				switch {
				case s.Network != nil:
					nic.Network, nic.Type = s.Network.Network, "network"
				case s.Bridge != nil:
					nic.Network, nic.Type = s.Bridge.Bridge, "bridge"
				case s.User != nil:
					nic.Type = "user"
				case s.Direct != nil:
					nic.Network, nic.Type = s.Direct.Dev, "bridge"
				}
			}
			if nic.MAC == "" {
				m.Warn(WarnNICNoMAC, "NIC %d has no MAC address: the target will generate one", i)
			}
			m.NICs = append(m.NICs, nic)
		}
		for _, s := range dom.Devices.Serials {
			ser := translate.Serial{Type: "pty"}
			if s.Source != nil {
				switch {
				case s.Source.File != nil:
					ser = translate.Serial{Type: "file", Path: s.Source.File.Path}
				case s.Source.Pipe != nil:
					ser = translate.Serial{Type: "pipe", Path: s.Source.Pipe.Path}
				case s.Source.Dev != nil:
					ser = translate.Serial{Type: "dev", Path: s.Source.Dev.Path}
				}
			}
			m.Serials = append(m.Serials, ser)
		}
		if len(dom.Devices.Videos) > 0 && dom.Devices.Videos[0].Model.Type != "" {
			m.Video = dom.Devices.Videos[0].Model.Type
		}
	}
	if len(m.Disks) == 0 {
		return nil, fmt.Errorf("libvirt: %s: domain %q has no disk backed by a local file", name, m.Name)
	}
	return m, nil
}

func diskTarget(d libvirtxml.DomainDisk) string {
	if d.Target != nil {
		return d.Target.Dev
	}
	return "no target"
}

// decodeOne decodes exactly one <domain> document: anything but comments,
// processing instructions and white space after it is an error.
func decodeOne(b []byte) (*libvirtxml.Domain, error) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	var dom libvirtxml.Domain
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil, errors.New("no <domain> element")
		}
		if err != nil {
			return nil, fmt.Errorf("invalid XML: %w", err)
		}
		if d, ok := tok.(xml.Directive); ok && bytes.HasPrefix(bytes.TrimSpace(d), []byte("DOCTYPE")) {
			// libvirt writes no DTD; one here can only declare entities.
			return nil, errors.New("<!DOCTYPE> is refused: entity declarations are not supported")
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "domain" {
				return nil, fmt.Errorf("root element is <%s>, not <domain>", se.Name.Local)
			}
			if err := dec.DecodeElement(&dom, &se); err != nil {
				return nil, fmt.Errorf("invalid domain XML: %w", err)
			}
			break
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return &dom, nil
		}
		if err != nil {
			return nil, fmt.Errorf("invalid XML after </domain>: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return nil, fmt.Errorf("more than one top-level element (<%s> after </domain>)", t.Name.Local)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("text after </domain>")
			}
		}
	}
}

// toMiB converts a libvirt memory amount (default unit KiB) to MiB.
func toMiB(v uint, unit string) (int64, error) {
	mult := map[string]float64{
		"": 1.0 / 1024, "k": 1.0 / 1024, "kib": 1.0 / 1024, "kb": 1000.0 / 1024 / 1024,
		"b": 1.0 / (1 << 20), "bytes": 1.0 / (1 << 20),
		"m": 1, "mib": 1, "mb": 1e6 / (1 << 20),
		"g": 1024, "gib": 1024, "gb": 1e9 / (1 << 20),
		"t": 1 << 20, "tib": 1 << 20, "tb": 1e12 / (1 << 20),
	}
	f, ok := mult[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	mib := float64(v) * f
	if mib > 1<<30 {
		return 0, fmt.Errorf("%d %s is too large", v, unit)
	}
	return int64(mib + 0.5), nil
}

// osinfoFromMetadata finds <libosinfo:os id=".."/> in the metadata.
func osinfoFromMetadata(s string) string {
	dec := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "os" || se.Name.Space != libosinfoNS {
			continue
		}
		for _, a := range se.Attr {
			if a.Name.Local == "id" {
				return a.Value
			}
		}
	}
}
