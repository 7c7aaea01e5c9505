package translate_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/targets"
)

// TestMapDevices: Map places each device on the hardware each target
// declares, and raises the warnings of that placement there, in order.
func TestMapDevices(t *testing.T) {
	disk := func(bus translate.Bus, ctl string, unit int) translate.Disk {
		return translate.Disk{Path: "/src/d.vmdk", Bus: bus, Controller: ctl, Unit: unit}
	}
	machine := func(f func(m *translate.Machine)) *translate.Machine {
		m := &translate.Machine{Name: "vm", CPUs: 1, MemoryMiB: 1024, Firmware: translate.BIOS}
		f(m)
		return m
	}
	// drive renders a placed drive.
	drive := func(d translate.Drive) string {
		if d.Omit {
			return "omitted"
		}
		return fmt.Sprintf("%s/%s %d:%d", d.Bus, d.Model, d.Controller, d.Unit)
	}
	tests := []struct {
		name, target string
		m            *translate.Machine
		format       string // of every disk; "" the target's
		opts         translate.Options
		drives       []string // drive(...) of each Mapping.Drives
		nics         []string
		machine      string
		warns        []string
	}{
		{name: "qemu scsi models", target: "libvirt", m: machine(func(m *translate.Machine) {
			m.Disks = []translate.Disk{disk(translate.BusSCSI, "pvscsi", 0), disk(translate.BusSCSI, "BusLogic", 1), disk(translate.BusNVMe, "", 0)}
		}), drives: []string{"scsi/vmpvscsi 0:0", "sata/ 0:0", "sata/ 0:1"}, machine: "q35",
			warns: []string{translate.WarnController, translate.WarnBus}},
		{name: "qemu ide keeps i440fx", target: "qemu", m: machine(func(m *translate.Machine) {
			m.Disks = []translate.Disk{disk(translate.BusIDE, "", 1)}
			m.CDROMs = []translate.CDROM{{Bus: translate.BusIDE, ControllerIndex: 1}}
		}), drives: []string{"ide/ 0:1", "ide/ 0:0"}, machine: "pc"},
		{name: "qemu secure boot moves ide", target: "libvirt", m: machine(func(m *translate.Machine) {
			m.Firmware, m.SecureBoot = translate.UEFI, true
			m.Disks = []translate.Disk{disk(translate.BusSCSI, "lsilogic", 0), disk(translate.BusIDE, "", 0)}
		}), drives: []string{"sata/ 0:0", "sata/ 0:1"}, machine: "q35",
			warns: []string{translate.WarnUEFIBoot, translate.WarnSecureIDE}},
		{name: "qemu spill", target: "libvirt", m: machine(func(m *translate.Machine) {
			for i := 0; i < 8; i++ {
				m.Disks = append(m.Disks, disk(translate.BusSCSI, "", i))
			}
			m.NICs = []translate.NIC{{Model: "Tulip"}, {Model: "vlance"}}
			m.Serials = []translate.Serial{{Type: "file", Path: "/tmp/s"}}
		}), drives: []string{"scsi/lsilogic 0:0", "scsi/lsilogic 0:1", "scsi/lsilogic 0:2", "scsi/lsilogic 0:3", "scsi/lsilogic 0:4", "scsi/lsilogic 0:5", "scsi/lsilogic 0:6", "scsi/lsilogic 1:0"},
			nics: []string{"e1000", "pcnet"}, machine: "q35", warns: []string{translate.WarnUnitSpill, translate.WarnNIC, translate.WarnSerial}},
		{name: "qemu virtio", target: "qemu", opts: translate.Options{Devices: "virtio"}, m: machine(func(m *translate.Machine) {
			m.Disks = []translate.Disk{disk(translate.BusIDE, "", 0)}
			m.CDROMs = []translate.CDROM{{Bus: translate.BusIDE}}
			m.NICs = []translate.NIC{{Model: "e1000"}}
		}), drives: []string{"virtio/ 0:0", "sata/ 0:0"}, nics: []string{"virtio"}, machine: "q35"},
		{name: "vmware buses", target: "vmware", format: "qcow2", m: machine(func(m *translate.Machine) {
			m.Disks = []translate.Disk{disk(translate.BusSCSI, "vmpvscsi", 0), disk(translate.BusVirtio, "", 0), disk(translate.BusSCSI, "virtio-scsi", 7)}
			m.CDROMs = []translate.CDROM{{Bus: translate.BusNVMe}}
			m.NICs = []translate.NIC{{Model: "pcnet"}, {Model: "rtl8139"}, {}}
			m.Serials = []translate.Serial{{Type: "pty"}, {Type: "pipe", Path: `\\.\pipe\x`}}
		}), drives: []string{"scsi/pvscsi 0:0", "sata/ 0:0", "scsi/lsisas1068 0:1", "sata/ 0:1"}, nics: []string{"vlance", "e1000e", "e1000e"},
			warns: []string{"VMX_EMIT_FORMAT", "VMX_EMIT_BUS", "VMX_EMIT_FORMAT", "VMX_EMIT_FORMAT", "VMX_EMIT_NIC", "VMX_EMIT_SERIAL"}},
		{name: "vmware virtio", target: "vmware", opts: translate.Options{Devices: "virtio"}, m: machine(func(m *translate.Machine) {
			m.Disks = []translate.Disk{disk(translate.BusIDE, "", 0)}
			m.CDROMs = []translate.CDROM{{Bus: translate.BusIDE}}
			m.NICs = []translate.NIC{{Model: "e1000"}}
		}), drives: []string{"scsi/pvscsi 0:0", "sata/ 0:0"}, nics: []string{"vmxnet3"}, warns: []string{translate.WarnDevices}},
		{name: "ovf controllers", target: "ovf", m: machine(func(m *translate.Machine) {
			m.Disks = []translate.Disk{disk(translate.BusSCSI, "megaraid", 0)}
			m.CDROMs = []translate.CDROM{{Bus: translate.BusSCSI, Path: "/iso/a.iso"}}
			m.NICs = []translate.NIC{{Model: "vmxnet2"}, {Model: "ne2k"}}
			m.Serials = []translate.Serial{{Type: "file", Path: "/s"}}
		}), drives: []string{"scsi/lsilogicsas 0:0", "sata/ 0:0"}, nics: []string{"VmxNet3", "E1000"},
			warns: []string{"OVF_EMIT_BUS", "OVF_EMIT_BUS", "OVF_EMIT_CDROM", "OVF_EMIT_NIC", "OVF_EMIT_SERIAL"}},
		{name: "virtualbox controllers", target: "virtualbox", format: "raw", m: machine(func(m *translate.Machine) {
			m.Disks = []translate.Disk{disk(translate.BusSCSI, "pvscsi", 0), disk(translate.BusVirtio, "", 0), disk(translate.BusIDE, "", 1)}
			m.CDROMs = []translate.CDROM{{Bus: translate.BusSCSI, Controller: "virtio-scsi"}}
			for i := 0; i < 9; i++ {
				m.NICs = append(m.NICs, translate.NIC{Model: "e1000e"})
			}
		}), drives: []string{"scsi/LsiLogic 0:0", "scsi/VirtioSCSI 1:0", "ide/PIIX4 2:0", "sata/AHCI 3:0"},
			nics: []string{"82545EM", "82545EM", "82545EM", "82545EM", "82545EM", "82545EM", "82545EM", "82545EM", ""},
			warns: []string{"VBOX_EMIT_CONTROLLER", "VBOX_EMIT_FORMAT", "VBOX_EMIT_BUS", "VBOX_EMIT_FORMAT", "VBOX_EMIT_FORMAT",
				"VBOX_EMIT_NIC", "VBOX_EMIT_NIC", "VBOX_EMIT_NIC", "VBOX_EMIT_NIC", "VBOX_EMIT_NIC", "VBOX_EMIT_NIC", "VBOX_EMIT_NIC", "VBOX_EMIT_NIC", "VBOX_EMIT_NIC"}},
		{name: "virtualbox vdi uuid", target: "virtualbox", m: machine(func(m *translate.Machine) {
			m.Disks = []translate.Disk{disk(translate.BusSATA, "", 3)}
		}), drives: []string{"sata/AHCI 0:3"}, warns: []string{"VBOX_EMIT_DISK_UUID"}},
		{name: "hyperv generation 1", target: "hyperv", m: machine(func(m *translate.Machine) {
			m.MemoryMiB = 1023
			m.GuestOS = "windows9-64"
			for i := 0; i < 4; i++ {
				m.Disks = append(m.Disks, disk(translate.BusSCSI, "", i))
			}
			m.CDROMs = []translate.CDROM{{}}
			m.NICs = []translate.NIC{{Model: "netvsc", MAC: "00:15:5d:zz:00:01"}}
		}), drives: []string{"ide/ 0:0", "ide/ 0:1", "ide/ 1:1", "scsi/ 0:0", "ide/ 1:0"}, nics: []string{""}, machine: "1",
			warns: []string{"HYPERV_MEMORY", "HYPERV_MAC"}},
		{name: "hyperv generation 2", target: "hyperv", format: "vhd", m: machine(func(m *translate.Machine) {
			m.Firmware = translate.UEFI
			m.Disks = []translate.Disk{disk(translate.BusIDE, "", 0), {Path: "/src/b", BootOrder: 1}}
			m.NICs = []translate.NIC{{Model: "e1000"}}
			m.Serials = []translate.Serial{{}, {}, {}}
		}), drives: []string{"scsi/ 0:1", "scsi/ 0:0"}, nics: []string{""}, machine: "2",
			warns: []string{"HYPERV_DISK_FORMAT", "HYPERV_DISK_FORMAT", "HYPERV_DRIVERS", "HYPERV_NIC", "HYPERV_SERIAL", "HYPERV_SERIAL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg, err := targets.Get(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			format := tt.format
			if format == "" {
				format = tg.DefaultFormat()
			}
			var disks []translate.TargetDisk
			for i := range tt.m.Disks {
				disks = append(disks, translate.TargetDisk{Path: fmt.Sprintf("/out/vm-disk%d.%s", i, format), Format: format})
			}
			mp, err := translate.Map(tt.m, disks, tt.opts, tg.Caps())
			if err != nil {
				t.Fatal(err)
			}
			var drives, nics, codes []string
			for _, d := range mp.Drives {
				drives = append(drives, drive(d))
			}
			for _, n := range mp.NICs {
				nics = append(nics, n.Model)
			}
			for _, w := range mp.Warnings {
				codes = append(codes, w.Code)
			}
			if !slices.Equal(drives, tt.drives) {
				t.Errorf("drives %q, want %q", drives, tt.drives)
			}
			if !slices.Equal(nics, tt.nics) {
				t.Errorf("NICs %q, want %q", nics, tt.nics)
			}
			if mp.Machine != tt.machine {
				t.Errorf("machine %q, want %q", mp.Machine, tt.machine)
			}
			if !slices.Equal(codes, tt.warns) {
				t.Errorf("warnings %v, want codes %v", mp.Warnings, tt.warns)
			}
		})
	}
}
