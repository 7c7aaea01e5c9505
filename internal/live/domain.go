package live

import (
	"fmt"
	"path/filepath"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// disk is one disk of a running domain that is a file of the mount.
type disk struct {
	Target string // the guest's device name (sda, vda): how virsh names it
	Source string // the file in the mount
	Format string // the driver type: qcow2 or raw
	// Mirror is the destination of a copy job already running on the
	// disk, "" when none.
	Mirror string
}

// within says whether path names a file under dir (both absolute, clean).
func within(path, dir string) bool {
	return strings.HasPrefix(filepath.Clean(path), dir+string(filepath.Separator))
}

// mountDisks returns the disks of the domain described by xml whose files
// lie under one of mnts (the mountpoint, and its resolved path where that
// differs). Any other reference of the domain into the mount (a CD-ROM, a
// kernel, firmware variables) is an error: it would stay behind.
func mountDisks(xml string, mnts []string) (name string, disks []disk, err error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(xml); err != nil {
		return "", nil, fmt.Errorf("domain xml: %w", err)
	}
	in := func(p string) bool {
		for _, m := range mnts {
			if p != "" && within(p, m) {
				return true
			}
		}
		return false
	}
	if d.OS != nil {
		for what, p := range map[string]string{"kernel": d.OS.Kernel, "initrd": d.OS.Initrd, "dtb": d.OS.DTB} {
			if in(p) {
				return d.Name, nil, fmt.Errorf("domain %s: its %s %s is a file of the mount, which --live does not move", d.Name, what, p)
			}
		}
		if d.OS.Loader != nil && in(d.OS.Loader.Path) {
			return d.Name, nil, fmt.Errorf("domain %s: its firmware %s is a file of the mount, which --live does not move", d.Name, d.OS.Loader.Path)
		}
		if d.OS.NVRam != nil && in(d.OS.NVRam.NVRam) {
			return d.Name, nil, fmt.Errorf("domain %s: its firmware variables %s are a file of the mount, which --live does not move", d.Name, d.OS.NVRam.NVRam)
		}
	}
	if d.Devices == nil {
		return d.Name, nil, nil
	}
	for _, dd := range d.Devices.Disks {
		src := diskFile(dd.Source)
		if !in(src) {
			continue
		}
		if dd.Target == nil || dd.Target.Dev == "" {
			return d.Name, nil, fmt.Errorf("domain %s: disk %s has no target device", d.Name, src)
		}
		if dd.Device == "cdrom" || dd.Device == "floppy" || dd.ReadOnly != nil {
			return d.Name, nil, fmt.Errorf("domain %s: %s (%s) is a read-only %s of the mount, which --live does not move", d.Name, dd.Target.Dev, src, orDisk(dd.Device))
		}
		format := "raw"
		if dd.Driver != nil && dd.Driver.Type != "" {
			format = dd.Driver.Type
		}
		if format != "raw" && format != "qcow2" {
			return d.Name, nil, fmt.Errorf("domain %s: disk %s (%s) is %s; --live copies qcow2 and raw disks", d.Name, dd.Target.Dev, src, format)
		}
		k := disk{Target: dd.Target.Dev, Source: filepath.Clean(src), Format: format}
		if dd.Mirror != nil {
			k.Mirror = diskFile(dd.Mirror.Source)
			if k.Mirror == "" {
				k.Mirror = "?"
			}
		}
		disks = append(disks, k)
	}
	return d.Name, disks, nil
}

func orDisk(dev string) string {
	if dev == "" {
		return "disk"
	}
	return dev
}

// diskFile is the path of a file-backed disk source, "" for any other.
func diskFile(s *libvirtxml.DomainDiskSource) string {
	if s == nil || s.File == nil {
		return ""
	}
	return s.File.File
}

// diskSources lists the target device and file of every disk of xml.
func diskSources(xml string) (map[string]string, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(xml); err != nil {
		return nil, fmt.Errorf("domain xml: %w", err)
	}
	out := map[string]string{}
	if d.Devices == nil {
		return out, nil
	}
	for _, dd := range d.Devices.Disks {
		if dd.Target != nil {
			out[dd.Target.Dev] = diskFile(dd.Source)
		}
	}
	return out, nil
}

// mirrorsReady says whether every disk of targets has a copy job in its
// mirroring phase (<mirror ready="yes">) in the live xml.
func mirrorsReady(xml string, targets []string) (bool, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(xml); err != nil {
		return false, fmt.Errorf("domain xml: %w", err)
	}
	ready := map[string]bool{}
	if d.Devices != nil {
		for _, dd := range d.Devices.Disks {
			if dd.Target != nil && dd.Mirror != nil && dd.Mirror.Ready == "yes" {
				ready[dd.Target.Dev] = true
			}
		}
	}
	for _, t := range targets {
		if !ready[t] {
			return false, nil
		}
	}
	return true, nil
}

// rewriteDisks points the disks of the domain xml named in moved (target
// device → new file and format) at their new files. It returns the new
// XML, and whether anything changed.
func rewriteDisks(xml string, moved map[string]movedDisk) (string, bool, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(xml); err != nil {
		return "", false, fmt.Errorf("domain xml: %w", err)
	}
	changed := false
	if d.Devices != nil {
		for i := range d.Devices.Disks {
			dd := &d.Devices.Disks[i]
			if dd.Target == nil {
				continue
			}
			m, ok := moved[dd.Target.Dev]
			if !ok {
				continue
			}
			switch src := diskFile(dd.Source); {
			case src == m.From:
				dd.Source.File.File = m.To
			case src == m.To && dd.Driver != nil && dd.Driver.Type == m.Format:
				continue // libvirt rewrote it already
			case src != m.To:
				continue // not the disk that was moved
			}
			if dd.Driver == nil {
				dd.Driver = &libvirtxml.DomainDiskDriver{Name: "qemu"}
			}
			dd.Driver.Type = m.Format
			// The new file stands alone: no backing chain to describe.
			dd.BackingStore = nil
			changed = true
		}
	}
	if !changed {
		return xml, false, nil
	}
	out, err := d.Marshal()
	if err != nil {
		return "", false, fmt.Errorf("domain xml: %w", err)
	}
	return out, true, nil
}

// movedDisk is a disk the cutover moved.
type movedDisk struct {
	From, To, Format string
}
