package translate

import (
	"testing"

	"github.com/vmfs/vmfs/layouts/bootfacts"
)

// TestFirmwareFromBoot: the one rule that reads a firmware from a disk's
// partition table, and SettleFirmware, which applies it to a machine that
// does not state its firmware.
func TestFirmwareFromBoot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stated Firmware
		boot   bootfacts.Facts
		want   Firmware
		warned bool
	}{
		{"gpt esp", FirmwareUnknown, bootfacts.Facts{Table: "gpt", HasESP: true}, UEFI, true},
		{"gpt esp and bios boot", FirmwareUnknown, bootfacts.Facts{Table: "gpt", HasESP: true, HasBIOSBP: true}, BIOS, false},
		{"gpt without esp", FirmwareUnknown, bootfacts.Facts{Table: "gpt"}, BIOS, false},
		{"mbr", FirmwareUnknown, bootfacts.Facts{Table: "mbr"}, BIOS, false},
		{"no table", FirmwareUnknown, bootfacts.Facts{}, BIOS, false},
		{"stated bios kept", BIOS, bootfacts.Facts{Table: "gpt", HasESP: true}, BIOS, false},
		{"stated uefi kept", UEFI, bootfacts.Facts{Table: "mbr"}, UEFI, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.stated == FirmwareUnknown {
				if got := FirmwareFromBoot(tc.boot); got != tc.want {
					t.Errorf("FirmwareFromBoot(%+v) = %q, want %q", tc.boot, got, tc.want)
				}
			}
			m := &Machine{Firmware: tc.stated}
			SettleFirmware(m, []TargetDisk{{Boot: tc.boot}, {Boot: bootfacts.Facts{Table: "gpt", HasESP: true}}})
			if m.Firmware != tc.want {
				t.Errorf("settled %q, want %q", m.Firmware, tc.want)
			}
			if warned := len(m.Warnings) == 1 && m.Warnings[0].Code == WarnFirmwareFromDisk; warned != tc.warned || len(m.Warnings) > 1 {
				t.Errorf("warnings %v, want FIRMWARE_FROM_DISK %v", m.Warnings, tc.warned)
			}
		})
	}
	m := &Machine{}
	SettleFirmware(m, nil)
	if m.Firmware != FirmwareUnknown || len(m.Warnings) != 0 {
		t.Errorf("no disks: firmware %q, warnings %v", m.Firmware, m.Warnings)
	}
}

func TestVMDKAdapter(t *testing.T) {
	for _, tc := range []struct {
		bus  Bus
		ctl  string
		want string
	}{
		{BusIDE, "piix4", "ide"},
		{BusSCSI, "buslogic", "buslogic"},
		{BusSCSI, "pvscsi", "pvscsi"},
		{BusSCSI, "lsisas1068", "lsilogic"},
		{BusSCSI, "", "lsilogic"},
		{BusSATA, "ahci", "lsilogic"},
		{BusNVMe, "", "lsilogic"},
		{BusVirtio, "", "lsilogic"},
	} {
		if got := VMDKAdapter(Disk{Bus: tc.bus, Controller: tc.ctl}); got != tc.want {
			t.Errorf("VMDKAdapter(%s %s) = %q, want %q", tc.bus, tc.ctl, got, tc.want)
		}
	}
}
