package translate

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Warning codes of VirtualBox's device mapping. They are stable.
const (
	WarnVBoxDiskUUID = "VBOX_EMIT_DISK_UUID" // the image's UUID is not known
	WarnVBoxFormat   = "VBOX_EMIT_FORMAT"    // a disk format VirtualBox does not open
	WarnVBoxUnits    = "VBOX_EMIT_UNITS"     // a controller is full
)

// placeVirtualBox places m's devices on VirtualBox's named controllers:
// one per controller model and source controller (IDE: one, with two
// channels), the source's port kept when free.
func (mp *Mapping) placeVirtualBox(m *Machine, disks []TargetDisk, hw *Hardware) error {
	if len(disks) != len(m.Disks) {
		return fmt.Errorf("%d target disks for %d source disks", len(disks), len(m.Disks))
	}
	kinds := map[string]ControllerKind{}
	for _, k := range hw.Kinds {
		kinds[k.Model] = k
	}
	type slot struct{ port, dev int }
	used := map[int]map[slot]bool{} // per controller
	byKey := map[string]int{}       // model + source controller index
	place := func(d *Drive, srcCtl, srcUnit, srcDev int) bool {
		k := kinds[d.Model]
		key := fmt.Sprintf("%s/%d", d.Model, srcCtl)
		if k.Devices == 2 {
			key = d.Model // one IDE controller, two channels
		}
		c, ok := byKey[key]
		if !ok {
			nm := k.Name
			for i := 1; ; i++ {
				clash := false
				for _, o := range mp.Controllers {
					if o.Name == nm {
						clash = true
					}
				}
				if !clash {
					break
				}
				nm = fmt.Sprintf("%s %d", k.Name, i)
			}
			if len(mp.Controllers) >= hw.MaxControllers {
				return false
			}
			c = len(mp.Controllers)
			mp.Controllers = append(mp.Controllers, Controller{Bus: d.Bus, Index: c, Model: d.Model, Name: nm})
			used[c] = map[slot]bool{}
			byKey[key] = c
		}
		want := slot{srcUnit, 0}
		if k.Devices == 2 {
			want = slot{srcCtl, srcDev}
		}
		take := func(s slot) {
			used[c][s] = true
			d.Controller, d.Unit, d.AddrBus = c, s.port, s.dev
			p := &mp.Controllers[c]
			p.Ports = max(p.Ports, 1, s.port+1)
			if k.Devices == 2 {
				p.Ports = 2
			}
		}
		if want.port >= 0 && want.port < k.Ports && want.dev >= 0 && want.dev < k.Devices && !used[c][want] {
			take(want)
			return true
		}
		for p := 0; p < k.Ports; p++ {
			for dv := 0; dv < k.Devices; dv++ {
				if s := (slot{p, dv}); !used[c][s] {
					take(s)
					return true
				}
			}
		}
		return false
	}
	for i, src := range m.Disks {
		d := Drive{Index: i, Path: disks[i].Path, ReadOnly: src.ReadOnly, Boot: src.BootOrder}
		d.Bus, d.Model = mp.busFor(hw.Disks, hw.VirtioDisk, hw.CompatDisk, fmt.Sprintf("disk %d", i), src.Bus, src.Controller)
		if !place(&d, src.ControllerIndex, src.Unit, src.Unit) {
			return fmt.Errorf("no free %s port for disk %d", d.Model, i)
		}
		if !isUUID(disks[i].UUID) && strings.EqualFold(disks[i].Format, "vdi") {
			mp.warn(WarnVBoxDiskUUID, "disk %d: the UUID in the header of %s is not known: VirtualBox will refuse the medium until the media registry names it", i, filepath.Base(disks[i].Path))
		}
		d.Format = strings.ToUpper(disks[i].Format)
		switch d.Format {
		case "VDI", "VMDK", "VHD":
		case "RAW", "":
			d.Format = "RAW"
			mp.warn(WarnVBoxFormat, "disk %d is a raw image: VirtualBox opens raw images only as .img; use --format vdi", i)
		default:
			mp.warn(WarnVBoxFormat, "disk %d is a %s image, which VirtualBox does not open: use --format vdi", i, strings.ToLower(d.Format))
		}
		mp.Drives = append(mp.Drives, d)
	}
	for i, c := range m.CDROMs {
		d := Drive{CDROM: true, Index: i, Path: c.Path, ReadOnly: true, Boot: c.BootOrder}
		d.Bus, d.Model = mp.busFor(hw.CDROMs, hw.VirtioCDROM, hw.CompatCDROM, fmt.Sprintf("CD-ROM %d", i), c.Bus, c.Controller)
		if !place(&d, c.ControllerIndex, c.Unit, c.Unit) {
			mp.say(hw.UnitsCode, "no free {model} port for CD-ROM {i}: left out", "{model}", d.Model, "{i}", strconv.Itoa(i))
			d.Omit = true
		}
		mp.Drives = append(mp.Drives, d)
	}
	for i, n := range m.NICs {
		if hw.MaxNICs > 0 && i >= hw.MaxNICs {
			mp.say(hw.NICsCode, hw.NICsSay, "{i}", strconv.Itoa(i))
			for j := i; j < len(m.NICs); j++ {
				mp.NICs[j].Omit = true
			}
			break
		}
		mp.NICs[i].Model = mp.nicModel(hw, i, n.Model)
	}
	mp.serials(m, hw)
	return nil
}

// isUUID says whether s is a UUID, with or without braces and dashes.
func isUUID(s string) bool {
	h := strings.ToLower(strings.NewReplacer("{", "", "}", "", "-", "").Replace(strings.TrimSpace(s)))
	if len(h) != 32 {
		return false
	}
	for i := 0; i < 32; i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
