// Package vbox reads VirtualBox machine settings (.vbox, settings versions
// 1.12 to 1.19) into the neutral machine model and writes them (the
// "virtualbox" target, settings version 1.16).
//
// The current state of a machine is the <Machine> element's own
// <Hardware> and <StorageControllers> (inside <Hardware> since settings
// 1.17); <Snapshot> elements hold past states and are not read. Attached
// media name a UUID of the <MediaRegistry>, where differencing images are
// nested inside their parents: an attached UUID may be a child, the newest
// layer of a chain.
package vbox

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/ovf"
)

// MaxSize bounds the size of a .vbox read (real ones reach some hundreds
// of KiB with many snapshots).
const MaxSize = 8 << 20

// Warning codes of the parser. They are stable.
const (
	WarnRunning     = "VBOX_MAYBE_RUNNING"  // a .vbox-tmp, saved state or lock: the VM may be running
	WarnChain       = "VBOX_DIFF_CHAIN"     // the attached disk is a differencing layer
	WarnDevice      = "VBOX_DEVICE_SKIPPED" // floppy, USB storage, host drives
	WarnDVDMissing  = "VBOX_DVD_MISSING"    // DVD image not registered or not found: empty drive
	WarnBadNumber   = "VBOX_BAD_NUMBER"     // CPU count or RAM size unreadable: default used
	WarnBadMAC      = "VBOX_BAD_MAC"        // MAC address unreadable: left to the target
	WarnController  = "VBOX_CONTROLLER"     // unknown controller type
	WarnNotAttached = "VBOX_NIC_UNATTACHED" // an enabled NIC attached to nothing
)

// Defaults when the settings do not state them (VirtualBox's own).
const (
	DefaultCPUs      = 1
	DefaultMemoryMiB = 128
)

func errf(name, format string, args ...any) error {
	return fmt.Errorf("vbox: %s: %w", filepath.Base(name), fmt.Errorf(format, args...))
}

// Parse reads the .vbox at path. Whether the attached disks exist is
// translate.CheckDisks's to say.
func Parse(path string) (*translate.Machine, error) { return ParseIn(path, nil) }

