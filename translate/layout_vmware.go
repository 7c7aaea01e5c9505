package translate

import (
	"fmt"
	"slices"
	"strconv"
)

// VMware's controllers: units per controller and controllers per bus.
var (
	vmwareUnits = map[Bus]int{BusSCSI: 16, BusSATA: 30, BusIDE: 2, BusNVMe: 15}
	vmwareCtls  = map[Bus]int{BusSCSI: 4, BusSATA: 4, BusIDE: 2, BusNVMe: 4}
)

type vmwareSlot struct {
	bus  Bus
	ctl  int
	unit int
}

// vmwareSlots hands out free controller slots, keeping the source's when
// free; SCSI unit 7 is the controller's own.
type vmwareSlots map[vmwareSlot]bool

func (a vmwareSlots) take(bus Bus, ctl, unit int) (vmwareSlot, bool) {
	p := vmwareSlot{bus, ctl, unit}
	okUnit := unit >= 0 && unit < vmwareUnits[bus] && !(bus == BusSCSI && unit == 7)
	if okUnit && ctl >= 0 && ctl < vmwareCtls[bus] && !a[p] {
		a[p] = true
		return p, true
	}
	for c := 0; c < vmwareCtls[bus]; c++ {
		for u := 0; u < vmwareUnits[bus]; u++ {
			q := vmwareSlot{bus, c, u}
			if (bus == BusSCSI && u == 7) || a[q] {
				continue
			}
			a[q] = true
			return q, true
		}
	}
	return vmwareSlot{}, false
}

// placeVMware places m's devices on VMware's numbered controllers: a
// controller's model is the one its first device asked for.
func (mp *Mapping) placeVMware(m *Machine, disks []TargetDisk, hw *Hardware) error {
	if len(disks) != len(m.Disks) {
		return fmt.Errorf("%d target disks for %d source disks", len(disks), len(m.Disks))
	}
	slots := vmwareSlots{}
	seen := map[[2]any]bool{}
	use := func(d *Drive, p vmwareSlot) {
		d.Controller, d.Unit = p.ctl, p.unit
		if k := [2]any{p.bus, p.ctl}; !seen[k] {
			seen[k] = true
			mp.Controllers = append(mp.Controllers, Controller{Bus: p.bus, Index: p.ctl, Model: d.Model})
		}
	}
	for i, src := range m.Disks {
		d := Drive{Index: i, Path: disks[i].Path, Format: disks[i].Format, ReadOnly: src.ReadOnly, Boot: src.BootOrder}
		d.Bus, d.Model = mp.busFor(hw.Disks, hw.VirtioDisk, hw.CompatDisk, fmt.Sprintf("disk %d", i), src.Bus, src.Controller)
		p, ok := slots.take(d.Bus, src.ControllerIndex, src.Unit)
		if !ok {
			return fmt.Errorf("no free %s slot for disk %d", d.Bus, i)
		}
		use(&d, p)
		mp.formatWarn(hw, i, disks[i].Format)
		mp.Drives = append(mp.Drives, d)
	}
	for i, c := range m.CDROMs {
		d := Drive{CDROM: true, Index: i, Path: c.Path, ReadOnly: true, Boot: c.BootOrder}
		d.Bus, d.Model = mp.busFor(hw.CDROMs, hw.VirtioCDROM, hw.CompatCDROM, fmt.Sprintf("CD-ROM %d", i), c.Bus, c.Controller)
		p, ok := slots.take(d.Bus, c.ControllerIndex, c.Unit)
		if !ok {
			mp.say(hw.UnitsCode, "no free {bus} slot for CD-ROM {i}: left out", "{bus}", string(d.Bus), "{i}", strconv.Itoa(i))
			d.Omit = true
			mp.Drives = append(mp.Drives, d)
			continue
		}
		if c.Path != "" {
			mp.say(hw.CDROMImagesCode, hw.CDROMImagesSay, "{i}", strconv.Itoa(i), "{path}", c.Path)
		}
		use(&d, p)
		mp.Drives = append(mp.Drives, d)
	}
	for i, n := range m.NICs {
		mp.NICs[i].Model = mp.nicModel(hw, i, n.Model)
	}
	mp.serials(m, hw)
	return nil
}

// serials decides which serial ports the target keeps.
func (mp *Mapping) serials(m *Machine, hw *Hardware) {
	dropped := 0
	for _, s := range m.Serials {
		keep := s.Path != "" && slices.Contains(hw.SerialTypes, s.Type)
		mp.SerialOmit = append(mp.SerialOmit, !keep)
		if keep {
			continue
		}
		dropped++
		if !hw.SerialOnce {
			mp.say(hw.SerialCode, hw.SerialSay, "{type}", s.Type)
		}
	}
	if hw.SerialOnce && dropped > 0 {
		mp.say(hw.SerialCode, hw.SerialSay, "{n}", strconv.Itoa(dropped))
	}
}
