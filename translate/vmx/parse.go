// Package vmx reads VMware .vmx descriptors into the neutral machine model
// and writes them back (the "vmware" target).
//
// A .vmx is a flat list of `key = "value"` lines. Keys are case-insensitive;
// values are quoted, with `|XX` hex escapes for bytes that cannot appear
// inside quotes (`|22` is a quote, `|7C` a bar, `|0A` a newline); the file's
// character set is named by its `.encoding` line. Devices are namespaces of
// keys (`scsi0:1.fileName`, `ethernet0.virtualDev` ...) that count only when
// their `present` key is TRUE.
package vmx

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/transform"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
)

// MaxSize bounds the size of a .vmx file that Parse reads: real ones are a
// few KiB (encrypted ones some tens of KiB).
const MaxSize = 4 << 20

// Warning codes of the parser. They are stable.
const (
	WarnEncoding         = "VMX_ENCODING"           // unknown .encoding, or bytes invalid in it
	WarnBadLine          = "VMX_BAD_LINE"           // a line that is not key = value
	WarnCDROMHost        = "VMX_CDROM_HOST"         // host CD-ROM drive: empty drive
	WarnCDROMMissing     = "VMX_CDROM_MISSING"      // ISO file not found: empty drive
	WarnCDROMDisconnect  = "VMX_CDROM_DISCONNECTED" // not connected at power on: empty drive
	WarnDeviceSkipped    = "VMX_DEVICE_SKIPPED"     // passthrough or unknown device type
	WarnControllerAbsent = "VMX_CONTROLLER_ABSENT"  // device on a controller marked absent
	WarnISOAsDisk        = "VMX_ISO_NO_DEVICETYPE"  // .iso without deviceType read as a CD-ROM
	WarnBadUUID          = "VMX_BAD_UUID"           // uuid.bios not 16 bytes of hex
	WarnBadMAC           = "VMX_BAD_MAC"            // MAC address not 6 hex bytes: left to the target
	WarnBadNumber        = "VMX_BAD_NUMBER"         // memsize/numvcpus not a positive number
	WarnNoMemSize        = "VMX_NO_MEMSIZE"         // memsize missing: default used
	WarnSerialDropped    = "VMX_SERIAL_DROPPED"     // thinprint and other serial ports not carried
	WarnTPM              = "VMX_TPM_DROPPED"        // virtual TPM not carried over
	WarnEncrypted        = "VMX_ENCRYPTED_PARTIAL"  // partly encrypted VM (TPM/nvram keys lost)
)

// DefaultMemoryMiB is used when a .vmx states no memsize (VMware itself
// refuses to start such a VM; 1 GiB boots any guest it could have held).
const DefaultMemoryMiB = 1024

// Parse reads the .vmx at path. Whether its disks exist is
// translate.CheckDisks's to say (source.Open asks it; inspect does not).
// A CD-ROM image that is missing becomes an empty drive with a warning.
func Parse(path string) (*translate.Machine, error) { return ParseIn(path, nil) }

// ParseIn is Parse of a .vmx among env's files: a remote source's .vmx,
// .vmsd and CD-ROM images are looked for in its remote tree (whose
// folders are not listed: lock files are not looked for there).
func ParseIn(path string, env *layouts.Env) (*translate.Machine, error) {
	b, err := translate.ReadDescriptorIn(env, path, MaxSize, "a .vmx")
	if err != nil {
		return nil, translate.DescriptorError("vmx", path, err)
	}
	m, err := ParseBytes(path, b)
	if err != nil {
		return nil, err
	}
	if !env.IsRemote() {
		m.Locks = locks(path, m)
	}
	m.Snapshots = snapshots(path, env)
	for i := range m.CDROMs {
		c := &m.CDROMs[i]
		if c.Path == "" {
			continue
		}
		if _, err := env.Stat(c.Path); err != nil {
			m.Warn(WarnCDROMMissing, "CD-ROM image %s on %s%d:%d is not here: the drive is left empty", c.Path, c.Bus, c.ControllerIndex, c.Unit)
			c.Path = ""
		}
	}
	return m, nil
}