// ParseIn is Parse of a .vbox among env's files (a remote source's in its
// remote tree).
func ParseIn(path string, env *layouts.Env) (*translate.Machine, error) {
	b, err := translate.ReadDescriptorIn(env, path, MaxSize, "a .vbox")
	if err != nil {
		return nil, translate.DescriptorError("vbox", filepath.Base(path), err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("vbox: %w", err)
	}
	m, err := ParseBytes(abs, b)
	if err != nil {
		return nil, err
	}
	for i := range m.CDROMs {
		c := &m.CDROMs[i]
		if c.Path == "" {
			continue
		}
		if _, err := env.Stat(c.Path); err != nil {
			m.Warn(WarnDVDMissing, "DVD image %s is not here: the drive is left empty", c.Path)
			c.Path = ""
		}
	}
	for _, sfx := range []string{"-tmp", "-prev"} {
		if _, err := env.Stat(abs + sfx); err == nil {
			m.Warn(WarnRunning, "%s exists: VirtualBox may be running this machine or changing its settings; shut it down before migrating", filepath.Base(abs+sfx))
			break
		}
	}
	return m, nil
}

// medium is a registered disk or image.
type medium struct {
	n      *ovf.Node
	uuid   string
	path   string
	format string
	parent *medium
}

// ParseBytes parses the settings b of a .vbox named name. Relative media
// locations are resolved against name's directory; no file is opened.
func ParseBytes(name string, b []byte) (*translate.Machine, error) {
	root, err := ovf.ParseXML(b)
	if err != nil {
		return nil, errf(name, "%v", err)
	}
	if root.Name != "VirtualBox" {
		return nil, errf(name, "root element <%s> is not <VirtualBox>", root.Name)
	}
	if root.Child("MachineEncrypted") != nil {
		return nil, errf(name, "the machine settings are encrypted: encrypted VMs are not supported: %w", layouts.ErrUnsupported)
	}
	mach := root.Child("Machine")
	if mach == nil {
		return nil, errf(name, "no <Machine> element (a global VirtualBox.xml?)")
	}
	dir := filepath.Dir(name)
	m := &translate.Machine{Source: name, SourceFormat: "vbox", Name: mach.Attr("name"), GuestOS: mach.Attr("OSType")}
	m.OSInfo = osInfo[strings.ToLower(m.GuestOS)]
	if u, ok := canonicalUUID(mach.Attr("uuid")); ok {
		m.UUID = u
	}
	if m.Name == "" {
		m.Name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	}
	if hw := mach.Child("Hardware"); hw != nil {
		if t := hw.Child("TrustedPlatformModule"); t != nil && t.Attr("type") != "" && !strings.EqualFold(t.Attr("type"), "None") {
			m.TPM = true
		}
	}
	if s := mach.Child("Snapshot"); s != nil {
		// Snapshots nest: each holds its children in <Snapshots>.
		for n, depth := s, 0; n != nil && depth < 256; depth++ {
			m.Snapshots = append(m.Snapshots, n.Attr("name"))
			var next *ovf.Node
			if c := n.Child("Snapshots"); c != nil {
				next = c.Child("Snapshot")
			}
			n = next
		}
	}
	if mach.Attr("stateFile") != "" {
		m.Warn(WarnRunning, "the machine is in a saved state (%s): the guest was suspended, not shut down; its disks may hold unflushed data", mach.Attr("stateFile"))
	}

	// Media registry (also the global registry's layout in older files).
	media := map[string]*medium{}
	var walk func(n *ovf.Node, parent *medium, depth int) error
	walk = func(n *ovf.Node, parent *medium, depth int) error {
		if depth > 256 {
			return errf(name, "differencing chain deeper than 256")
		}
		for _, hd := range n.All("HardDisk") {
			u, ok := canonicalUUID(hd.Attr("uuid"))
			if !ok {
				return errf(name, "hard disk %q has no readable uuid", hd.Attr("location"))
			}
			if media[u] != nil {
				return errf(name, "hard disk %s is registered twice", u)
			}
			md := &medium{n: hd, uuid: u, path: resolve(dir, hd.Attr("location")), format: hd.Attr("format"), parent: parent}
			media[u] = md
			if err := walk(hd, md, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	reg := mach.Child("MediaRegistry")
	if err := walk(reg.Child("HardDisks"), nil, 0); err != nil {
		return nil, err
	}
	dvds := map[string]string{}
	for _, img := range reg.Child("DVDImages").All("Image") {
		if u, ok := canonicalUUID(img.Attr("uuid")); ok {
			dvds[u] = resolve(dir, img.Attr("location"))
		}
	}

	hw := mach.Child("Hardware")
	if hw == nil {
		return nil, errf(name, "machine %s has no <Hardware>", m.Name)
	}
	m.CPUs = DefaultCPUs
	if c := hw.Child("CPU"); c != nil && c.HasAttr("count") {
		v, err := strconv.Atoi(c.Attr("count"))
		if err != nil || v < 1 || v > 1024 {
			m.Warn(WarnBadNumber, "CPU count %q unreadable: %d used", c.Attr("count"), DefaultCPUs)
		} else {
			m.CPUs = v
		}
	}
	m.MemoryMiB = DefaultMemoryMiB
	if mem := hw.Child("Memory"); mem != nil {
		v, err := strconv.ParseInt(mem.Attr("RAMSize"), 10, 64)
		if err != nil || v < 1 || v > 1<<24 {
			m.Warn(WarnBadNumber, "RAM size %q unreadable: %d MiB used", mem.Attr("RAMSize"), DefaultMemoryMiB)
		} else {
			m.MemoryMiB = v
		}
	}
	m.Firmware = translate.BIOS
	if fw := hw.Child("Firmware"); fw != nil && strings.HasPrefix(strings.ToUpper(fw.Attr("type")), "EFI") {
		m.Firmware = translate.UEFI
	}
	if d := hw.Child("Display"); d != nil {
		m.Video = strings.ToLower(d.Attr("controller"))
	}

	// Storage.
	scs := mach.Child("StorageControllers")
	if scs == nil {
		scs = hw.Child("StorageControllers")
	}
	counts := map[translate.Bus]int{}
	for _, sc := range scs.All("StorageController") {
		bus, model, ok := controllerType(sc.Attr("type"))
		if !ok {
			m.Warn(WarnController, "storage controller %q of type %q is not known: its devices are left out", sc.Attr("name"), sc.Attr("type"))
			continue
		}
		if bus == translate.BusFloppy || bus == translate.BusUSB {
			if len(sc.All("AttachedDevice")) > 0 {
				m.Warn(WarnDevice, "devices on the %s controller %q are not carried over", sc.Attr("type"), sc.Attr("name"))
			}
			continue
		}
		index := counts[bus]
		counts[bus]++
		for _, ad := range sc.All("AttachedDevice") {
			port, device := atoi(ad.Attr("port")), atoi(ad.Attr("device"))
			ctl, unit := index, port
			if bus == translate.BusIDE {
				ctl, unit = port, device
			}
			img := ad.Child("Image")
			switch ad.Attr("type") {
			case "HardDisk":
				u, ok := canonicalUUID(img.Attr("uuid"))
				if !ok {
					return nil, errf(name, "hard disk on %s port %d device %d names no image", sc.Attr("name"), port, device)
				}
				md := media[u]
				if md == nil {
					return nil, errf(name, "hard disk %s on %s port %d is not in the media registry", u, sc.Attr("name"), port)
				}
				var chain []string
				for x := md; x != nil; x = x.parent {
					if enc := encrypted(x.n); enc != "" {
						return nil, errf(name, "disk %s is encrypted (%s): encrypted disks are not supported: %w", filepath.Base(x.path), enc, layouts.ErrUnsupported)
					}
					chain = append(chain, filepath.Base(x.path))
				}
				if len(chain) > 1 {
					m.Warn(WarnChain, "disk %s is a differencing layer over %s", chain[0], strings.Join(chain[1:], " ← "))
				}
				d := translate.Disk{Path: md.path, Format: strings.ToLower(md.format), Bus: bus, Controller: model, ControllerIndex: ctl, Unit: unit}
				if md.n.Attr("type") == "Readonly" || md.n.Attr("type") == "Immutable" {
					d.ReadOnly = true
				}
				m.Disks = append(m.Disks, d)
			case "DVD":
				cd := translate.CDROM{Bus: bus, Controller: model, ControllerIndex: ctl, Unit: unit}
				if u, ok := canonicalUUID(img.Attr("uuid")); ok {
					if p, ok := dvds[u]; ok {
						cd.Path = p
					} else {
						m.Warn(WarnDVDMissing, "DVD image %s is not registered: the drive is left empty", u)
					}
				}
				m.CDROMs = append(m.CDROMs, cd)
			default:
				m.Warn(WarnDevice, "%s device on %s port %d is not carried over", orDash(ad.Attr("type")), sc.Attr("name"), port)
			}
		}
	}

	// Network.
	for _, a := range hw.Child("Network").All("Adapter") {
		if a.Attr("enabled") != "true" {
			continue
		}
		n := translate.NIC{Model: strings.ToLower(a.Attr("type"))}
		if n.Model == "" {
			n.Model = "am79c973"
		}
		if s := a.Attr("MACAddress"); s != "" {
			if mac, ok := canonicalMAC(s); ok {
				n.MAC = mac
			} else {
				m.Warn(WarnBadMAC, "adapter %s MAC address %q unreadable: left to the target", a.Attr("slot"), s)
			}
		}
		switch {
		case a.Child("NAT") != nil:
			n.Type = "nat"
		case a.Child("NATNetwork") != nil:
			n.Type, n.Network = "network", a.Child("NATNetwork").Attr("name")
		case a.Child("BridgedInterface") != nil:
			n.Type, n.Network = "bridge", a.Child("BridgedInterface").Attr("name")
		case a.Child("HostOnlyInterface") != nil:
			n.Type, n.Network = "hostonly", a.Child("HostOnlyInterface").Attr("name")
		case a.Child("InternalNetwork") != nil:
			n.Type, n.Network = "custom", a.Child("InternalNetwork").Attr("name")
		case a.Child("GenericInterface") != nil:
			n.Type, n.Network = "custom", a.Child("GenericInterface").Attr("driver")
		default:
			m.Warn(WarnNotAttached, "adapter %s is attached to nothing", orDash(a.Attr("slot")))
		}
		m.NICs = append(m.NICs, n)
	}
	if len(m.Disks) == 0 {
		return nil, errf(name, "machine %s has no hard disk attached", m.Name)
	}
	return m, nil
}

// encrypted names the property that marks an encrypted medium, or "".
func encrypted(n *ovf.Node) string {
	for _, p := range n.All("Property") {
		if k := p.Attr("name"); strings.HasPrefix(k, "CRYPT/") {
			return k
		}
	}
	return ""
}

func controllerType(t string) (translate.Bus, string, bool) {
	switch strings.ToLower(t) {
	case "piix3", "piix4", "ich6":
		return translate.BusIDE, strings.ToLower(t), true
	case "ahci":
		return translate.BusSATA, "ahci", true
	case "lsilogic":
		return translate.BusSCSI, "lsilogic", true
	case "buslogic":
		return translate.BusSCSI, "buslogic", true
	case "lsilogicsas":
		return translate.BusSCSI, "lsisas1068", true
	case "virtioscsi":
		return translate.BusSCSI, "virtio-scsi", true
	case "nvme":
		return translate.BusNVMe, "nvme", true
	case "i82078":
		return translate.BusFloppy, "i82078", true
	case "usb":
		return translate.BusUSB, "usb", true
	}
	return "", "", false
}

// resolve makes a media location absolute; Windows paths stay as written.
func resolve(dir, loc string) string {
	if loc == "" || filepath.IsAbs(loc) || (len(loc) > 2 && loc[1] == ':') {
		return loc
	}
	return filepath.Join(dir, filepath.FromSlash(strings.ReplaceAll(loc, "\\", "/")))
}

func atoi(s string) int {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 0 || v > 1<<16 {
		return 0
	}
	return v
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func canonicalUUID(s string) (string, bool) {
	h := strings.ToLower(strings.NewReplacer("{", "", "}", "", "-", "").Replace(strings.TrimSpace(s)))
	if len(h) != 32 {
		return "", false
	}
	for i := 0; i < 32; i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], true
}

func canonicalMAC(s string) (string, bool) {
	h := strings.ToLower(strings.NewReplacer(":", "", "-", "").Replace(strings.TrimSpace(s)))
	if len(h) != 12 {
		return "", false
	}
	for i := 0; i < 12; i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return h[0:2] + ":" + h[2:4] + ":" + h[4:6] + ":" + h[6:8] + ":" + h[8:10] + ":" + h[10:12], true
}

// osInfo maps the VirtualBox OS types that name one release to libosinfo.
var osInfo = map[string]string{
	"windows7_64":     "http://microsoft.com/win/7",
	"windows8_64":     "http://microsoft.com/win/8",
	"windows81_64":    "http://microsoft.com/win/8.1",
	"windows10_64":    "http://microsoft.com/win/10",
	"windows11_64":    "http://microsoft.com/win/11",
	"windows2012_64":  "http://microsoft.com/win/2k12",
	"windows2016_64":  "http://microsoft.com/win/2k16",
	"windows2019_64":  "http://microsoft.com/win/2k19",
	"windows2022_64":  "http://microsoft.com/win/2k22",
	"windows2008_64":  "http://microsoft.com/win/2k8r2",
	"windows2003_64":  "http://microsoft.com/win/2k3",
	"windowsxp":       "http://microsoft.com/win/xp",
	"windowsvista_64": "http://microsoft.com/win/vista",
}
