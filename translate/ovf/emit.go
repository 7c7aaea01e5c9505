package ovf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmfs/vmfs/translate"
)

// Warning codes of the emitter. They are stable.
const (
	WarnEmitBus    = "OVF_EMIT_BUS"       // disk or CD-ROM moved to a bus VMware has
	WarnEmitNIC    = "OVF_EMIT_NIC"       // NIC model VMware lacks: replaced
	WarnEmitCDROM  = "OVF_EMIT_CDROM"     // CD-ROM image not packaged: empty drive
	WarnEmitUnits  = "OVF_EMIT_UNITS"     // a controller is full
	WarnEmitFormat = "OVF_EMIT_FORMAT"    // a disk image VMware does not import
	WarnEmitPolicy = translate.WarnPolicy // unknown device policy
	WarnEmitSerial = "OVF_EMIT_SERIAL"    // serial ports are not written
)

// VirtualSystemType is the hardware family written (ESXi 6.7 and later).
const VirtualSystemType = "vmx-14"

// Target is the "ovf" target: an OVF 1.0 envelope, VMware flavour, whose
// References name the disk files next to it, plus a manifest.
//
// The manifest (.mf) holds the SHA256 of the .ovf and of every disk file.
// The disk lines are marked for the view, which computes them when the
// manifest is first read: a digest reads a whole disk, and a mount must
// not do that before it serves its first byte.
type Target struct{}

var _ translate.Target = Target{}

func (Target) Name() string          { return "ovf" }
func (Target) DefaultFormat() string { return "vmdk" }

// Caps: VMware has no virtio devices; --devices virtio uses its
// paravirtual ones.
func (Target) Caps() translate.Caps {
	return translate.Caps{Target: "ovf", VirtioSubstitute: "VMware's paravirtual devices (VirtualSCSI disks, VmxNet3 NICs)",
		OneFilePerDisk: "an OVF package refers to each disk by one file",
		Hardware:       Hardware()}
}

// Hardware is what a VMware machine imported from an OVF of
// VirtualSystemType offers, as OVF names it.
func Hardware() translate.Hardware {
	moves := translate.BusRule{To: translate.BusSATA, Code: WarnEmitBus, Say: "{what} on the {bus} bus moves to SATA"}
	return translate.Hardware{
		Layout: translate.LayoutVMware,
		Disks: []translate.BusRule{
			{Bus: translate.BusSCSI, Models: []string{"lsilogic", ""}, To: translate.BusSCSI, Model: "lsilogic"},
			{Bus: translate.BusSCSI, Models: []string{"buslogic"}, To: translate.BusSCSI, Model: "buslogic"},
			{Bus: translate.BusSCSI, Models: []string{"lsisas1068", "lsisas1078", "lsilogicsas"}, To: translate.BusSCSI, Model: "lsilogicsas"},
			{Bus: translate.BusSCSI, Models: []string{"pvscsi", "vmpvscsi"}, To: translate.BusSCSI, Model: "VirtualSCSI"},
			{Bus: translate.BusSCSI, To: translate.BusSCSI, Model: "lsilogicsas", Code: WarnEmitBus, Say: "{what} is on a {ctl} SCSI controller, which VMware lacks: LSI Logic SAS used"},
			{Bus: translate.BusSATA, To: translate.BusSATA},
			{Bus: translate.BusIDE, To: translate.BusIDE},
			{Bus: translate.BusNVMe, To: translate.BusNVMe},
			moves,
		},
		CDROMs: []translate.BusRule{
			{Bus: translate.BusIDE, To: translate.BusIDE},
			{Bus: translate.BusSATA, To: translate.BusSATA},
			moves,
		},
		VirtioDisk:  translate.BusRule{To: translate.BusSCSI, Model: "VirtualSCSI"},
		CompatDisk:  translate.BusRule{To: translate.BusSATA},
		VirtioCDROM: translate.BusRule{To: translate.BusSATA},
		CompatCDROM: translate.BusRule{To: translate.BusSATA},
		NICs: []translate.ModelRule{
			{Models: []string{"e1000", "", "82540em", "82543gc", "82545em"}, To: "E1000"},
			{Models: []string{"e1000e"}, To: "E1000e"},
			{Models: []string{"vmxnet3", "vmxnet", "vmxnet2"}, To: "VmxNet3"},
			{Models: []string{"pcnet", "vlance", "pcnet32", "am79c970a", "am79c973"}, To: "PCNet32"},
			{To: "E1000", Code: WarnEmitNIC, Say: "NIC {i} model {model} is not a VMware adapter: E1000 used"},
		},
		VirtioNIC: "VmxNet3", CompatNIC: "E1000",
		Formats: []string{"vmdk"}, FormatCode: WarnEmitFormat, FormatSay: "disk {i} is a {format} image: VMware imports only VMDK from an OVF",
		UnitsCode:       WarnEmitUnits,
		CDROMImagesCode: WarnEmitCDROM, CDROMImagesSay: "CD-ROM {i} image {path} is not packaged: the drive is left empty",
		SerialCode: WarnEmitSerial, SerialSay: "{n} serial port(s) are not written to the OVF", SerialOnce: true,
	}
}