// ParseBytes parses the contents b of a .vmx named name. Relative disk paths
// are resolved against name's directory; no file is opened or checked.
func ParseBytes(name string, b []byte) (*translate.Machine, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("vmx: %s: %d bytes is too large for a .vmx (limit %d)", name, len(b), MaxSize)
	}
	if err := notVMX(name, b); err != nil {
		return nil, err
	}
	m := &translate.Machine{Source: name, SourceFormat: "vmx"}
	kv, err := parseKV(name, b, m)
	if err != nil {
		return nil, err
	}
	if err := build(name, kv, m); err != nil {
		return nil, err
	}
	return m, nil
}

// notVMX recognizes the files users most often give instead of a .vmx.
func notVMX(name string, b []byte) error {
	head := b[:min(len(b), 512)]
	switch {
	case bytes.HasPrefix(head, []byte("KDMV")), bytes.HasPrefix(head, []byte("COWD")),
		bytes.Contains(head, []byte("# Disk DescriptorFile")),
		strings.EqualFold(filepath.Ext(name), ".vmdk"):
		return fmt.Errorf("vmx: %s: is a VMDK disk, not a .vmx descriptor (give the .vmx, or the disk alone as a bare disk source)", name)
	case strings.EqualFold(filepath.Ext(name), ".vmsd"), strings.EqualFold(filepath.Ext(name), ".vmxf"):
		return fmt.Errorf("vmx: %s: is a VMware %s metadata file, not a .vmx descriptor", name, filepath.Ext(name))
	}
	if bytes.IndexByte(head, 0) >= 0 {
		return fmt.Errorf("vmx: %s: binary data, not a .vmx descriptor", name)
	}
	return nil
}

// entry is a key, lowercased, and its decoded value.
type entry struct{ key, val string }

// entries holds the keys of a .vmx sorted, each once: a sorted slice
// rather than a map, so that a file of a million short lines costs a small
// multiple of its size.
type entries []entry

func (e entries) lookup(k string) (string, bool) {
	i, ok := slices.BinarySearchFunc(e, k, func(a entry, k string) int { return strings.Compare(a.key, k) })
	if !ok {
		return "", false
	}
	return e[i].val, true
}

func (e entries) get(k string) string { v, _ := e.lookup(k); return v }

func (e entries) has(k string) bool { _, ok := e.lookup(k); return ok }

// isTrue reads VMware booleans: TRUE/true/yes/1.
func isTrue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "1", "on":
		return true
	}
	return false
}

func isFalse(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "false", "no", "0", "off":
		return true
	}
	return false
}

