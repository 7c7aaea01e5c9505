package vbox

import (
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmfs/vmfs/translate"
)

// Warning codes of the emitter. They are stable.
const (
	WarnEmitController = "VBOX_EMIT_CONTROLLER" // controller VirtualBox lacks: replaced
	WarnEmitBus        = "VBOX_EMIT_BUS"        // disk or CD-ROM moved to another bus
	WarnEmitNIC        = "VBOX_EMIT_NIC"        // NIC model VirtualBox lacks: replaced
	WarnEmitDiskUUID   = "VBOX_EMIT_DISK_UUID"  // the image's UUID is not known
	WarnEmitFormat     = "VBOX_EMIT_FORMAT"     // a disk format VirtualBox does not open
	WarnEmitCDROM      = "VBOX_EMIT_CDROM"      // CD-ROM image path kept as is
	WarnEmitPolicy     = translate.WarnPolicy   // unknown device policy
	WarnEmitSerial     = "VBOX_EMIT_SERIAL"     // serial ports are not written
	WarnEmitUnits      = "VBOX_EMIT_UNITS"      // a controller is full
)

// SettingsVersion is the settings format written (VirtualBox 6.0 and
// later read it).
const SettingsVersion = "1.16-linux"

// Target is the "virtualbox" target: a .vbox whose media registry names
// the disk images next to it.
type Target struct{}

var _ translate.Target = Target{}

func (Target) Name() string          { return "virtualbox" }
func (Target) DefaultFormat() string { return "vdi" }

// Caps: VirtualBox has virtio-scsi and virtio-net; network names are
// its own.
func (Target) Caps() translate.Caps { return translate.Caps{Target: "virtualbox"} }

type xVirtualBox struct {
	XMLName xml.Name `xml:"VirtualBox"`
	Xmlns   string   `xml:"xmlns,attr"`
	Version string   `xml:"version,attr"`
	Machine xMachine `xml:"Machine"`
}

type xMachine struct {
	UUID           string         `xml:"uuid,attr"`
	Name           string         `xml:"name,attr"`
	OSType         string         `xml:"OSType,attr"`
	SnapshotFolder string         `xml:"snapshotFolder,attr"`
	HardDisks      []xHardDisk    `xml:"MediaRegistry>HardDisks>HardDisk"`
	DVDImages      []xImage       `xml:"MediaRegistry>DVDImages>Image,omitempty"`
	Hardware       xHardware      `xml:"Hardware"`
	Controllers    []xStorageCtrl `xml:"StorageControllers>StorageController"`
}

type xHardDisk struct {
	UUID     string `xml:"uuid,attr"`
	Location string `xml:"location,attr"`
	Format   string `xml:"format,attr"`
	Type     string `xml:"type,attr"`
}

type xImage struct {
	UUID     string `xml:"uuid,attr"`
	Location string `xml:"location,attr,omitempty"`
}

type xHardware struct {
	CPU      xCPU       `xml:"CPU"`
	Memory   xMemory    `xml:"Memory"`
	Firmware *xFirmware `xml:"Firmware,omitempty"`
	Boot     []xOrder   `xml:"Boot>Order"`
	Display  xDisplay   `xml:"Display"`
	Adapters []xAdapter `xml:"Network>Adapter"`
}

type xCPU struct {
	Count    int      `xml:"count,attr"`
	PAE      xEnabled `xml:"PAE"`
	LongMode xEnabled `xml:"LongMode"`
}

type xEnabled struct {
	Enabled bool `xml:"enabled,attr"`
}

type xMemory struct {
	RAMSize int64 `xml:"RAMSize,attr"`
}

type xFirmware struct {
	Type string `xml:"type,attr"`
}

type xOrder struct {
	Position int    `xml:"position,attr"`
	Device   string `xml:"device,attr"`
}

type xDisplay struct {
	Controller string `xml:"controller,attr"`
	VRAMSize   int    `xml:"VRAMSize,attr"`
}

type xAdapter struct {
	Slot     int       `xml:"slot,attr"`
	Enabled  bool      `xml:"enabled,attr"`
	MAC      string    `xml:"MACAddress,attr"`
	Type     string    `xml:"type,attr"`
	NAT      *struct{} `xml:"NAT,omitempty"`
	Bridged  *xNamed   `xml:"BridgedInterface,omitempty"`
	HostOnly *xNamed   `xml:"HostOnlyInterface,omitempty"`
	Internal *xNamed   `xml:"InternalNetwork,omitempty"`
	NATNet   *xNamed   `xml:"NATNetwork,omitempty"`
}

type xNamed struct {
	Name string `xml:"name,attr"`
}

