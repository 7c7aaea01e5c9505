// Package ovf reads OVF descriptors (.ovf, OVF 0.9, 1.x and 2.0, VMware and
// VirtualBox flavours) and OVA archives (.ova, a tar read in place) into
// the neutral machine model, and writes OVF 1.0 envelopes (the "ovf"
// target).
//
// Every lookup matches XML local names: the same elements appear in
// several namespaces depending on the OVF version and the exporting tool.
// OVF 0.9 writes sections as <Section xsi:type="ovf:XxxSection_Type"> and
// the virtual system as <Content xsi:type="ovf:VirtualSystem_Type">; both
// spellings are read.
package ovf

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
)

// MaxSize bounds the size of an .ovf descriptor (real ones are some tens
// of KiB).
const MaxSize = 8 << 20

// Warning codes of the parser. They are stable.
const (
	WarnSystems        = "OVF_MULTIPLE_SYSTEMS" // several virtual systems: the first is read
	WarnDevice         = "OVF_DEVICE_SKIPPED"   // an item that is not carried over
	WarnBadNumber      = "OVF_BAD_NUMBER"       // CPU or memory quantity unreadable: default used
	WarnBadMAC         = "OVF_BAD_MAC"          // MAC address unreadable: left to the target
	WarnCDROMFile      = "OVF_CDROM_MISSING"    // CD-ROM image not found: empty drive
	WarnManifestLine   = "OVF_MANIFEST_LINE"    // a manifest line that is not NAME(file)= hex
	WarnNoManifest     = "OVF_NO_MANIFEST"      // an OVA without a manifest: nothing verified
	WarnManifestRemote = "OVF_MANIFEST_REMOTE"  // a remote OVA: its disks' digests are not checked
	WarnUnknownCtl     = "OVF_CONTROLLER"       // a disk on an unknown or absent controller
)

// Defaults when the descriptor does not state them.
const (
	DefaultCPUs      = 1
	DefaultMemoryMiB = 1024
)

// errf makes the one-line error of this package.
func errf(name, format string, args ...any) error {
	return fmt.Errorf("ovf: %s: %w", filepath.Base(name), fmt.Errorf(format, args...))
}

// ErrUnsupported is wrapped by errors for what vmfs does not read (gzip
// and chunked disk references, URLs).
var ErrUnsupported = layouts.ErrUnsupported

// Parse reads the .ovf or .ova at path. Disks of an .ovf must exist next
// to it; disks of an .ova are sections of the archive. A manifest (.mf)
// is verified when present.
func Parse(p string) (*translate.Machine, error) { return ParseIn(p, nil) }

// ParseIn is Parse among env's files (a remote source's in its remote
// tree).
func ParseIn(p string, env *layouts.Env) (*translate.Machine, error) {
	if strings.EqualFold(filepath.Ext(p), ".ova") {
		return ParseOVAIn(p, env)
	}
	return ParseFileIn(p, env)
}

// ParseFile reads the OVF descriptor at p, whatever its file name.
func ParseFile(p string) (*translate.Machine, error) { return ParseFileIn(p, nil) }

