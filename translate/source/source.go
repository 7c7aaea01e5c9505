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
	"strings"

	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/libvirt"
	"github.com/vmfs/vmfs/translate/vmx"
)

// Defaults of a machine made from a bare disk: a disk says nothing about
// the machine around it, so vmfs gives it what any current guest boots
// with. The firmware is BIOS; callers that read the disk's boot facts
// (layouts/bootfacts) switch it to UEFI when the disk has an EFI System
// Partition and no BIOS boot partition.
const (
	BareDiskCPUs      = 2
	BareDiskMemoryMiB = 2048
)

// WarnBareDisk says that a machine was made up around a bare disk.
const WarnBareDisk = "SOURCE_BARE_DISK"

// headSize is how much of a file dispatch looks at.
const headSize = 4096

// Load opens the source at path.
func Load(path string) (*translate.Machine, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("source: %s: is a directory (name the .vmx, .ovf, .vbox, domain XML or disk inside it)", path)
	}
	head, err := readHead(path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	switch ext := strings.ToLower(filepath.Ext(path)); {
	case ext == ".vmx":
		return vmx.Parse(path)
	case ext == ".ovf", ext == ".ova":
		// Dispatch slot for the OVF/OVA parser (translate/ovf).
		return nil, fmt.Errorf("source: %s: %s sources are not supported yet", path, ext)
	case ext == ".vbox":
		// Dispatch slot for the VirtualBox parser (translate/vbox).
		return nil, fmt.Errorf("source: %s: .vbox sources are not supported yet", path)
	case ext == ".vmdk", isVMDKDescriptor(head):
		return BareDisk(path, st.Size())
	case isDomainXML(head):
		return libvirt.Parse(path)
	case isXML(head):
		// Dispatch slot for OVF (<Envelope>) and VirtualBox (<VirtualBox>)
		// documents without their usual extension.
		return nil, fmt.Errorf("source: %s: XML document that is not a libvirt <domain> (OVF and .vbox are not supported yet)", path)
	case looksLikeVMX(head):
		return vmx.Parse(path)
	}
	return BareDisk(path, st.Size())
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

// BareDisk makes the machine around one disk image: named after the file,
// with BareDiskCPUs vCPUs, BareDiskMemoryMiB of memory, BIOS firmware, the
// disk on SATA (every guest has an AHCI driver) and one e1000e NIC.
func BareDisk(path string, size int64) (*translate.Machine, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
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
		Disks:        []translate.Disk{{Path: abs, Bus: translate.BusSATA, Controller: "ahci"}},
		NICs:         []translate.NIC{{Model: "e1000e", Type: "network"}},
		Source:       abs,
		SourceFormat: "disk",
	}
	m.Warn(WarnBareDisk, "%s is a bare disk: the machine around it is made up (%d vCPUs, %d MiB, one e1000e NIC)", base, BareDiskCPUs, BareDiskMemoryMiB)
	return m, nil
}
