package vbox

import (
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vmfs/vmfs/translate"
)

// Warning codes of the emitter. They are stable.
const (
	WarnEmitController = "VBOX_EMIT_CONTROLLER"     // controller VirtualBox lacks: replaced
	WarnEmitBus        = "VBOX_EMIT_BUS"            // disk or CD-ROM moved to another bus
	WarnEmitNIC        = "VBOX_EMIT_NIC"            // NIC model VirtualBox lacks: replaced
	WarnEmitDiskUUID   = translate.WarnVBoxDiskUUID // the image's UUID is not known
	WarnEmitFormat     = translate.WarnVBoxFormat   // a disk format VirtualBox does not open
	WarnEmitCDROM      = "VBOX_EMIT_CDROM"          // CD-ROM image path kept as is
	WarnEmitPolicy     = translate.WarnPolicy       // unknown device policy
	WarnEmitSerial     = "VBOX_EMIT_SERIAL"         // serial ports are not written
	WarnEmitUnits      = translate.WarnVBoxUnits    // a controller is full
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
func (Target) Caps() translate.Caps {
	return translate.Caps{Target: "virtualbox", Hardware: Hardware()}
}

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

// ide are VirtualBox's IDE controllers by source model.
var ide = []translate.BusRule{
	{Bus: translate.BusIDE, Models: []string{"piix3"}, To: translate.BusIDE, Model: "PIIX3"},
	{Bus: translate.BusIDE, Models: []string{"ich6"}, To: translate.BusIDE, Model: "ICH6"},
	{Bus: translate.BusIDE, To: translate.BusIDE, Model: "PIIX4"},
}

// scsi are VirtualBox's SCSI controllers by source model, virtio-scsi
// apart.
var scsi = []translate.BusRule{
	{Bus: translate.BusSCSI, Models: []string{"", "lsilogic"}, To: translate.BusSCSI, Model: "LsiLogic"},
	{Bus: translate.BusSCSI, Models: []string{"buslogic"}, To: translate.BusSCSI, Model: "BusLogic"},
	{Bus: translate.BusSCSI, Models: []string{"lsisas1068", "lsisas1078", "lsilogicsas"}, To: translate.BusSCSI, Model: "LsiLogicSas"},
	{Bus: translate.BusSCSI, Models: []string{"pvscsi", "vmpvscsi"}, To: translate.BusSCSI, Model: "LsiLogic", Code: WarnEmitController, Say: "{what} is on a VMware paravirtual SCSI controller, which VirtualBox lacks: LSI Logic used"},
}

var (
	sata      = translate.BusRule{Bus: translate.BusSATA, To: translate.BusSATA, Model: "AHCI"}
	otherSCSI = translate.BusRule{Bus: translate.BusSCSI, To: translate.BusSCSI, Model: "LsiLogic", Code: WarnEmitController, Say: "{what} is on a {ctl} SCSI controller, which VirtualBox lacks: LSI Logic used"}
	moves     = translate.BusRule{To: translate.BusSATA, Model: "AHCI", Code: WarnEmitBus, Say: "{what} on the {bus} bus moves to SATA"}
)

// Hardware is what a VirtualBox machine offers, as its settings name it.
func Hardware() translate.Hardware {
	virtioSCSI := []string{"virtio-scsi", "virtio"}
	return translate.Hardware{
		Layout: translate.LayoutVirtualBox,
		Disks: slices.Concat(ide, []translate.BusRule{sata, {Bus: translate.BusNVMe, To: translate.BusNVMe, Model: "NVMe"}}, scsi, []translate.BusRule{
			{Bus: translate.BusSCSI, Models: virtioSCSI, To: translate.BusSCSI, Model: "VirtioSCSI"},
			otherSCSI,
			{Bus: translate.BusVirtio, To: translate.BusSCSI, Model: "VirtioSCSI", Code: WarnEmitBus, Say: "{what} is a virtio-blk disk, which VirtualBox lacks: virtio-scsi used"},
			moves,
		}),
		// A CD-ROM on virtio-scsi or NVMe moves to SATA.
		CDROMs: slices.Concat(ide, []translate.BusRule{sata}, scsi, []translate.BusRule{
			{Bus: translate.BusSCSI, Models: virtioSCSI, To: translate.BusSATA, Model: "AHCI"},
			otherSCSI,
			moves,
		}),
		VirtioDisk:  translate.BusRule{To: translate.BusSCSI, Model: "VirtioSCSI"},
		CompatDisk:  sata,
		VirtioCDROM: sata,
		CompatCDROM: sata,
		Kinds: []translate.ControllerKind{
			{Model: "PIIX3", Name: "IDE", Ports: 2, Devices: 2},
			{Model: "PIIX4", Name: "IDE", Ports: 2, Devices: 2},
			{Model: "ICH6", Name: "IDE", Ports: 2, Devices: 2},
			{Model: "AHCI", Name: "SATA", Ports: 30, Devices: 1},
			{Model: "LsiLogic", Name: "SCSI", Ports: 16, Devices: 1},
			{Model: "BusLogic", Name: "SCSI BusLogic", Ports: 16, Devices: 1},
			{Model: "LsiLogicSas", Name: "SAS", Ports: 255, Devices: 1},
			{Model: "NVMe", Name: "NVMe", Ports: 255, Devices: 1},
			{Model: "VirtioSCSI", Name: "VirtIO", Ports: 255, Devices: 1},
		},
		MaxControllers: 8,
		UnitsCode:      WarnEmitUnits,
		NICs: []translate.ModelRule{
			{Models: []string{"e1000", "82540em", ""}, To: "82540EM"},
			{Models: []string{"82543gc"}, To: "82543GC"},
			{Models: []string{"82545em"}, To: "82545EM"},
			{Models: []string{"am79c970a"}, To: "Am79C970A"},
			{Models: []string{"am79c973", "pcnet", "vlance", "pcnet32"}, To: "Am79C973"},
			{Models: []string{"virtio"}, To: "virtio"},
			{Models: []string{"e1000e"}, To: "82545EM", Code: WarnEmitNIC, Say: "NIC {i} is an e1000e, which VirtualBox lacks: Intel 82545EM used"},
			{To: "82540EM", Code: WarnEmitNIC, Say: "NIC {i} model {model} is not emulated by VirtualBox: Intel 82540EM used"},
		},
		VirtioNIC: "virtio", CompatNIC: "82540EM",
		MaxNICs: 8, NICsCode: WarnEmitNIC, NICsSay: "VirtualBox has 8 network adapters: NIC {i} and later are left out",
		SerialCode: WarnEmitSerial, SerialSay: "{n} serial port(s) are not written to the .vbox", SerialOnce: true,
	}
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
	mp, err := translate.Map(m, disks, opts, Target{}.Caps())
	if err != nil {
		return nil, mp.Said(), fmt.Errorf("vbox: %s: %w", m.Name, err)
	}
	warns := mp.Warnings
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

	ctls := make([]xStorageCtrl, len(mp.Controllers))
	for i, c := range mp.Controllers {
		ctls[i] = xStorageCtrl{Name: c.Name, Type: c.Model, PortCount: c.Ports, HostIO: c.Bus == translate.BusIDE, Bootable: true}
	}
	for _, d := range mp.Drives {
		if d.Omit {
			continue
		}
		c := &ctls[d.Controller]
		if d.CDROM {
			ad := xAttached{Passthrough: "false", Type: "DVD", Port: d.Unit, Device: d.AddrBus}
			if d.Path != "" {
				u := derivedUUID("dvd", d.Path)
				mc.DVDImages = append(mc.DVDImages, xImage{UUID: "{" + u + "}", Location: d.Path})
				ad.Image = &xImage{UUID: "{" + u + "}"}
			}
			c.Devices = append(c.Devices, ad)
			continue
		}
		du := disks[d.Index].UUID
		if _, ok := canonicalUUID(du); !ok {
			du = derivedUUID("disk", d.Path)
		}
		mc.HardDisks = append(mc.HardDisks, xHardDisk{UUID: "{" + du + "}", Location: filepath.Base(d.Path), Format: d.Format, Type: "Normal"})
		c.Devices = append(c.Devices, xAttached{Type: "HardDisk", Port: d.Unit, Device: d.AddrBus, Image: &xImage{UUID: "{" + du + "}"}})
	}
	mc.Controllers = ctls
	for i, n := range m.NICs {
		if mp.NICs[i].Omit {
			break
		}
		a := xAdapter{Slot: i, Enabled: true, Type: mp.NICs[i].Model}
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