// ParseFileIn is ParseFile among env's files. The manifest of a remote
// .ovf is verified for every file but the disks (see ParseOVAIn).
func ParseFileIn(p string, env *layouts.Env) (*translate.Machine, error) {
	b, err := translate.ReadDescriptorIn(env, p, MaxSize, "an OVF descriptor")
	if err != nil {
		return nil, translate.DescriptorError("ovf", filepath.Base(p), err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("ovf: %w", err)
	}
	dir := filepath.Dir(abs)
	res := func(href string) (string, func() (translate.File, error), bool) {
		rel, err := cleanHref(href)
		if err != nil {
			return "", nil, false
		}
		// Whether the file is there is translate.CheckDisks's to say.
		return filepath.Join(dir, filepath.FromSlash(rel)), nil, true
	}
	m, err := parse(abs, b, res, false)
	if err != nil {
		return nil, err
	}
	m.SourceFormat = "ovf"
	for i := range m.CDROMs {
		c := &m.CDROMs[i]
		if c.Path == "" {
			continue
		}
		if _, err := env.Stat(c.Path); err != nil {
			m.Warn(WarnCDROMFile, "CD-ROM image %s is not in the package: the drive is left empty", filepath.Base(c.Path))
			c.Path = ""
		}
	}
	mf := strings.TrimSuffix(abs, filepath.Ext(abs)) + ".mf"
	if env.IsRemote() {
		if _, err := env.Stat(mf); err != nil {
			return m, nil
		}
		mb, err := translate.ReadDescriptorIn(env, mf, maxManifest, "a manifest")
		if err != nil {
			return nil, errf(abs, "manifest %s: %v", filepath.Base(mf), err)
		}
		if err := verifyRemoteManifest(abs, mf, mb, m, env); err != nil {
			return nil, err
		}
		return m, nil
	}
	if mb, err := os.ReadFile(mf); err == nil {
		if err := verifyDirManifest(abs, mf, mb, m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ParseBytes parses the OVF descriptor b named name. Disk references are
// resolved against name's directory; no file is opened or checked.
func ParseBytes(name string, b []byte) (*translate.Machine, error) {
	dir := filepath.Dir(name)
	res := func(href string) (string, func() (translate.File, error), bool) {
		rel, err := cleanHref(href)
		if err != nil {
			return "", nil, false
		}
		return filepath.Join(dir, filepath.FromSlash(rel)), nil, true
	}
	m, err := parse(name, b, res, false)
	if err != nil {
		return nil, err
	}
	m.SourceFormat = "ovf"
	return m, nil
}

// resolver maps a References href to the disk's path and, inside an OVA,
// its opener; ok is false when the file is not there.
type resolver func(href string) (p string, open func() (translate.File, error), ok bool)

// cleanHref accepts relative paths inside the package only.
func cleanHref(href string) (string, error) {
	h := strings.TrimSpace(href)
	if strings.HasPrefix(h, "file:") {
		h = strings.TrimPrefix(strings.TrimPrefix(h, "file:"), "//")
	}
	if strings.Contains(h, "://") {
		return "", fmt.Errorf("href %q is a URL: remote disk references are not supported: %w", href, ErrUnsupported)
	}
	h = strings.ReplaceAll(h, "\\", "/")
	if h == "" || path.IsAbs(h) || (len(h) > 1 && h[1] == ':') {
		return "", fmt.Errorf("href %q is not a relative path inside the package", href)
	}
	c := path.Clean(h)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("href %q points outside the package", href)
	}
	return c, nil
}

// section finds a section by element name or, in OVF 0.9, by xsi:type.
func section(n *Node, name string) *Node {
	if c := n.Child(name); c != nil {
		return c
	}
	for _, c := range n.All("Section") {
		if typeName(c.Attr("type")) == name {
			return c
		}
	}
	return nil
}

// typeName turns "ovf:DiskSection_Type" into "DiskSection".
func typeName(t string) string {
	if i := strings.LastIndexByte(t, ':'); i >= 0 {
		t = t[i+1:]
	}
	return strings.TrimSuffix(t, "_Type")
}

// systems lists the virtual systems of an envelope, collections walked.
func systems(n *Node) []*Node {
	var out []*Node
	var walk func(n *Node, depth int)
	walk = func(n *Node, depth int) {
		if depth > 8 {
			return
		}
		for _, c := range n.Children {
			name := c.Name
			if name == "Content" {
				name = typeName(c.Attr("type"))
			}
			switch name {
			case "VirtualSystem":
				out = append(out, c)
			case "VirtualSystemCollection":
				walk(c, depth+1)
			}
		}
	}
	walk(n, 0)
	return out
}

// item is one rasd Item of a VirtualHardwareSection.
type item struct {
	n        *Node
	id       string
	typ      int
	sub      string
	parent   string
	address  string
	onParent string
}

func (it item) text(name string) string { return it.n.ChildText(name) }

type controller struct {
	bus   translate.Bus
	model string
	index int
}

// parse reads descriptor b; archive says that hrefs name members of an
// OVA, which a target cannot open by path (CD-ROM images there are left
// out).
func parse(name string, b []byte, res resolver, archive bool) (*translate.Machine, error) {
	root, err := ParseXML(b)
	if err != nil {
		return nil, errf(name, "%v", err)
	}
	if root.Name != "Envelope" {
		return nil, errf(name, "root element <%s> is not an OVF <Envelope>", root.Name)
	}
	abs := name
	m := &translate.Machine{Source: abs, SourceFormat: "ovf"}

	// References and disks.
	files := map[string]*Node{}
	if refs := root.Child("References"); refs != nil {
		for _, f := range refs.All("File") {
			id := f.Attr("id")
			if id == "" {
				continue
			}
			if _, dup := files[id]; dup {
				return nil, errf(name, "References: file id %q appears twice", id)
			}
			files[id] = f
		}
	}
	disks := map[string]*Node{}
	if ds := section(root, "DiskSection"); ds != nil {
		for _, d := range ds.All("Disk") {
			if id := d.Attr("diskId"); id != "" {
				disks[id] = d
			}
		}
	}

	vss := systems(root)
	if len(vss) == 0 {
		return nil, errf(name, "no VirtualSystem in the envelope")
	}
	vs := vss[0]
	if len(vss) > 1 {
		m.Warn(WarnSystems, "the package holds %d virtual systems: only the first (%s) is read", len(vss), orDash(vs.Attr("id")))
	}
	m.Name = vs.ChildText("Name")
	if m.Name == "" {
		m.Name = vs.Attr("id")
	}
	if os := section(vs, "OperatingSystemSection"); os != nil {
		m.GuestOS = os.Attr("osType")
		if m.GuestOS == "" {
			m.GuestOS = strings.TrimSpace(os.Attr("id"))
			if m.GuestOS != "" {
				m.GuestOS = "cim:" + m.GuestOS
			}
		}
	}
	hw := section(vs, "VirtualHardwareSection")
	if hw == nil {
		return nil, errf(name, "virtual system %s has no VirtualHardwareSection", orDash(vs.Attr("id")))
	}
	m.Firmware = translate.BIOS
	for _, c := range hw.All("Config") {
		switch c.Attr("key") {
		case "firmware":
			if strings.EqualFold(c.Attr("value"), "efi") {
				m.Firmware = translate.UEFI
			}
		case "uefi.secureBoot.enabled", "bootOptions.efiSecureBootEnabled":
			if strings.EqualFold(c.Attr("value"), "true") {
				m.SecureBoot = true
			}
		case "uuid":
			if u, ok := canonicalUUID(c.Attr("value")); ok {
				m.UUID = u
			}
		}
	}
	if sys := hw.Child("System"); sys != nil && m.UUID == "" {
		// Only VirtualBox writes a UUID as the system identifier.
		if u, ok := canonicalUUID(sys.ChildText("VirtualSystemIdentifier")); ok {
			m.UUID = u
		}
	}

	var items []item
	for _, n := range hw.All("Item") {
		it := item{n: n, id: n.ChildText("InstanceID"), parent: n.ChildText("Parent"), address: n.ChildText("Address"), onParent: n.ChildText("AddressOnParent"), sub: n.ChildText("ResourceSubType")}
		if it.id == "" {
			it.id = n.ChildText("InstanceId") // OVF 0.9
		}
		it.typ, _ = strconv.Atoi(n.ChildText("ResourceType"))
		items = append(items, it)
	}
	// StorageItem (OVF 2.0) and EthernetPortItem hold disks and NICs too.
	for _, n := range append(hw.All("StorageItem"), hw.All("EthernetPortItem")...) {
		it := item{n: n, id: n.ChildText("InstanceID"), parent: n.ChildText("Parent"), address: n.ChildText("Address"), onParent: n.ChildText("AddressOnParent"), sub: n.ChildText("ResourceSubType")}
		it.typ, _ = strconv.Atoi(n.ChildText("ResourceType"))
		items = append(items, it)
	}

	ctls := map[string]controller{}
	counts := map[translate.Bus]int{}
	for _, it := range items {
		var c controller
		switch it.typ {
		case 5:
			c = controller{bus: translate.BusIDE, model: ideModel(it.sub)}
		case 6:
			c = controller{bus: translate.BusSCSI, model: scsiModel(it.sub)}
		case 20:
			sub := strings.ToLower(it.sub)
			switch {
			case strings.Contains(sub, "nvme"):
				c = controller{bus: translate.BusNVMe, model: "nvme"}
			case strings.Contains(sub, "nvdimm"):
				continue
			default:
				c = controller{bus: translate.BusSATA, model: "ahci"}
			}
		default:
			continue
		}
		if it.id == "" {
			continue
		}
		if a, err := strconv.Atoi(it.address); err == nil && a >= 0 && a < 64 {
			c.index = a
		} else {
			c.index = counts[c.bus]
		}
		counts[c.bus]++
		ctls[it.id] = c
	}

	cpuSet, memSet := false, false
	for _, it := range items {
		switch it.typ {
		case 3:
			v, err := strconv.ParseInt(it.text("VirtualQuantity"), 10, 64)
			if err != nil || v < 1 || v > 4096 {
				m.Warn(WarnBadNumber, "CPU count %q unreadable: %d used", it.text("VirtualQuantity"), DefaultCPUs)
				continue
			}
			m.CPUs, cpuSet = int(v), true
			if c, err := strconv.Atoi(it.text("CoresPerSocket")); err == nil && c > 0 && m.CPUs%c == 0 {
				m.CoresPerSocket = c
			}
		case 4:
			mib, ok := quantityMiB(it.text("VirtualQuantity"), it.text("AllocationUnits"))
			if !ok {
				m.Warn(WarnBadNumber, "memory %q %q unreadable: %d MiB used", it.text("VirtualQuantity"), it.text("AllocationUnits"), DefaultMemoryMiB)
				continue
			}
			m.MemoryMiB, memSet = mib, true
		case 10:
			n := translate.NIC{Model: nicModel(it.sub), Network: it.text("Connection"), Type: "network"}
			if a := it.address; a != "" {
				mac, ok := canonicalMAC(a)
				if ok {
					n.MAC = mac
				} else {
					m.Warn(WarnBadMAC, "NIC %d MAC address %q unreadable: left to the target", len(m.NICs), a)
				}
			}
			m.NICs = append(m.NICs, n)
		case 14:
			m.Warn(WarnDevice, "floppy drive %s is not carried over", orDash(it.text("ElementName")))
		case 15, 16:
			c, ok := ctls[it.parent]
			if !ok {
				m.Warn(WarnUnknownCtl, "CD-ROM %s is on no known controller: left out", orDash(it.text("ElementName")))
				continue
			}
			cd := translate.CDROM{Bus: c.bus, Controller: c.model, ControllerIndex: c.index, Unit: atoi(it.onParent)}
			if hr := it.text("HostResource"); hr != "" {
				if id, ok := strings.CutPrefix(strings.TrimPrefix(hr, "ovf:"), "/file/"); ok {
					if f := files[id]; f != nil {
						p, _, ok := res(f.Attr("href"))
						if ok && archive {
							m.Warn(WarnCDROMFile, "CD-ROM image %s is inside the archive, where the target cannot open it: the drive is left empty", f.Attr("href"))
						} else if ok {
							cd.Path = p
						} else {
							m.Warn(WarnCDROMFile, "CD-ROM image %s is not in the package: the drive is left empty", f.Attr("href"))
						}
					}
				}
			}
			m.CDROMs = append(m.CDROMs, cd)
		case 17:
			d, err := diskItem(name, it, ctls, disks, files, res, m)
			if err != nil {
				return nil, err
			}
			if d != nil {
				m.Disks = append(m.Disks, *d)
			}
		}
	}
	if vb := vs.Child("Machine"); vb != nil {
		vboxMachine(vb, m)
	}
	if !cpuSet && m.CPUs == 0 {
		m.CPUs = DefaultCPUs
	}
	if !memSet && m.MemoryMiB == 0 {
		m.MemoryMiB = DefaultMemoryMiB
	}
	if m.Name == "" {
		m.Name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	}
	if len(m.Disks) == 0 {
		return nil, errf(name, "virtual system %s has no disk", orDash(m.Name))
	}
	return m, nil
}

// diskItem resolves a disk Item through DiskSection and References.
func diskItem(name string, it item, ctls map[string]controller, disks, files map[string]*Node, res resolver, m *translate.Machine) (*translate.Disk, error) {
	hr := strings.TrimPrefix(it.text("HostResource"), "ovf:")
	var id string
	var f, dd *Node
	if fid, ok := strings.CutPrefix(hr, "/file/"); ok {
		// A disk may name its file directly, without a DiskSection entry.
		id, f = fid, files[fid]
		if f == nil {
			return nil, errf(name, "disk item %s names file %q, which References lacks", orDash(it.id), fid)
		}
	} else {
		did, ok := strings.CutPrefix(hr, "/disk/")
		if !ok {
			return nil, errf(name, "disk item %s: host resource %q is not ovf:/disk/ID", orDash(it.id), it.text("HostResource"))
		}
		id, dd = did, disks[did]
		if dd == nil {
			return nil, errf(name, "disk item %s names disk %q, which DiskSection lacks", orDash(it.id), id)
		}
		ref := dd.Attr("fileRef")
		if ref == "" {
			return nil, errf(name, "disk %s has no file: blank disks to be created are not supported: %w", id, ErrUnsupported)
		}
		if dd.Attr("parentRef") != "" {
			return nil, errf(name, "disk %s is a delta of disk %s: disk parent references are not supported: %w", id, dd.Attr("parentRef"), ErrUnsupported)
		}
		f = files[ref]
		if f == nil {
			return nil, errf(name, "disk %s names file %q, which References lacks", id, ref)
		}
	}
	href := f.Attr("href")
	if c := f.Attr("compression"); c != "" && !strings.EqualFold(c, "identity") {
		return nil, errf(name, "disk %s (%s): %s-compressed disk references are not supported: %w", id, href, c, ErrUnsupported)
	}
	if f.Attr("chunkSize") != "" {
		return nil, errf(name, "disk %s (%s): chunked disk references (ovf:chunkSize) are not supported: %w", id, href, ErrUnsupported)
	}
	if _, err := cleanHref(href); err != nil {
		return nil, errf(name, "disk %s: %w", id, err)
	}
	p, open, ok := res(href)
	if !ok {
		return nil, errf(name, "disk %s: file %s is missing", id, href)
	}
	d := &translate.Disk{Path: p, Open: open, Format: diskFormat(dd.Attr("format")), Unit: atoi(it.onParent)}
	if c, ok := ctls[it.parent]; ok {
		d.Bus, d.Controller, d.ControllerIndex = c.bus, c.model, c.index
	} else {
		m.Warn(WarnUnknownCtl, "disk %s is on no known controller: SCSI assumed", id)
		d.Bus, d.Controller = translate.BusSCSI, "lsilogic"
	}
	if v, ok := quantityBytes(dd.Attr("capacity"), dd.Attr("capacityAllocationUnits")); ok && dd != nil {
		d.Size = v
	}
	return d, nil
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

// diskFormat reads the format a source OVF's ovf:format URI names. It
// keeps its own table rather than the format registry's URIs: producers
// write many variants of them (VMware's #streamOptimized, #sparse,
// #monolithicSparse, other vendors' pages), so it matches words, not the
// one URI vmfs writes; and it is a hint only, since every disk is probed.
func diskFormat(f string) string {
	f = strings.ToLower(f)
	switch {
	case strings.Contains(f, "vmdk"):
		return "vmdk"
	case strings.Contains(f, "vhd"):
		return "vhd"
	case strings.Contains(f, "qcow"):
		return "qcow2"
	case strings.Contains(f, "vdi"):
		return "vdi"
	}
	return ""
}

func ideModel(sub string) string {
	switch s := strings.ToLower(sub); s {
	case "piix3", "piix4", "ich6":
		return s
	}
	return "piix4"
}

func scsiModel(sub string) string {
	switch s := strings.ToLower(sub); s {
	case "lsilogic", "buslogic":
		return s
	case "lsilogicsas":
		return "lsisas1068"
	case "virtualscsi":
		return "pvscsi"
	case "virtio-scsi", "virtioscsi":
		return "virtio-scsi"
	}
	return "lsilogic"
}

func nicModel(sub string) string {
	switch s := strings.ToLower(sub); s {
	case "e1000", "e1000e", "vmxnet3", "virtio":
		return s
	case "vmxnet", "vmxnet2":
		return "vmxnet3"
	case "pcnet32", "am79c970a", "am79c973":
		return "pcnet"
	case "82540em", "82543gc", "82545em":
		return "e1000"
	case "":
		return ""
	}
	return strings.ToLower(sub)
}

// unitShift reads an allocation unit ("byte * 2^20", "MegaBytes", "MB",
// "KiloBytes", "GigaBytes", "byte") as a multiplier.
func unitMultiplier(u string) (int64, bool) {
	s := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(u), " ", ""))
	switch s {
	case "", "byte", "bytes":
		return 1, true
	case "kilobytes", "kb", "kib":
		return 1 << 10, true
	case "megabytes", "mb", "mib":
		return 1 << 20, true
	case "gigabytes", "gb", "gib":
		return 1 << 30, true
	case "terabytes", "tb", "tib":
		return 1 << 40, true
	}
	if rest, ok := strings.CutPrefix(s, "byte*"); ok {
		var base, exp int64
		switch {
		case strings.HasPrefix(rest, "2^"):
			base = 2
		case strings.HasPrefix(rest, "10^"):
			base = 10
		default:
			return 0, false
		}
		_, e, _ := strings.Cut(rest, "^")
		v, err := strconv.ParseInt(e, 10, 64)
		if err != nil || v < 0 || v > 50 {
			return 0, false
		}
		exp = v
		m := int64(1)
		for i := int64(0); i < exp; i++ {
			m *= base
			if m > 1<<50 {
				return 0, false
			}
		}
		return m, true
	}
	return 0, false
}

func quantityBytes(q, unit string) (int64, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(q), 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	mul, ok := unitMultiplier(unit)
	if !ok || (v > 0 && v > (1<<62)/mul) {
		return 0, false
	}
	return v * mul, true
}

// quantityMiB reads a memory quantity; without a unit OVF means MiB.
func quantityMiB(q, unit string) (int64, bool) {
	if strings.TrimSpace(unit) == "" {
		unit = "byte * 2^20"
	}
	b, ok := quantityBytes(q, unit)
	if !ok || b < 1<<20 {
		return 0, false
	}
	return b >> 20, true
}

// canonicalMAC accepts aa:bb:cc:dd:ee:ff, aa-bb-..., or 12 hex digits.
func canonicalMAC(s string) (string, bool) {
	h := strings.ToLower(strings.NewReplacer(":", "", "-", "", ".", "").Replace(strings.TrimSpace(s)))
	if len(h) != 12 {
		return "", false
	}
	for i := 0; i < 12; i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	var parts []string
	for i := 0; i < 12; i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":"), true
}

// canonicalUUID accepts a UUID with or without braces and dashes.
func canonicalUUID(s string) (string, bool) {
	h := strings.ToLower(strings.NewReplacer("{", "", "}", "", "-", "", " ", "").Replace(strings.TrimSpace(s)))
	if len(h) != 32 {
		return "", false
	}
	for i := 0; i < 32; i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], true
}

