package translate

import (
	"testing"
)

// TestUEFIBootDiskLeavesUnbootableSCSI: OVMF cannot boot from LSI, pvscsi
// or LSI SAS, so a UEFI machine's boot disk moves to SATA with a warning;
// BIOS machines, other disks and virtio-scsi keep their controller.
func TestUEFIBootDiskLeavesUnbootableSCSI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fw       Firmware
		ctl      string
		wantBus  string
		wantWarn bool
	}{
		{"uefi pvscsi", UEFI, "pvscsi", "sata", true},
		{"uefi lsilogic", UEFI, "lsilogic", "sata", true},
		{"uefi lsisas1068", UEFI, "lsisas1068", "sata", true},
		{"uefi virtio-scsi", UEFI, "virtio-scsi", "scsi", false},
		{"bios pvscsi", BIOS, "pvscsi", "scsi", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Machine{Name: "x", CPUs: 1, MemoryMiB: 64, Firmware: tc.fw, Disks: []Disk{
				{Path: "/a", Bus: BusSCSI, Controller: tc.ctl},
				{Path: "/b", Bus: BusSCSI, Controller: tc.ctl, Unit: 1},
			}}
			disks := []TargetDisk{{Path: "/m/a.qcow2", Format: "qcow2"}, {Path: "/m/b.qcow2", Format: "qcow2"}}
			p, err := Map(m, disks, Options{}, Caps{Target: "libvirt", Hardware: QEMUHardware()})
			if err != nil {
				t.Fatal(err)
			}
			warns := p.Warnings
			var boot, other string
			for _, d := range p.Drives {
				if d.Index == 0 && !d.CDROM {
					boot = string(d.Bus)
				}
				if d.Index == 1 && !d.CDROM {
					other = string(d.Bus)
				}
			}
			if boot != tc.wantBus || other != "scsi" {
				t.Errorf("boot disk on %s, other on %s; want %s and scsi", boot, other, tc.wantBus)
			}
			got := false
			for _, w := range warns {
				got = got || w.Code == WarnUEFIBoot
			}
			if got != tc.wantWarn {
				t.Errorf("warning %v, want %v (%v)", got, tc.wantWarn, warns)
			}
		})
	}
}