// Namespaces of an OVF 1.0 envelope.
const (
	nsOVF  = "http://schemas.dmtf.org/ovf/envelope/1"
	nsRASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
	nsVSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
	nsVMW  = "http://www.vmware.com/schema/ovf"
	nsCIM  = "http://schemas.dmtf.org/wbem/wscim/1/common"
	nsXSI  = "http://www.w3.org/2001/XMLSchema-instance"
)

type xEnvelope struct {
	XMLName    xml.Name     `xml:"Envelope"`
	Xmlns      string       `xml:"xmlns,attr"`
	XmlnsOVF   string       `xml:"xmlns:ovf,attr"`
	XmlnsRASD  string       `xml:"xmlns:rasd,attr"`
	XmlnsVSSD  string       `xml:"xmlns:vssd,attr"`
	XmlnsVMW   string       `xml:"xmlns:vmw,attr"`
	XmlnsCIM   string       `xml:"xmlns:cim,attr"`
	XmlnsXSI   string       `xml:"xmlns:xsi,attr"`
	Version    string       `xml:"ovf:version,attr"`
	References []xFile      `xml:"References>File"`
	Disks      xDiskSection `xml:"DiskSection"`
	Networks   *xNetSection `xml:"NetworkSection,omitempty"`
	System     xSystem      `xml:"VirtualSystem"`
}

type xFile struct {
	Href string `xml:"ovf:href,attr"`
	ID   string `xml:"ovf:id,attr"`
}

type xDiskSection struct {
	Info  string  `xml:"Info"`
	Disks []xDisk `xml:"Disk"`
}

type xDisk struct {
	Capacity string `xml:"ovf:capacity,attr"`
	Units    string `xml:"ovf:capacityAllocationUnits,attr"`
	DiskID   string `xml:"ovf:diskId,attr"`
	FileRef  string `xml:"ovf:fileRef,attr"`
	Format   string `xml:"ovf:format,attr,omitempty"`
}

type xNetSection struct {
	Info     string     `xml:"Info"`
	Networks []xNetwork `xml:"Network"`
}

type xNetwork struct {
	Name        string `xml:"ovf:name,attr"`
	Description string `xml:"Description"`
}

type xSystem struct {
	ID       string    `xml:"ovf:id,attr"`
	Info     string    `xml:"Info"`
	Name     string    `xml:"Name"`
	OS       xOS       `xml:"OperatingSystemSection"`
	Hardware xHardware `xml:"VirtualHardwareSection"`
}

type xOS struct {
	ID     string `xml:"ovf:id,attr"`
	OSType string `xml:"vmw:osType,attr,omitempty"`
	Info   string `xml:"Info"`
}

type xHardware struct {
	Info    string    `xml:"Info"`
	System  xVSSD     `xml:"System"`
	Items   []xItem   `xml:"Item"`
	Configs []xConfig `xml:"vmw:Config"`
}

type xVSSD struct {
	ElementName string `xml:"vssd:ElementName"`
	InstanceID  string `xml:"vssd:InstanceID"`
	Identifier  string `xml:"vssd:VirtualSystemIdentifier"`
	Type        string `xml:"vssd:VirtualSystemType"`
}

// xItem holds the rasd elements in the schema's (alphabetical) order.
type xItem struct {
	Required        string    `xml:"ovf:required,attr,omitempty"`
	Address         string    `xml:"rasd:Address,omitempty"`
	AddressOnParent string    `xml:"rasd:AddressOnParent,omitempty"`
	AllocationUnits string    `xml:"rasd:AllocationUnits,omitempty"`
	AutoAlloc       string    `xml:"rasd:AutomaticAllocation,omitempty"`
	Connection      string    `xml:"rasd:Connection,omitempty"`
	Description     string    `xml:"rasd:Description,omitempty"`
	ElementName     string    `xml:"rasd:ElementName"`
	HostResource    string    `xml:"rasd:HostResource,omitempty"`
	InstanceID      string    `xml:"rasd:InstanceID"`
	Parent          string    `xml:"rasd:Parent,omitempty"`
	ResourceSubType string    `xml:"rasd:ResourceSubType,omitempty"`
	ResourceType    string    `xml:"rasd:ResourceType"`
	VirtualQuantity string    `xml:"rasd:VirtualQuantity,omitempty"`
	CoresPerSocket  *xCores   `xml:"vmw:CoresPerSocket,omitempty"`
	Configs         []xConfig `xml:"vmw:Config"`
}

