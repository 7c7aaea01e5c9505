// Package source opens whatever the user names as the source VM: a
// descriptor (.vmx, libvirt domain XML, and, once their parsers land, .ovf,
// .ova, .vbox) or a bare disk image, and returns the neutral machine.
package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/bootfacts"
	"github.com/vmfs/vmfs/layouts/probe"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/libvirt"
	"github.com/vmfs/vmfs/translate/ovf"
	"github.com/vmfs/vmfs/translate/vbox"
	"github.com/vmfs/vmfs/translate/vmx"
)

// Defaults of a machine made from a bare disk: a disk says nothing about
// the machine around it, so vmfs gives it what any current guest boots
// with (the firmware is read from the disk's partition table).
const (
	BareDiskCPUs      = 2
	BareDiskMemoryMiB = 2048
)

// Warning codes. They are stable.
const (
	WarnBareDisk  = "SOURCE_BARE_DISK"    // a machine was made up around a bare disk
	WarnBootFacts = "SOURCE_BOOT_FACTS"   // the bare disk's partition table could not be read
	WarnRemoteISO = "SOURCE_REMOTE_CDROM" // a remote source's CD-ROM image: the drive is left empty
	// WarnCDROMRefused: an ISO image a descriptor names is outside what
	// the path policy lets the source reach (or a device not allowed).
	WarnCDROMRefused = "SOURCE_CDROM_REFUSED"
)

// headSize is how much of a file dispatch looks at.
const headSize = 4096

// Loaded is a source machine and what reading it opened.
type Loaded struct {
	Machine *translate.Machine
	// Disk, for a bare disk, is that disk, opened once under the Env that
	// Open was given: the caller serves it rather than opening it again,
	// and closes it. nil for a descriptor.
	Disk layouts.Disk
	// Boot and BootErr are what the bare disk's partition table said.
	Boot    bootfacts.Facts
	BootErr error
	// Missing are the disks of the descriptor whose file is not there
	// (OpenMissing only; Open refuses them).
	Missing []translate.MissingDisk
}

// Load reads the source at path into a machine: Open with the default
// policy, the bare disk it may have opened closed again.
func Load(path string) (*translate.Machine, error) {
	l, err := Open(path, nil)
	if err != nil {
		return nil, err
	}
	if l.Disk != nil {
		l.Disk.Close()
	}
	return l.Machine, nil
}

// Open reads the source at path. A bare disk is opened under env (nil:
// the default policy) with the disk itself allowed as a device, and stays
// open in the result; env.OpenDisk, when set, opens it.
func Open(path string, env *layouts.Env) (*Loaded, error) {
	m, err := load(path, env)
	if err != nil {
		return nil, err
	}
	if m != nil {
		cdromPolicy(m, env)
		if err := translate.CheckDisksIn(m, env); err != nil {
			return nil, err
		}
		return &Loaded{Machine: m}, nil
	}
	return bareDisk(path, env)
}

// OpenMissing is Open that accepts a descriptor whose disks are missing:
// it lists them in Missing and warns of each on the machine (what
// inspect shows; a view cannot be built from it).
func OpenMissing(path string, env *layouts.Env) (*Loaded, error) {
	m, err := load(path, env)
	if err != nil {
		return nil, err
	}
	if m != nil {
		cdromPolicy(m, env)
		missing := translate.MissingDisksIn(m, env)
		m.WarnMissing(missing)
		return &Loaded{Machine: m, Missing: missing}, nil
	}
	return bareDisk(path, env)
}