// vboxMachine reads what VirtualBox's embedded <vbox:Machine> states
// better than the rasd items: firmware, and the adapters' MACs and
// attachments (in adapter order, which is the items' NIC order).
func vboxMachine(vb *Node, m *translate.Machine) {
	hw := vb.Child("Hardware")
	if fw := hw.Child("Firmware"); fw != nil && strings.HasPrefix(strings.ToUpper(fw.Attr("type")), "EFI") {
		m.Firmware = translate.UEFI
	}
	if n := vb.Attr("name"); n != "" && m.Name == "" {
		m.Name = n
	}
	var ads []*Node
	for _, a := range hw.Child("Network").All("Adapter") {
		if !strings.EqualFold(a.Attr("enabled"), "false") {
			ads = append(ads, a)
		}
	}
	if len(ads) != len(m.NICs) {
		return
	}
	for i, a := range ads {
		if mac, ok := canonicalMAC(a.Attr("MACAddress")); ok {
			m.NICs[i].MAC = mac
		}
		switch {
		case a.Child("NAT") != nil:
			m.NICs[i].Type = "nat"
		case a.Child("BridgedInterface") != nil:
			m.NICs[i].Type = "bridge"
		case a.Child("HostOnlyInterface") != nil:
			m.NICs[i].Type = "hostonly"
		}
	}
}