type xCores struct {
	Required string `xml:"ovf:required,attr"`
	Value    int    `xml:",chardata"`
}

type xConfig struct {
	Required string `xml:"ovf:required,attr"`
	Key      string `xml:"vmw:key,attr"`
	Value    string `xml:"vmw:value,attr"`
}

// Emit writes <name>.ovf and <name>.mf.
func (Target) Emit(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) ([]translate.OutFile, []translate.Warning, error) {
	b, warns, err := Marshal(m, disks, opts)
	if err != nil {
		return nil, warns, err
	}
	base := translate.FileName(m.Name)
	sum := sha256.Sum256(b)
	mf := fmt.Sprintf("SHA256(%s.ovf)= %s\n", base, hex.EncodeToString(sum[:]))
	return []translate.OutFile{
		{Name: base + ".ovf", Data: b, Mode: 0o644},
		{Name: base + ".mf", Data: []byte(mf), Mode: 0o644, DiskDigests: true},
	}, warns, nil
}

// Marshal generates the .ovf of m with its disks at disks.
func Marshal(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) ([]byte, []translate.Warning, error) {
	mp, err := translate.Map(m, disks, opts, Target{}.Caps())
	if err != nil {
		return nil, mp.Said(), fmt.Errorf("ovf: %s: %w", m.Name, err)
	}
	warns := mp.Warnings
	env := xEnvelope{Xmlns: nsOVF, XmlnsOVF: nsOVF, XmlnsRASD: nsRASD, XmlnsVSSD: nsVSSD, XmlnsVMW: nsVMW, XmlnsCIM: nsCIM, XmlnsXSI: nsXSI, Version: "1.0"}
	env.Disks.Info = "Virtual disk information"
	name := m.Name
	if name == "" {
		name = "vm"
	}
	sys := &env.System
	sys.ID, sys.Info, sys.Name = name, "A virtual machine", name
	sys.OS.Info = "The kind of installed guest operating system"
	sys.OS.ID = "1" // CIM "Other"
	if code, ok := strings.CutPrefix(m.GuestOS, "cim:"); ok {
		sys.OS.ID = code
	} else if (m.SourceFormat == "ovf" || m.SourceFormat == "ova") && strings.HasSuffix(m.GuestOS, "Guest") {
		sys.OS.OSType = m.GuestOS
	} else if m.SourceFormat == "vmx" && m.GuestOS != "" {
		// VMware names a .vmx guestOS "windows9-64" in an OVF "windows9_64Guest".
		sys.OS.OSType = strings.ReplaceAll(m.GuestOS, "-", "_") + "Guest"
	}
	hw := &sys.Hardware
	hw.Info = "Virtual hardware requirements"
	hw.System = xVSSD{ElementName: "Virtual Hardware Family", InstanceID: "0", Identifier: name, Type: VirtualSystemType}
	next := 1
	id := func() string { next++; return strconv.Itoa(next - 1) }

	cpus := max(m.CPUs, 1)
	cpu := xItem{AllocationUnits: "hertz * 10^6", Description: "Number of Virtual CPUs", ElementName: fmt.Sprintf("%d virtual CPU(s)", cpus), InstanceID: id(), ResourceType: "3", VirtualQuantity: strconv.Itoa(cpus)}
	if m.CoresPerSocket > 0 {
		cpu.CoresPerSocket = &xCores{Required: "false", Value: m.CoresPerSocket}
	}
	mem := m.MemoryMiB
	if mem <= 0 {
		mem = DefaultMemoryMiB
	}
	hw.Items = append(hw.Items, cpu, xItem{AllocationUnits: "byte * 2^20", Description: "Memory Size", ElementName: fmt.Sprintf("%dMB of memory", mem), InstanceID: id(), ResourceType: "4", VirtualQuantity: strconv.FormatInt(mem, 10)})

	models := map[[2]any]string{} // (bus, index) → controller model
	for _, c := range mp.Controllers {
		models[[2]any{c.Bus, c.Index}] = c.Model
	}
	ctlIDs := map[[2]any]string{} // (bus, index) → instance id
	var devItems []xItem
	var ctlItems []xItem
	// A controller's item takes its instance id when its first device does.
	controllerID := func(bus translate.Bus, index int) string {
		k := [2]any{bus, index}
		if s, ok := ctlIDs[k]; ok {
			return s
		}
		it := xItem{Address: strconv.Itoa(index), InstanceID: id()}
		switch bus {
		case translate.BusIDE:
			it.Description, it.ElementName, it.ResourceType = "IDE Controller", fmt.Sprintf("IDE %d", index), "5"
		case translate.BusSCSI:
			it.Description, it.ElementName, it.ResourceType, it.ResourceSubType = "SCSI Controller", fmt.Sprintf("SCSI controller %d", index), "6", models[k]
		case translate.BusSATA:
			it.Description, it.ElementName, it.ResourceType, it.ResourceSubType = "SATA Controller", fmt.Sprintf("SATA controller %d", index), "20", "vmware.sata.ahci"
		case translate.BusNVMe:
			it.Description, it.ElementName, it.ResourceType, it.ResourceSubType = "NVMe Controller", fmt.Sprintf("NVMe controller %d", index), "20", "vmware.nvme.controller"
		}
		ctlItems = append(ctlItems, it)
		ctlIDs[k] = it.InstanceID
		return it.InstanceID
	}
	for _, d := range mp.Drives {
		if d.Omit {
			continue
		}
		parent := controllerID(d.Bus, d.Controller)
		if d.CDROM {
			devItems = append(devItems, xItem{Required: "false", AddressOnParent: strconv.Itoa(d.Unit), AutoAlloc: "false", ElementName: fmt.Sprintf("CD/DVD drive %d", d.Index+1), InstanceID: id(), Parent: parent, ResourceSubType: "vmware.cdrom.remotepassthrough", ResourceType: "15"})
			continue
		}
		i := d.Index
		fileID, diskID := fmt.Sprintf("file%d", i+1), fmt.Sprintf("vmdisk%d", i+1)
		env.References = append(env.References, xFile{Href: filepath.Base(disks[i].Path), ID: fileID})
		size := disks[i].Size
		if size <= 0 {
			size = m.Disks[i].Size
		}
		env.Disks.Disks = append(env.Disks.Disks, xDisk{Capacity: strconv.FormatInt(size, 10), Units: "byte", DiskID: diskID, FileRef: fileID, Format: disks[i].OVFFormat})
		devItems = append(devItems, xItem{AddressOnParent: strconv.Itoa(d.Unit), ElementName: fmt.Sprintf("Hard disk %d", i+1), HostResource: "ovf:/disk/" + diskID, InstanceID: id(), Parent: parent, ResourceType: "17"})
	}
	var nets []string
	seenNet := map[string]bool{}
	for i, n := range m.NICs {
		model := mp.NICs[i].Model
		net := mp.NICs[i].Network
		if net == "" {
			net = "VM Network"
		}
		if !seenNet[net] {
			seenNet[net] = true
			nets = append(nets, net)
		}
		it := xItem{AddressOnParent: strconv.Itoa(7 + i), AutoAlloc: "true", Connection: net, Description: fmt.Sprintf("%s ethernet adapter on %q", model, net), ElementName: fmt.Sprintf("Network adapter %d", i+1), InstanceID: id(), ResourceSubType: model, ResourceType: "10"}
		if n.MAC != "" {
			it.Address = n.MAC
		}
		devItems = append(devItems, it)
	}
	if len(nets) > 0 {
		env.Networks = &xNetSection{Info: "The list of logical networks"}
		for _, n := range nets {
			env.Networks.Networks = append(env.Networks.Networks, xNetwork{Name: n, Description: "The " + n + " network"})
		}
	}
	hw.Items = append(append(hw.Items, ctlItems...), devItems...)
	fw := "bios"
	if m.Firmware == translate.UEFI {
		fw = "efi"
	}
	hw.Configs = append(hw.Configs, xConfig{Required: "false", Key: "firmware", Value: fw})
	if m.Firmware == translate.UEFI && m.SecureBoot {
		hw.Configs = append(hw.Configs, xConfig{Required: "false", Key: "bootOptions.efiSecureBootEnabled", Value: "true"})
	}
	if m.UUID != "" {
		hw.Configs = append(hw.Configs, xConfig{Required: "false", Key: "uuid", Value: m.UUID})
	}
	out, err := xml.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, warns, fmt.Errorf("ovf: %s: %w", m.Name, err)
	}
	return append([]byte(xml.Header), append(out, '\n')...), warns, nil
}