// load parses the descriptor at path, or returns nil for a bare disk.
// A remote source's (env.Remote) is read from its remote tree.
func load(path string, env *layouts.Env) (*translate.Machine, error) {
	if env.IsRemote() {
		head, err := remoteHead(path, env)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		return dispatch(path, head, env)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("source: %s: is a directory (name the .vmx, .ovf, .vbox, domain XML or disk inside it)", path)
	}
	if st.Mode()&(os.ModeNamedPipe|os.ModeSocket|os.ModeCharDevice) != 0 {
		// Reading a FIFO would wait for a writer, a character device never ends.
		return nil, fmt.Errorf("source: %s: not a regular file or block device", path)
	}
	head, err := readHead(path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	return dispatch(path, head, env)
}

// dispatch hands the file at path, which starts with head, to its parser
// (nil for a bare disk).
func dispatch(path string, head []byte, env *layouts.Env) (*translate.Machine, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); {
	case ext == ".vmx":
		return vmx.ParseIn(path, env)
	case ext == ".ovf", ext == ".ova":
		return ovf.ParseIn(path, env)
	case ext == ".vbox":
		return vbox.ParseIn(path, env)
	case len(head) > 262 && bytes.Equal(head[257:262], []byte("ustar")):
		// A tar archive under another name: an OVA.
		return ovf.ParseOVAIn(path, env)
	case ext == ".vmdk", isVMDKDescriptor(head):
		return nil, nil
	case isDomainXML(head):
		return libvirt.ParseIn(path, env)
	case isXML(head) && bytes.Contains(head, []byte("<VirtualBox")):
		return vbox.ParseIn(path, env)
	case isXML(head) && bytes.Contains(head, []byte("Envelope")):
		return ovf.ParseFileIn(path, env)
	case isXML(head):
		return nil, fmt.Errorf("source: %s: XML document that is not a libvirt <domain>, an OVF <Envelope> or a <VirtualBox> machine", env.Display(path))
	case looksLikeVMX(head):
		return vmx.ParseIn(path, env)
	}
	return nil, nil
}

// cdromPolicy decides which CD-ROM images the target may name. A remote
// source's drives are emptied: the target would name the image by a path
// of the remote tree, which is no file of this host (only disks are
// served from the remote). A local source's are held to the path policy
// (localCDROMs).
func cdromPolicy(m *translate.Machine, env *layouts.Env) {
	if !env.IsRemote() {
		localCDROMs(m, env)
		return
	}
	for i := range m.CDROMs {
		c := &m.CDROMs[i]
		if c.Path == "" {
			continue
		}
		m.Warn(WarnRemoteISO, "CD-ROM image %s is on the remote source, which serves disks only: the drive is left empty", env.Display(c.Path))
		c.Path = ""
	}
}

// localCDROMs holds the images of a local source's CD-ROMs to the path
// policy its disks are held to: a descriptor that names its ISO by a path
// must not make the generated VM read a host file (a hostile .vmx naming
// /etc/shadow as an ISO, or a host disk). Descriptors whose disks the
// policy confines to the VM's directory (vmx, vbox, ovf) confine their
// ISOs the same way; every source is held to the device policy. A refused
// image leaves its drive empty, with a warning. An image that is missing
// is the parsers' business (they warn and leave the drive empty).
func localCDROMs(m *translate.Machine, env *layouts.Env) {
	for i := range m.CDROMs {
		c := &m.CDROMs[i]
		if c.Path == "" {
			continue
		}
		p, err := filepath.Abs(c.Path)
		if err != nil {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			continue // missing: left as the parser decided
		}
		var reason error
		switch m.SourceFormat {
		case "vmx", "vbox", "ovf":
			_, reason = env.Resolve(m.Source, p)
		default:
			if st.Mode()&os.ModeDevice != 0 || !st.Mode().IsRegular() {
				_, reason = env.Resolve(p, p)
			}
		}
		if reason == nil || !errors.Is(reason, layouts.ErrRefused) {
			continue
		}
		msg := strings.TrimSuffix(reason.Error(), ": "+layouts.ErrRefused.Error())
		m.Warn(WarnCDROMRefused, "CD-ROM %d: %s: the drive is left empty", i, msg)
		c.Path = ""
	}
}

// remoteHead reads the first headSize bytes of the remote file at path.
func remoteHead(path string, env *layouts.Env) ([]byte, error) {
	f, err := env.Remote.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, min(headSize, f.Size()))
	if n, err := f.ReadAt(b, 0); n < len(b) {
		return nil, fmt.Errorf("%s: %w", env.Display(path), err)
	}
	return b, nil
}

func readHead(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, headSize)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

func isVMDKDescriptor(head []byte) bool {
	return bytes.Contains(head, []byte("# Disk DescriptorFile"))
}

// isXML says whether head starts (after a BOM, blanks, a declaration or
// comments) with an XML element.
func isXML(head []byte) bool {
	s := bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	s = bytes.TrimSpace(s)
	return len(s) > 0 && s[0] == '<' && bytes.IndexByte(s, 0) < 0
}

