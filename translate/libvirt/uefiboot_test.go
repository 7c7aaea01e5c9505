package libvirt

import (
	"testing"

	"github.com/vmfs/vmfs/translate"
)

// TestUEFIBootDiskLeavesUnbootableSCSI: OVMF cannot boot from LSI, pvscsi
// or LSI SAS, so a UEFI machine's boot disk moves to SATA with a warning;
// BIOS machines, other disks and virtio-scsi keep their controller.
func TestUEFIBootDiskLeavesUnbootableSCSI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fw       translate.Firmware
		ctl      string
		wantBus  string
		wantWarn bool
	}{
		{"uefi pvscsi", translate.UEFI, "pvscsi", "sata", true},
		{"uefi lsilogic", translate.UEFI, "lsilogic", "sata", true},
		{"uefi lsisas1068", translate.UEFI, "lsisas1068", "sata", true},
		{"uefi virtio-scsi", translate.UEFI, "virtio-scsi", "scsi", false},
		{"bios pvscsi", translate.BIOS, "pvscsi", "scsi", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &translate.Machine{Name: "x", CPUs: 1, MemoryMiB: 64, Firmware: tc.fw, Disks: []translate.Disk{
				{Path: "/a", Bus: translate.BusSCSI, Controller: tc.ctl},
				{Path: "/b", Bus: translate.BusSCSI, Controller: tc.ctl, Unit: 1},
			}}
			disks := []translate.TargetDisk{{Path: "/m/a.qcow2", Format: "qcow2"}, {Path: "/m/b.qcow2", Format: "qcow2"}}
			p, warns, err := NewPlan(m, disks, translate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var boot, other string
			for _, d := range p.Drives {
				if d.Index == 0 && !d.CDROM {
					boot = d.Bus
				}
				if d.Index == 1 && !d.CDROM {
					other = d.Bus
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