type xStorageCtrl struct {
	Name      string      `xml:"name,attr"`
	Type      string      `xml:"type,attr"`
	PortCount int         `xml:"PortCount,attr"`
	HostIO    bool        `xml:"useHostIOCache,attr"`
	Bootable  bool        `xml:"Bootable,attr"`
	Devices   []xAttached `xml:"AttachedDevice"`
}

type xAttached struct {
	Passthrough  string  `xml:"passthrough,attr,omitempty"`
	Type         string  `xml:"type,attr"`
	Hotpluggable bool    `xml:"hotpluggable,attr"`
	Port         int     `xml:"port,attr"`
	Device       int     `xml:"device,attr"`
	Image        *xImage `xml:"Image,omitempty"`
}

// Emit writes <name>.vbox.
func (Target) Emit(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) ([]translate.OutFile, []translate.Warning, error) {
	b, warns, err := Marshal(m, disks, opts)
	if err != nil {
		return nil, warns, err
	}
	return []translate.OutFile{{Name: translate.FileName(m.Name) + ".vbox", Data: b, Mode: 0o644}}, warns, nil
}

// ctlKind is a VirtualBox controller type with its limits.
type ctlKind struct {
	typ     string
	name    string
	ports   int
	devices int // per port (IDE: 2)
}

var kinds = map[string]ctlKind{
	"PIIX3":       {"PIIX3", "IDE", 2, 2},
	"PIIX4":       {"PIIX4", "IDE", 2, 2},
	"ICH6":        {"ICH6", "IDE", 2, 2},
	"AHCI":        {"AHCI", "SATA", 30, 1},
	"LsiLogic":    {"LsiLogic", "SCSI", 16, 1},
	"BusLogic":    {"BusLogic", "SCSI BusLogic", 16, 1},
	"LsiLogicSas": {"LsiLogicSas", "SAS", 255, 1},
	"NVMe":        {"NVMe", "NVMe", 255, 1},
	"VirtioSCSI":  {"VirtioSCSI", "VirtIO", 255, 1},
}

// controllerFor maps a source bus and model under the device policy.
func controllerFor(policy string, bus translate.Bus, model, what string, warn func(string, string, ...any)) string {
	switch policy {
	case "virtio":
		return "VirtioSCSI"
	case "compat":
		return "AHCI"
	}
	switch bus {
	case translate.BusIDE:
		switch strings.ToLower(model) {
		case "piix3":
			return "PIIX3"
		case "ich6":
			return "ICH6"
		}
		return "PIIX4"
	case translate.BusSATA:
		return "AHCI"
	case translate.BusNVMe:
		return "NVMe"
	case translate.BusSCSI:
		switch strings.ToLower(model) {
		case "", "lsilogic":
			return "LsiLogic"
		case "buslogic":
			return "BusLogic"
		case "lsisas1068", "lsisas1078", "lsilogicsas":
			return "LsiLogicSas"
		case "virtio-scsi", "virtio":
			return "VirtioSCSI"
		case "pvscsi", "vmpvscsi":
			warn(WarnEmitController, "%s is on a VMware paravirtual SCSI controller, which VirtualBox lacks: LSI Logic used", what)
			return "LsiLogic"
		}
		warn(WarnEmitController, "%s is on a %s SCSI controller, which VirtualBox lacks: LSI Logic used", what, model)
		return "LsiLogic"
	case translate.BusVirtio:
		warn(WarnEmitBus, "%s is a virtio-blk disk, which VirtualBox lacks: virtio-scsi used", what)
		return "VirtioSCSI"
	}
	warn(WarnEmitBus, "%s on the %s bus moves to SATA", what, bus)
	return "AHCI"
}

// nicType maps a NIC model under the device policy.
func nicType(policy, model string, i int, warn func(string, string, ...any)) string {
	switch policy {
	case "virtio":
		return "virtio"
	case "compat":
		return "82540EM"
	}
	switch strings.ToLower(model) {
	case "e1000", "82540em", "":
		return "82540EM"
	case "82543gc":
		return "82543GC"
	case "82545em":
		return "82545EM"
	case "am79c970a":
		return "Am79C970A"
	case "am79c973", "pcnet", "vlance", "pcnet32":
		return "Am79C973"
	case "virtio":
		return "virtio"
	case "e1000e":
		warn(WarnEmitNIC, "NIC %d is an e1000e, which VirtualBox lacks: Intel 82545EM used", i)
		return "82545EM"
	}
	warn(WarnEmitNIC, "NIC %d model %s is not emulated by VirtualBox: Intel 82540EM used", i, model)
	return "82540EM"
}