// isDomainXML finds a <domain root element in the first KiBs, skipping the
// XML declaration and comments (libvirt's own files start with a warning
// comment).
func isDomainXML(head []byte) bool {
	if !isXML(head) {
		return false
	}
	s := bytes.TrimSpace(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")))
	for len(s) > 0 {
		switch {
		case bytes.HasPrefix(s, []byte("<?")):
			i := bytes.Index(s, []byte("?>"))
			if i < 0 {
				return false
			}
			s = s[i+2:]
		case bytes.HasPrefix(s, []byte("<!--")):
			i := bytes.Index(s, []byte("-->"))
			if i < 0 {
				return false
			}
			s = s[i+3:]
		case bytes.HasPrefix(s, []byte("<!DOCTYPE")):
			// Skip it, internal subset included, so that the libvirt
			// parser sees the document and refuses the DTD by name.
			end := bytes.IndexByte(s, '>')
			if open := bytes.IndexByte(s, '['); open >= 0 && (end < 0 || open < end) {
				c := bytes.Index(s[open:], []byte("]"))
				if c < 0 {
					return false
				}
				end = bytes.IndexByte(s[open+c:], '>')
				if end >= 0 {
					end += open + c
				}
			}
			if end < 0 {
				return false
			}
			s = s[end+1:]
		case bytes.HasPrefix(s, []byte("<domain")):
			return len(s) > 7 && (s[7] == ' ' || s[7] == '>' || s[7] == '\t' || s[7] == '\n' || s[7] == '\r')
		default:
			return false
		}
		s = bytes.TrimSpace(s)
	}
	return false
}

// looksLikeVMX recognizes a .vmx under another name by its keys.
func looksLikeVMX(head []byte) bool {
	if bytes.IndexByte(head, 0) >= 0 {
		return false
	}
	l := bytes.ToLower(head)
	return bytes.Contains(l, []byte("config.version")) && bytes.Contains(l, []byte("virtualhw.version"))
}

// bareDisk makes the machine around one disk image: named after the file,
// with BareDiskCPUs vCPUs, BareDiskMemoryMiB of memory, the disk on SATA
// (every guest has an AHCI driver) and one e1000e NIC. The firmware comes
// from the disk's partition table: UEFI for a GPT with an EFI System
// Partition and no BIOS boot partition, BIOS otherwise.
func bareDisk(path string, env *layouts.Env) (*Loaded, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	// The disk the user named may be a block device; what it names may not.
	// The error of probe names the file: it is the whole message.
	e := layouts.Env{}
	if env != nil {
		e = *env
	}
	e.AllowDevices = append(slices.Clone(e.AllowDevices), abs)
	open := e.OpenDisk
	if open == nil {
		open = probe.Open
	}
	d, err := open(path, &e)
	if err != nil {
		return nil, err
	}
	facts, ferr := bootfacts.Read(d)
	format, vsize := d.Format(), d.Size()
	base := filepath.Base(path)
	name := strings.TrimSuffix(base, filepath.Ext(base))
	if name == "" {
		name = base
	}
	m := &translate.Machine{
		Name:         name,
		MemoryMiB:    BareDiskMemoryMiB,
		CPUs:         BareDiskCPUs,
		Firmware:     translate.BIOS,
		Disks:        []translate.Disk{{Path: abs, Format: format, Size: vsize, Bus: translate.BusSATA, Controller: "ahci"}},
		NICs:         []translate.NIC{{Model: "e1000e", Type: "network"}},
		Source:       abs,
		SourceFormat: "disk",
	}
	switch {
	case ferr != nil:
		m.Warn(WarnBootFacts, "%s: partition table unreadable (%v): BIOS firmware assumed", base, ferr)
	default:
		m.Firmware = translate.FirmwareFromBoot(facts)
	}
	m.Warn(WarnBareDisk, "%s is a bare %s disk: the machine around it is made up (%d vCPUs, %d MiB, one e1000e NIC, %s firmware from its %s partition table)",
		base, format, BareDiskCPUs, BareDiskMemoryMiB, m.Firmware, orNone(facts.Table))
	return &Loaded{Machine: m, Disk: d, Boot: facts, BootErr: ferr}, nil
}

func orNone(s string) string {
	if s == "" {
		return "missing"
	}
	return s
}