// parseKV splits b into keys and values, unescapes and decodes the values
// into UTF-8. Later keys win over earlier ones.
//
// Keys and values are slices of two copies of the text (one with its ASCII
// letters lowercased for the keys); only values that unescaping or
// decoding changes, and keys that are not ASCII, are allocated on their
// own.
func parseKV(name string, b []byte, m *translate.Machine) (entries, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	text := string(b)
	lower := asciiLower(b)
	count := 0
	for rest := text; rest != ""; {
		var line string
		line, rest = cutLine(rest)
		if line = strings.TrimSpace(line); line != "" && line[0] != '#' && strings.IndexByte(line, '=') > 0 {
			count++
		}
	}
	kv := make(entries, 0, count)
	encName := ""
	badLines := 0
	for pos := 0; pos < len(text); {
		end := len(text)
		if i := strings.IndexByte(text[pos:], '\n'); i >= 0 {
			end = pos + i
		}
		lo, hi := trimSpan(text, pos, end)
		pos = end + 1
		if lo == hi || text[lo] == '#' {
			continue
		}
		eq := strings.IndexByte(text[lo:hi], '=')
		if eq <= 0 {
			badLines++
			continue
		}
		klo, khi := trimSpan(text, lo, lo+eq)
		key := lower[klo:khi]
		if !isASCIIString(key) {
			key = strings.ToLower(text[klo:khi])
		}
		val := strings.TrimSpace(text[lo+eq+1 : hi])
		if len(val) > 0 && val[0] == '"' {
			if j := strings.IndexByte(val[1:], '"'); j >= 0 {
				val = val[1 : 1+j]
			} else {
				val = val[1:] // unterminated: take the rest of the line
			}
		} else if j := strings.IndexAny(val, " \t#"); j >= 0 {
			val = val[:j]
		}
		val = unescape(val)
		if key == ".encoding" {
			encName = val
			continue
		}
		kv = append(kv, entry{key, val})
	}
	if badLines > 0 {
		m.Warn(WarnBadLine, "%s: %d lines are not key = value and were ignored", filepath.Base(name), badLines)
	}
	dec, label := decoderFor(encName)
	if dec == nil {
		m.Warn(WarnEncoding, "%s: unknown .encoding %q: read as UTF-8", filepath.Base(name), encName)
	}
	utf8In := dec == nil || label == "UTF-8"
	invalid := 0
	var buf []byte
	for i := range kv {
		s := kv[i].val
		if !utf8In && !isASCIIString(s) {
			out, err := decode(dec, &buf, s)
			if err != nil {
				invalid++
				s = strings.ToValidUTF8(s, "\uFFFD")
			} else {
				s = out
			}
		}
		if !utf8.ValidString(s) {
			invalid++
			s = strings.ToValidUTF8(s, "\uFFFD")
		}
		kv[i].val = s
	}
	if invalid > 0 {
		m.Warn(WarnEncoding, "%s: %d values are not valid %s: bad bytes replaced", filepath.Base(name), invalid, label)
	}
	// Sort by key, the lines of one key in file order, and keep the last.
	slices.SortStableFunc(kv, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	out := kv[:0]
	for i, e := range kv {
		if i+1 < len(kv) && kv[i+1].key == e.key {
			continue
		}
		out = append(out, e)
	}
	clear(kv[len(out):])
	return out, nil
}

// cutLine splits the first line of s from the rest.
func cutLine(s string) (line, rest string) {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// trimSpan narrows s[lo:hi] to its text without leading and trailing
// white space (as strings.TrimSpace), as offsets.
func trimSpan(s string, lo, hi int) (int, int) {
	t := strings.TrimLeftFunc(s[lo:hi], unicode.IsSpace)
	lo = hi - len(t)
	return lo, lo + len(strings.TrimRightFunc(t, unicode.IsSpace))
}

// asciiLower is b with its ASCII capitals lowercased, and nothing else
// changed: the offsets of the text are the offsets of the copy.
func asciiLower(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// decode decodes s with dec through the reused buffer *buf: only the
// result is allocated.
func decode(dec *encoding.Decoder, buf *[]byte, s string) (string, error) {
	if need := 4*len(s) + 16; cap(*buf) < need {
		*buf = make([]byte, max(need, 2*cap(*buf)))
	}
	dec.Reset()
	dst := (*buf)[:cap(*buf)]
	n, _, err := dec.Transform(dst, []byte(s), true)
	if err != nil {
		if errors.Is(err, transform.ErrShortDst) {
			// Not expected from a character set decoder: let the
			// library size the result.
			return dec.String(s)
		}
		return "", err
	}
	return string(dst[:n]), nil
}

func isASCIIString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// unescape replaces VMware's |XX hex escapes with their bytes.
func unescape(v string) string {
	if strings.IndexByte(v, '|') < 0 {
		return v
	}
	var out strings.Builder
	out.Grow(len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '|' && i+2 < len(v) {
			if h, ok := hexByte(v[i+1], v[i+2]); ok {
				out.WriteByte(h)
				i += 2
				continue
			}
		}
		out.WriteByte(v[i])
	}
	return out.String()
}

func hexByte(a, b byte) (byte, bool) {
	x, ok1 := hexNibble(a)
	y, ok2 := hexNibble(b)
	return x<<4 | y, ok1 && ok2
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// vmwareEncodings are the names VMware writes that the WHATWG and IANA
// indexes do not know.
var vmwareEncodings = map[string]encoding.Encoding{
	"windows-949-2000": korean.EUCKR,
	"windows-949":      korean.EUCKR,
	"windows-936-2000": simplifiedchinese.GBK,
	"windows-936":      simplifiedchinese.GBK,
	"windows-950-2000": traditionalchinese.Big5,
	"windows-950":      traditionalchinese.Big5,
	"windows-932-2000": japanese.ShiftJIS,
	"windows-932":      japanese.ShiftJIS,
	"gb18030":          simplifiedchinese.GB18030,
	"iso-8859-1":       charmap.Windows1252,
}

// decoderFor returns the decoder of a .encoding name, nil when unknown; an
// empty name means UTF-8 (files written before .encoding existed are ASCII).
func decoderFor(name string) (*encoding.Decoder, string) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" || n == "utf-8" || n == "utf8" {
		return encoding.Nop.NewDecoder(), "UTF-8"
	}
	if e, ok := vmwareEncodings[n]; ok {
		return e.NewDecoder(), name
	}
	if e, err := htmlindex.Get(n); err == nil && e != nil {
		return e.NewDecoder(), name
	}
	if e, err := ianaindex.IANA.Encoding(n); err == nil && e != nil {
		return e.NewDecoder(), name
	}
	return nil, "UTF-8"
}

// slot is a device namespace "bus<ctl>:<unit>".
type slot struct {
	bus  translate.Bus
	ctl  int
	unit int
	ns   string // "scsi0:1"
}

var busRank = map[translate.Bus]int{translate.BusSCSI: 0, translate.BusSATA: 1, translate.BusNVMe: 2, translate.BusIDE: 3}

// build turns the keys into the machine.
func build(name string, kv entries, m *translate.Machine) error {
	base := filepath.Base(name)
	dir := filepath.Dir(name)

	if kv.has("encryption.data") || kv.has("encryption.keysafe") {
		if !hasAnyDevice(kv) {
			return fmt.Errorf("vmx: %s: encrypted VM: its configuration is sealed in encryption.data and is not supported", name)
		}
		m.Warn(WarnEncrypted, "%s: partly encrypted VM (%s): its encrypted parts (TPM, nvram) are not carried over", base, orDash(kv.get("vmx.encryptiontype")))
		m.Encrypted = "VMware VM encryption (" + orDash(kv.get("vmx.encryptiontype")) + "; encryption.keySafe in the .vmx)"
	}

	m.Name = kv.get("displayname")
	if m.Name == "" {
		m.Name = strings.TrimSuffix(base, filepath.Ext(base))
	}
	if u := kv.get("uuid.bios"); u != "" {
		if c, ok := canonicalUUID(u); ok {
			m.UUID = c
		} else {
			m.Warn(WarnBadUUID, "uuid.bios %q is not a UUID: the target will generate one", u)
		}
	}
	mem := kv.get("memsize")
	switch n, err := strconv.ParseInt(strings.TrimSpace(mem), 10, 64); {
	case mem == "":
		m.MemoryMiB = DefaultMemoryMiB
		m.Warn(WarnNoMemSize, "no memsize: %d MiB assumed", DefaultMemoryMiB)
	case err != nil || n <= 0 || n > 1<<24:
		m.MemoryMiB = DefaultMemoryMiB
		m.Warn(WarnBadNumber, "memsize %q is not a memory size in MiB: %d MiB assumed", mem, DefaultMemoryMiB)
	default:
		m.MemoryMiB = n
	}
	m.CPUs = 1
	if v := kv.get("numvcpus"); v != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 && n <= 4096 {
			m.CPUs = n
		} else {
			m.Warn(WarnBadNumber, "numvcpus %q is not a CPU count: 1 assumed", v)
		}
	}
	if v := kv.get("cpuid.corespersocket"); v != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 && n <= m.CPUs && m.CPUs%n == 0 {
			m.CoresPerSocket = n
		} else {
			m.Warn(WarnBadNumber, "cpuid.coresPerSocket %q does not divide %d vCPUs: ignored", v, m.CPUs)
		}
	}
	m.Firmware = translate.BIOS
	if strings.EqualFold(strings.TrimSpace(kv.get("firmware")), "efi") {
		m.Firmware = translate.UEFI
		m.SecureBoot = isTrue(kv.get("uefi.secureboot.enabled"))
	}
	m.GuestOS = kv.get("guestos")
	m.OSInfo = OSInfo(m.GuestOS)
	if !isFalse(kv.get("svga.present")) {
		m.Video = "svga"
	}
	if isTrue(kv.get("vtpm.present")) {
		m.TPM = true
		m.Warn(WarnTPM, "the virtual TPM is not carried over (its state is sealed by VMware)")
	}

	// Disks and CD-ROMs, found from their namespaces.
	seen := map[string]bool{}
	var slots []slot
	for _, e := range kv {
		s, ok := parseSlot(e.key)
		if !ok || seen[s.ns] {
			continue
		}
		seen[s.ns] = true
		slots = append(slots, s)
	}
	sort.Slice(slots, func(i, j int) bool {
		a, b := slots[i], slots[j]
		if busRank[a.bus] != busRank[b.bus] {
			return busRank[a.bus] < busRank[b.bus]
		}
		if a.ctl != b.ctl {
			return a.ctl < b.ctl
		}
		return a.unit < b.unit
	})
	for _, s := range slots {
		if !isTrue(kv.get(s.ns + ".present")) {
			continue
		}
		ctlNS := fmt.Sprintf("%s%d", s.bus, s.ctl)
		if s.bus != translate.BusIDE && isFalse(kv.get(ctlNS+".present")) {
			m.Warn(WarnControllerAbsent, "%s is on controller %s, which is not present: skipped", s.ns, ctlNS)
			continue
		}
		file := kv.get(s.ns + ".filename")
		dt := strings.ToLower(strings.TrimSpace(kv.get(s.ns + ".devicetype")))
		if dt == "" && strings.EqualFold(filepath.Ext(file), ".iso") {
			m.Warn(WarnISOAsDisk, "%s has no deviceType and names the image %s: read as a CD-ROM", s.ns, file)
			dt = "cdrom-image"
		}
		switch dt {
		case "", "disk", "scsi-harddisk", "ata-harddisk", "plaindisk", "sparse":
			if file == "" {
				m.Warn(WarnDeviceSkipped, "%s is a disk without a fileName: skipped", s.ns)
				continue
			}
			m.Disks = append(m.Disks, translate.Disk{
				Path:            resolve(dir, file),
				Format:          "vmdk",
				Bus:             s.bus,
				Controller:      controllerModel(kv, s.bus, s.ctl),
				ControllerIndex: s.ctl,
				Unit:            s.unit,
			})
		case "cdrom-image", "cdrom-raw", "atapi-cdrom":
			c := translate.CDROM{
				Bus:             s.bus,
				Controller:      controllerModel(kv, s.bus, s.ctl),
				ControllerIndex: s.ctl,
				Unit:            s.unit,
			}
			switch {
			case dt != "cdrom-image":
				if f := strings.TrimSpace(file); f != "" && !strings.EqualFold(f, "auto detect") && f != "emptyBackingString" {
					m.Warn(WarnCDROMHost, "%s is the host drive %s: the drive is left empty", s.ns, f)
				}
			case file == "" || file == "emptyBackingString":
			case isFalse(kv.get(s.ns + ".startconnected")):
				m.Warn(WarnCDROMDisconnect, "%s (%s) is not connected at power on: the drive is left empty", s.ns, file)
			default:
				c.Path = resolve(dir, file)
			}
			m.CDROMs = append(m.CDROMs, c)
		default:
			m.Warn(WarnDeviceSkipped, "%s has device type %q, which is not carried over", s.ns, dt)
		}
	}
	// bios.hddOrder ("sata0:0,scsi0:1") puts the BIOS's first hard disks
	// first.
	if order := kv.get("bios.hddorder"); order != "" {
		rank := map[string]int{}
		for i, ns := range strings.Split(strings.ToLower(order), ",") {
			if _, ok := rank[strings.TrimSpace(ns)]; !ok {
				rank[strings.TrimSpace(ns)] = i
			}
		}
		at := func(d translate.Disk) int {
			if r, ok := rank[fmt.Sprintf("%s%d:%d", d.Bus, d.ControllerIndex, d.Unit)]; ok {
				return r
			}
			return len(rank)
		}
		sort.SliceStable(m.Disks, func(i, j int) bool { return at(m.Disks[i]) < at(m.Disks[j]) })
	}
	if len(m.Disks) == 0 {
		return fmt.Errorf("vmx: %s: names no hard disk (no present scsiX:Y, sataX:Y, ideX:Y or nvmeX:Y disk)", name)
	}

	// NICs and serial ports, by index.
	for _, i := range indexes(kv, "ethernet") {
		ns := "ethernet" + strconv.Itoa(i)
		if !isTrue(kv.get(ns + ".present")) {
			continue
		}
		n := translate.NIC{Model: strings.ToLower(strings.TrimSpace(kv.get(ns + ".virtualdev")))}
		at := strings.ToLower(kv.get(ns + ".addresstype"))
		mac := kv.get(ns + ".generatedaddress")
		if at == "static" || mac == "" {
			if a := kv.get(ns + ".address"); a != "" {
				mac = a
			}
		}
		if mac != "" {
			if c, ok := canonicalMAC(mac); ok && c != "00:00:00:00:00:00" {
				n.MAC = c
			} else {
				m.Warn(WarnBadMAC, "%s address %q is not a usable MAC: the target will generate one", ns, mac)
			}
		}
		n.Network = kv.get(ns + ".networkname")
		switch ct := strings.ToLower(kv.get(ns + ".connectiontype")); ct {
		case "bridged":
			n.Type = "bridge"
		case "nat", "hostonly", "custom":
			n.Type = ct
			if ct == "custom" && n.Network == "" {
				n.Network = kv.get(ns + ".vnet")
			}
		case "":
			if n.Network != "" {
				n.Type = "network"
			} else {
				n.Type = "bridge"
			}
		default:
			n.Type = ct
		}
		m.NICs = append(m.NICs, n)
	}
	for _, i := range indexes(kv, "serial") {
		ns := "serial" + strconv.Itoa(i)
		if !isTrue(kv.get(ns + ".present")) {
			continue
		}
		ft := strings.ToLower(kv.get(ns + ".filetype"))
		fn := kv.get(ns + ".filename")
		switch ft {
		case "file":
			m.Serials = append(m.Serials, translate.Serial{Type: "file", Path: resolve(dir, fn)})
		case "pipe":
			m.Serials = append(m.Serials, translate.Serial{Type: "pipe", Path: fn})
		case "device":
			m.Serials = append(m.Serials, translate.Serial{Type: "dev", Path: fn})
		case "network":
			m.Serials = append(m.Serials, translate.Serial{Type: "tcp", Path: fn})
		default:
			m.Warn(WarnSerialDropped, "%s (%s) is not carried over", ns, orDash(ft))
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// hasAnyDevice says whether the clear part of an encrypted .vmx describes
// devices (Workstation "partial" encryption) or nothing at all.
func hasAnyDevice(kv entries) bool {
	for _, e := range kv {
		if _, ok := parseSlot(e.key); ok {
			return true
		}
	}
	return false
}

// parseSlot recognizes "<bus><n>:<m>.<key>".
func parseSlot(k string) (slot, bool) {
	var bus translate.Bus
	var rest string
	for _, b := range []translate.Bus{translate.BusSCSI, translate.BusSATA, translate.BusIDE, translate.BusNVMe} {
		if strings.HasPrefix(k, string(b)) {
			bus, rest = b, k[len(b):]
			break
		}
	}
	if bus == "" {
		return slot{}, false
	}
	colon := strings.IndexByte(rest, ':')
	dot := strings.IndexByte(rest, '.')
	if colon <= 0 || dot <= colon+1 {
		return slot{}, false
	}
	ctl, err1 := strconv.Atoi(rest[:colon])
	unit, err2 := strconv.Atoi(rest[colon+1 : dot])
	if err1 != nil || err2 != nil || ctl < 0 || unit < 0 || ctl > 64 || unit > 256 {
		return slot{}, false
	}
	return slot{bus: bus, ctl: ctl, unit: unit, ns: k[:len(bus)+dot]}, true
}

// indexes returns the sorted N of the "<prefix>N.*" keys.
func indexes(kv entries, prefix string) []int {
	set := map[int]bool{}
	for _, e := range kv {
		k := e.key
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		rest := k[len(prefix):]
		dot := strings.IndexByte(rest, '.')
		if dot <= 0 {
			continue
		}
		if n, err := strconv.Atoi(rest[:dot]); err == nil && n >= 0 && n < 1000 {
			set[n] = true
		}
	}
	out := make([]int, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// controllerModel is the source controller's model: scsiN.virtualDev for
// SCSI ("" when not stated), the fixed emulated chip for the other buses.
func controllerModel(kv entries, bus translate.Bus, ctl int) string {
	switch bus {
	case translate.BusSCSI:
		return strings.ToLower(strings.TrimSpace(kv.get(fmt.Sprintf("scsi%d.virtualdev", ctl))))
	case translate.BusSATA:
		return "ahci"
	case translate.BusIDE:
		return "piix4"
	case translate.BusNVMe:
		return "nvme"
	}
	return ""
}

// resolve makes a .vmx file reference a path: absolute POSIX paths (ESXi
// /vmfs/volumes/...) and Windows paths are kept as written, relative ones
// are joined to the .vmx directory.
func resolve(dir, file string) string {
	if file == "" {
		return ""
	}
	if filepath.IsAbs(file) || isWindowsPath(file) {
		return file
	}
	return filepath.Join(dir, file)
}

func isWindowsPath(p string) bool {
	if strings.HasPrefix(p, `\\`) {
		return true
	}
	return len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/') &&
		(('a' <= p[0] && p[0] <= 'z') || ('A' <= p[0] && p[0] <= 'Z'))
}

// canonicalUUID turns VMware's "56 4d 96 af e6 46 bd 86-5c 4d 65 4e 77 36
// ef 31" into "564d96af-e646-bd86-5c4d-654e7736ef31".
func canonicalUUID(s string) (string, bool) {
	var h []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-' || c == '\t':
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
			h = append(h, c)
		case 'A' <= c && c <= 'F':
			h = append(h, c+'a'-'A')
		default:
			return "", false
		}
	}
	if len(h) != 32 {
		return "", false
	}
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32]), true
}

// canonicalMAC lowercases a MAC written aa:bb:cc:dd:ee:ff or with dashes.
func canonicalMAC(s string) (string, bool) {
	s = strings.TrimSpace(s)
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == '-' })
	if len(parts) != 6 {
		return "", false
	}
	out := make([]string, 6)
	for i, p := range parts {
		if len(p) != 2 {
			return "", false
		}
		if _, ok := hexByte(p[0], p[1]); !ok {
			return "", false
		}
		out[i] = strings.ToLower(p)
	}
	return strings.Join(out, ":"), true
}