// derivedUUID makes a stable UUID from the given parts.
func derivedUUID(parts ...string) string {
	h := sha256.Sum256([]byte("vmfs vbox\x00" + strings.Join(parts, "\x00")))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Marshal generates the .vbox of m with its disks at disks.
func Marshal(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) ([]byte, []translate.Warning, error) {
	if len(disks) != len(m.Disks) {
		return nil, nil, fmt.Errorf("vbox: %s: %d target disks for %d source disks", m.Name, len(disks), len(m.Disks))
	}
	mp, err := translate.Map(m, opts, Target{}.Caps())
	if err != nil {
		return nil, nil, fmt.Errorf("vbox: %s: %w", m.Name, err)
	}
	warns := mp.Warnings
	warn := func(code, f string, a ...any) {
		warns = append(warns, translate.Warning{Code: code, Message: fmt.Sprintf(f, a...)})
	}
	policy := mp.Devices
	name := m.Name
	if name == "" {
		name = "vm"
	}
	uuid := m.UUID
	if _, ok := canonicalUUID(uuid); !ok {
		uuid = derivedUUID("machine", name)
	}
	osType := "Other_64"
	if m.SourceFormat == "vbox" && m.GuestOS != "" {
		osType = m.GuestOS
	} else if m.OSInfo != "" {
		for k, v := range osInfo {
			if v == m.OSInfo && (osType == "Other_64" || k < strings.ToLower(osType)) {
				osType = vboxOSName(k)
			}
		}
	}
	mem := m.MemoryMiB
	if mem <= 0 {
		mem = 1024
	}
	doc := xVirtualBox{Xmlns: "http://www.virtualbox.org/", Version: SettingsVersion}
	mc := &doc.Machine
	mc.UUID, mc.Name, mc.OSType, mc.SnapshotFolder = "{"+uuid+"}", name, osType, "Snapshots"
	mc.Hardware.CPU = xCPU{Count: max(m.CPUs, 1), PAE: xEnabled{true}, LongMode: xEnabled{true}}
	mc.Hardware.Memory.RAMSize = mem
	if m.Firmware == translate.UEFI {
		mc.Hardware.Firmware = &xFirmware{Type: "EFI"}
	}
	mc.Hardware.Display = xDisplay{Controller: "VMSVGA", VRAMSize: 16}
	mc.Hardware.Boot = []xOrder{{1, "HardDisk"}, {2, "DVD"}, {3, "None"}, {4, "None"}}

	type slot struct{ port, dev int }
	type ctl struct {
		x    *xStorageCtrl
		kind ctlKind
		used map[slot]bool
	}
	var ctls []*ctl
	byKey := map[string]*ctl{} // VirtualBox type + source controller index
	place := func(typ string, srcCtl, srcUnit, srcDev int) (*ctl, slot, bool) {
		k := kinds[typ]
		key := fmt.Sprintf("%s/%d", typ, srcCtl)
		if k.devices == 2 {
			key = typ // one IDE controller, two channels
		}
		c := byKey[key]
		if c == nil {
			nm := k.name
			for i := 1; ; i++ {
				clash := false
				for _, o := range ctls {
					if o.x.Name == nm {
						clash = true
					}
				}
				if !clash {
					break
				}
				nm = fmt.Sprintf("%s %d", k.name, i)
			}
			if len(ctls) >= 8 {
				return nil, slot{}, false
			}
			c = &ctl{x: &xStorageCtrl{Name: nm, Type: typ, HostIO: typ == "PIIX3" || typ == "PIIX4" || typ == "ICH6", Bootable: true}, kind: k, used: map[slot]bool{}}
			ctls = append(ctls, c)
			byKey[key] = c
		}
		want := slot{srcUnit, 0}
		if k.devices == 2 {
			want = slot{srcCtl, srcDev}
		}
		if want.port >= 0 && want.port < k.ports && want.dev >= 0 && want.dev < k.devices && !c.used[want] {
			c.used[want] = true
			return c, want, true
		}
		for p := 0; p < k.ports; p++ {
			for d := 0; d < k.devices; d++ {
				if s := (slot{p, d}); !c.used[s] {
					c.used[s] = true
					return c, s, true
				}
			}
		}
		return nil, slot{}, false
	}
	for i, d := range m.Disks {
		typ := controllerFor(policy, d.Bus, d.Controller, fmt.Sprintf("disk %d", i), warn)
		c, s, ok := place(typ, d.ControllerIndex, d.Unit, d.Unit)
		if !ok {
			return nil, warns, fmt.Errorf("vbox: %s: no free %s port for disk %d", m.Name, typ, i)
		}
		du := disks[i].UUID
		if _, ok := canonicalUUID(du); !ok {
			du = derivedUUID("disk", disks[i].Path)
			if strings.EqualFold(disks[i].Format, "vdi") {
				warn(WarnEmitDiskUUID, "disk %d: the UUID in the header of %s is not known: VirtualBox will refuse the medium until the media registry names it", i, filepath.Base(disks[i].Path))
			}
		}
		format := strings.ToUpper(disks[i].Format)
		switch format {
		case "VDI", "VMDK", "VHD":
		case "RAW", "":
			format = "RAW"
			warn(WarnEmitFormat, "disk %d is a raw image: VirtualBox opens raw images only as .img; use --format vdi", i)
		default:
			warn(WarnEmitFormat, "disk %d is a %s image, which VirtualBox does not open: use --format vdi", i, strings.ToLower(format))
		}
		mc.HardDisks = append(mc.HardDisks, xHardDisk{UUID: "{" + du + "}", Location: filepath.Base(disks[i].Path), Format: format, Type: "Normal"})
		c.x.Devices = append(c.x.Devices, xAttached{Type: "HardDisk", Port: s.port, Device: s.dev, Image: &xImage{UUID: "{" + du + "}"}})
	}
	for i, cd := range m.CDROMs {
		typ := "AHCI"
		if policy == "preserve" {
			switch cd.Bus {
			case translate.BusIDE, translate.BusSATA, translate.BusSCSI:
				typ = controllerFor(policy, cd.Bus, cd.Controller, fmt.Sprintf("CD-ROM %d", i), warn)
			default:
				warn(WarnEmitBus, "CD-ROM %d on the %s bus moves to SATA", i, cd.Bus)
			}
		}
		if typ == "VirtioSCSI" || typ == "NVMe" {
			typ = "AHCI"
		}
		c, s, ok := place(typ, cd.ControllerIndex, cd.Unit, cd.Unit)
		if !ok {
			warn(WarnEmitUnits, "no free %s port for CD-ROM %d: left out", typ, i)
			continue
		}
		ad := xAttached{Passthrough: "false", Type: "DVD", Port: s.port, Device: s.dev}
		if cd.Path != "" {
			u := derivedUUID("dvd", cd.Path)
			mc.DVDImages = append(mc.DVDImages, xImage{UUID: "{" + u + "}", Location: cd.Path})
			ad.Image = &xImage{UUID: "{" + u + "}"}
		}
		c.x.Devices = append(c.x.Devices, ad)
	}
	for _, c := range ctls {
		n := 1
		for _, d := range c.x.Devices {
			n = max(n, d.Port+1)
		}
		if c.kind.devices == 2 {
			n = 2
		}
		c.x.PortCount = n
		mc.Controllers = append(mc.Controllers, *c.x)
	}
	for i, n := range m.NICs {
		if i >= 8 {
			warn(WarnEmitNIC, "VirtualBox has 8 network adapters: NIC %d and later are left out", i)
			break
		}
		a := xAdapter{Slot: i, Enabled: true, Type: nicType(policy, n.Model, i, warn)}
		mac := strings.ToUpper(strings.ReplaceAll(n.MAC, ":", ""))
		if len(mac) != 12 {
			// VirtualBox needs a MAC: derive one in its own OUI, stable per machine and slot.
			h := sha256.Sum256([]byte(uuid + "/" + strconv.Itoa(i)))
			mac = fmt.Sprintf("080027%02X%02X%02X", h[0], h[1], h[2])
		}
		a.MAC = mac
		net := mp.NICs[i].Network
		switch {
		case n.Type == "nat" || n.Type == "user" || net == "":
			a.NAT = &struct{}{}
		case n.Type == "hostonly":
			a.HostOnly = &xNamed{net}
		case n.Type == "custom":
			a.Internal = &xNamed{net}
		case n.Type == "network" && m.SourceFormat == "vbox":
			a.NATNet = &xNamed{net}
		default:
			a.Bridged = &xNamed{net}
		}
		mc.Hardware.Adapters = append(mc.Hardware.Adapters, a)
	}
	if len(m.Serials) > 0 {
		warn(WarnEmitSerial, "%d serial port(s) are not written to the .vbox", len(m.Serials))
	}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, warns, fmt.Errorf("vbox: %s: %w", m.Name, err)
	}
	return append([]byte(xml.Header), append(out, '\n')...), warns, nil
}

// vboxOSName restores the capitalisation of an OS type key.
func vboxOSName(k string) string {
	for _, n := range []string{"Windows7_64", "Windows8_64", "Windows81_64", "Windows10_64", "Windows11_64", "Windows2012_64", "Windows2016_64", "Windows2019_64", "Windows2022_64", "Windows2008_64", "Windows2003_64", "WindowsXP", "WindowsVista_64"} {
		if strings.EqualFold(n, k) {
			return n
		}
	}
	return "Other_64"
}
