// Package hyperv writes the "hyperv" target: a PowerShell script,
// <name>.ps1, that creates the machine on a Hyper-V host with the Hyper-V
// module's cmdlets. Hyper-V keeps its own configuration in binary .vmcx
// files that only Hyper-V writes, so a script is the portable descriptor.
//
// The script takes three parameters: -VMPath (where Hyper-V keeps the
// machine's configuration, by default the host's), -SwitchName (the
// virtual switch the NICs are connected to, none by default) and -DiskDir
// (where the disk images are, by default the script's own directory, so
// the folder can be copied anywhere). It creates the machine, attaches the
// disks, DVD drives and NICs, and does not start it.
//
// Every string that comes from the source (the VM name, file names, ISO
// paths) is written as a PowerShell single-quoted literal, where nothing
// is expanded; the script never puts source text in double quotes or in
// code. All later cmdlets take the machine object New-VM returned (-VM
// $vm), never its name, so a name with wildcard characters cannot select
// another machine.
package hyperv

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmfs/vmfs/translate"
)

// Warning codes. They are stable.
const (
	// WarnDiskFormat: a disk is in a format Hyper-V cannot attach (not
	// vhdx or vhd), or a VHD on a Generation 2 machine, which needs VHDX.
	WarnDiskFormat = "HYPERV_DISK_FORMAT"
	// WarnNIC: a source NIC model becomes a synthetic Hyper-V adapter.
	WarnNIC = "HYPERV_NIC"
	// WarnDrivers: a guest not known to be Windows must have the Hyper-V
	// storage (and VMBus) drivers to find its disks on SCSI.
	WarnDrivers = "HYPERV_DRIVERS"
	// WarnCDROM: a CD-ROM could not be attached, or its image is not part
	// of the output.
	WarnCDROM = "HYPERV_CDROM"
	// WarnSerial: serial ports past COM2 are dropped; COM ports become
	// named pipes.
	WarnSerial = "HYPERV_SERIAL"
	// WarnMemory: the memory size was rounded up to Hyper-V's 2 MiB unit.
	WarnMemory = "HYPERV_MEMORY"
	// WarnFirmware: the firmware was not stated and the boot disk looks
	// UEFI-only, yet Generation 1 (BIOS) was chosen.
	WarnFirmware = "HYPERV_FIRMWARE"
	// WarnMAC: a source MAC address is malformed; Hyper-V assigns one.
	WarnMAC = "HYPERV_MAC"
)

// Hyper-V limits.
const (
	ideSlots       = 4  // two IDE controllers, two locations each (Gen 1)
	scsiLocations  = 64 // locations per SCSI controller
	scsiMax        = 4  // SCSI controllers per machine
	comPorts       = 2  // COM1 and COM2
	memoryUnitMiB  = 2  // startup memory is a multiple of 2 MiB
	secureWindows  = "MicrosoftWindows"
	secureUEFICA   = "MicrosoftUEFICertificateAuthority"
	defaultNICName = "Network Adapter"
)

// Target is the hyperv target.
type Target struct{}

var _ translate.Target = Target{}

func (Target) Name() string          { return "hyperv" }
func (Target) DefaultFormat() string { return "vhdx" }

// Caps: Hyper-V has one set of devices; a mapped network names the
// virtual switch of its NICs.
func (Target) Caps() translate.Caps {
	return translate.Caps{Target: "hyperv", FixedDevices: "a Hyper-V machine has Hyper-V's own devices (synthetic SCSI disks and network adapters; IDE on Generation 1)"}
}

// utf8BOM starts the script: Windows PowerShell 5.1 reads a script without
// a byte order mark in the system's ANSI code page, so a non-ASCII VM name
// or path would be garbled. With the BOM every PowerShell reads UTF-8.
// Lines end in LF, which PowerShell accepts.
const utf8BOM = "\uFEFF"

// slot is where a drive is attached.
type slot struct {
	scsi       bool
	controller int
	location   int
}

func (s slot) String() string {
	if s.scsi {
		return fmt.Sprintf("SCSI %d:%d", s.controller, s.location)
	}
	return fmt.Sprintf("IDE %d:%d", s.controller, s.location)
}

// ideOrder is the order in which Generation 1 disks take IDE slots; a
// CD-ROM, when the machine has one, gets 1:0 (where Hyper-V puts its DVD
// drive), so the disks skip it.
var ideOrder = []slot{{false, 0, 0}, {false, 0, 1}, {false, 1, 0}, {false, 1, 1}}

// plan is the device layout of the generated machine.
type plan struct {
	gen       int
	bootDisk  int    // index into disks, -1 when there is none
	diskSlots []slot // per disk
	cdSlots   []slot // per CD-ROM; cdOK false for a dropped drive
	cdOK      []bool
	scsiCtls  int // SCSI controllers to add with Add-VMScsiController
}

// Emit writes <name>.ps1, mode 0644.
func (Target) Emit(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) ([]translate.OutFile, []translate.Warning, error) {
	mp, err := translate.Map(m, opts, Target{}.Caps())
	if err != nil {
		return nil, nil, fmt.Errorf("hyperv: %s: %w", m.Name, err)
	}
	b, warns, err := script(m, disks, mp)
	if err != nil {
		return nil, warns, err
	}
	return []translate.OutFile{{Name: translate.FileName(m.Name) + ".ps1", Data: b, Mode: 0o644}}, warns, nil
}

// Script returns the PowerShell script for m with its disks at disks, and
// the warnings of the mapping.
func Script(m *translate.Machine, disks []translate.TargetDisk) ([]byte, []translate.Warning, error) {
	mp, err := translate.Map(m, translate.Options{}, Target{}.Caps())
	if err != nil {
		return nil, nil, fmt.Errorf("hyperv: %s: %w", m.Name, err)
	}
	return script(m, disks, mp)
}

// script is Script with the options as mp resolved them: a NIC whose
// network --network-map names is connected to the switch of that name.
func script(m *translate.Machine, disks []translate.TargetDisk, mp *translate.Mapping) ([]byte, []translate.Warning, error) {
	warns := mp.Warnings
	warn := func(code, format string, args ...any) {
		warns = append(warns, translate.Warning{Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if m.CPUs <= 0 || m.MemoryMiB <= 0 {
		return nil, nil, fmt.Errorf("hyperv: %s: machine has %d CPUs and %d MiB of memory", m.Name, m.CPUs, m.MemoryMiB)
	}
	if len(disks) != len(m.Disks) {
		return nil, nil, fmt.Errorf("hyperv: %s: %d target disks for %d machine disks", m.Name, len(disks), len(m.Disks))
	}
	windows := isWindows(m)
	p, err := layout(m, disks)
	if err != nil {
		return nil, nil, err
	}

	memMiB := m.MemoryMiB
	if r := memMiB % memoryUnitMiB; r != 0 {
		memMiB += memoryUnitMiB - r
		warn(WarnMemory, "memory of %d MiB rounded up to %d MiB: Hyper-V assigns memory in units of %d MiB", m.MemoryMiB, memMiB, memoryUnitMiB)
	}
	memBytes := memMiB << 20

	if m.Firmware == translate.FirmwareUnknown && p.bootDisk >= 0 {
		if b := disks[p.bootDisk].Boot; b.HasESP && !b.HasBIOSBP {
			warn(WarnFirmware, "the source does not state its firmware and the boot disk has an EFI System Partition but no BIOS boot partition: Generation 1 (BIOS) was chosen and may not boot; change -Generation 1 to 2 in the script if the guest boots with UEFI")
		}
	}
	for i, d := range disks {
		switch f := strings.ToLower(d.Format); {
		case f != "vhdx" && f != "vhd":
			warn(WarnDiskFormat, "disk %d (%s) is %s, which Hyper-V cannot attach: use --format vhdx", i, comment(filepath.Base(d.Path)), comment(d.Format))
		case f == "vhd" && p.gen == 2:
			warn(WarnDiskFormat, "disk %d (%s) is a VHD, which a Generation 2 machine cannot attach: use --format vhdx", i, comment(filepath.Base(d.Path)))
		}
	}
	anySCSI := false
	for _, s := range p.diskSlots {
		anySCSI = anySCSI || s.scsi
	}
	if !windows && anySCSI {
		warn(WarnDrivers, "the guest is not known to be Windows and its disks are on Hyper-V's synthetic SCSI controller: the guest needs the Hyper-V drivers (hv_vmbus, hv_storvsc; hv_netvsc for the network) in its kernel or initramfs before the move")
	}

	for i, c := range m.CDROMs {
		if !p.cdOK[i] {
			warn(WarnCDROM, "CD-ROM %d (%s) dropped: a Generation 1 machine has DVD drives on IDE only and its %d IDE slots are taken", i, comment(orEmpty(c.Path)), ideSlots)
		}
	}
	outDir := ""
	if len(disks) > 0 {
		outDir = filepath.Dir(disks[0].Path)
	}

	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	b.WriteString(utf8BOM)
	b.WriteString("#Requires -Modules Hyper-V\n")
	b.WriteString("#Requires -RunAsAdministrator\n")
	w("# %s: generated by vmfs from %s (%s).\n", comment(m.Name), comment(m.Source), comment(m.SourceFormat))
	b.WriteString("# Creates the virtual machine on this Hyper-V host with its disks, DVD drives\n")
	b.WriteString("# and network adapters; it does not start it. Parameters:\n")
	b.WriteString("#   -VMPath      where Hyper-V keeps the machine (default: the host's default)\n")
	b.WriteString("#   -SwitchName  virtual switch for the network adapters (default: not connected)\n")
	b.WriteString("#   -DiskDir     folder holding the disk images (default: this script's folder)\n")
	b.WriteString("[CmdletBinding()]\n")
	b.WriteString("param(\n")
	b.WriteString("    [string]$VMPath = (Get-VMHost).VirtualMachinePath,\n")
	b.WriteString("    [string]$SwitchName = '',\n")
	b.WriteString("    [string]$DiskDir = $PSScriptRoot\n")
	b.WriteString(")\n")
	b.WriteString("$ErrorActionPreference = 'Stop'\n")
	b.WriteString("Set-StrictMode -Version 2.0\n\n")

	w("$vmName = %s\n", Quote(m.Name))
	for i, d := range disks {
		w("$disk%d = Join-Path -Path $DiskDir -ChildPath %s\n", i, Quote(filepath.Base(d.Path)))
	}
	for i, c := range m.CDROMs {
		if !p.cdOK[i] || c.Path == "" {
			continue
		}
		if rel, ok := inside(outDir, c.Path); ok {
			w("$iso%d = Join-Path -Path $DiskDir -ChildPath %s\n", i, Quote(rel))
		} else {
			w("$iso%d = %s\n", i, Quote(c.Path))
			warn(WarnCDROM, "CD-ROM %d image %s is not part of the output: copy it to the Hyper-V host and attach it with Set-VMDvdDrive; the script leaves the drive empty when it does not find the file", i, comment(c.Path))
		}
	}
	if len(disks) > 0 {
		b.WriteString("foreach ($f in @(")
		for i := range disks {
			if i > 0 {
				b.WriteString(", ")
			}
			w("$disk%d", i)
		}
		b.WriteString(")) {\n")
		b.WriteString("    if (-not (Test-Path -LiteralPath $f -PathType Leaf)) { throw ('disk image not found: ' + $f + ' (use -DiskDir)') }\n")
		b.WriteString("}\n")
	}
	b.WriteString("if (@(Get-VM | Where-Object { $_.Name -eq $vmName }).Count -gt 0) { throw ('a virtual machine with this name exists already: ' + $vmName) }\n\n")

	w("$vm = New-VM -Name $vmName -Generation %d -MemoryStartupBytes %d -NoVHD -Path $VMPath\n", p.gen, memBytes)
	b.WriteString("try {\n")
	w("    Set-VMMemory -VM $vm -DynamicMemoryEnabled $false -StartupBytes %d\n", memBytes)
	w("    Set-VMProcessor -VM $vm -Count %d\n", m.CPUs)
	b.WriteString("    # A migrated machine keeps its state only in its disks: no automatic checkpoints.\n")
	b.WriteString("    Set-VM -VM $vm -AutomaticCheckpointsEnabled $false\n")
	b.WriteString("    # New-VM adds a network adapter (and a DVD drive on Generation 1): start from none.\n")
	b.WriteString("    Remove-VMNetworkAdapter -VM $vm\n")
	b.WriteString("    Get-VMDvdDrive -VM $vm | Remove-VMDvdDrive\n")
	for i := 0; i < p.scsiCtls; i++ {
		b.WriteString("    Add-VMScsiController -VM $vm\n")
	}
	bootVar := ""
	for i, s := range p.diskSlots {
		src := m.Disks[i]
		w("    # disk %d: source %s\n", i, comment(string(src.Bus)+" "+src.Controller))
		pass := ""
		if i == p.bootDisk {
			pass = " -Passthru"
			bootVar = "$bootDrive"
			b.WriteString("    $bootDrive =")
		} else {
			b.WriteString("    $null =")
		}
		ct := "IDE"
		if s.scsi {
			ct = "SCSI"
		}
		w(" Add-VMHardDiskDrive -VM $vm -ControllerType %s -ControllerNumber %d -ControllerLocation %d -Path $disk%d%s\n", ct, s.controller, s.location, i, pass)
	}
	for i, c := range m.CDROMs {
		if !p.cdOK[i] {
			continue
		}
		s := p.cdSlots[i]
		assign := "$null ="
		pass := ""
		if bootVar == "" && p.gen == 2 {
			bootVar = "$bootDrive"
			assign = "$bootDrive ="
			pass = " -Passthru"
		}
		add := fmt.Sprintf("Add-VMDvdDrive -VM $vm -ControllerNumber %d -ControllerLocation %d", s.controller, s.location)
		if c.Path == "" {
			w("    %s %s%s\n", assign, add, pass)
			continue
		}
		w("    if (Test-Path -LiteralPath $iso%d -PathType Leaf) {\n", i)
		w("        %s %s -Path $iso%d%s\n", assign, add, i, pass)
		b.WriteString("    } else {\n")
		w("        Write-Warning ('ISO image not found, DVD drive left empty: ' + $iso%d)\n", i)
		w("        %s %s%s\n", assign, add, pass)
		b.WriteString("    }\n")
	}
	if len(m.NICs) > 0 {
		b.WriteString("    $net = @{}\n")
		b.WriteString("    if ($SwitchName -ne '') { $net['SwitchName'] = $SwitchName }\n")
	}
	for i, n := range m.NICs {
		if !synthetic(n.Model) {
			model := n.Model
			if model == "" {
				model = "unstated"
			}
			warn(WarnNIC, "NIC %d (source model %s) becomes a synthetic Hyper-V network adapter: the guest needs the Hyper-V network driver (hv_netvsc on Linux; in-box on Windows since Windows Server 2008) and sees a new adapter", i, comment(model))
		}
		w("    # NIC %d: source %s\n", i, comment(strings.TrimSpace(n.Model+" "+n.Type+" "+n.Network)))
		mac := ""
		if n.MAC != "" {
			if s, ok := staticMAC(n.MAC); ok {
				mac = " -StaticMacAddress " + Quote(s)
			} else {
				warn(WarnMAC, "NIC %d MAC address %q is malformed: Hyper-V assigns one", i, n.MAC)
			}
		}
		if i < len(mp.NICs) && mp.NICs[i].Mapped {
			// --network-map names this NIC's switch, whatever -SwitchName says.
			w("    Add-VMNetworkAdapter -VM $vm -Name %s%s -SwitchName %s\n", Quote(fmt.Sprintf("%s %d", defaultNICName, i+1)), mac, Quote(mp.NICs[i].Network))
			continue
		}
		w("    Add-VMNetworkAdapter -VM $vm -Name %s%s @net\n", Quote(fmt.Sprintf("%s %d", defaultNICName, i+1)), mac)
	}
	for i := range m.Serials {
		if i >= comPorts {
			warn(WarnSerial, "serial port %d dropped: Hyper-V has %d COM ports", i, comPorts)
			continue
		}
		pipe := fmt.Sprintf(`\\.\pipe\%s-com%d`, translate.FileName(m.Name), i+1)
		w("    Set-VMComPort -VM $vm -Number %d -Path %s\n", i+1, Quote(pipe))
	}
	if len(m.Serials) > 0 {
		warn(WarnSerial, "serial ports become named pipes (\\\\.\\pipe\\%s-com1 ...) on the Hyper-V host", translate.FileName(m.Name))
	}
	if p.gen == 2 {
		if m.SecureBoot {
			tmpl := secureUEFICA
			if windows {
				tmpl = secureWindows
			}
			w("    Set-VMFirmware -VM $vm -EnableSecureBoot On -SecureBootTemplate %s\n", Quote(tmpl))
		} else {
			b.WriteString("    Set-VMFirmware -VM $vm -EnableSecureBoot Off\n")
		}
		if bootVar != "" {
			w("    Set-VMFirmware -VM $vm -FirstBootDevice %s\n", bootVar)
		}
	}
	b.WriteString("} catch {\n")
	b.WriteString("    Remove-VM -VM $vm -Force\n")
	b.WriteString("    throw\n")
	b.WriteString("}\n")
	b.WriteString("Write-Host ('Created virtual machine ' + $vmName + ' (Id ' + $vm.Id + '). It is not started.')\n")
	b.WriteString("Write-Host ('Start it with: Get-VM -Id ' + $vm.Id + ' | Start-VM')\n")
	unmapped := 0
	for i := range m.NICs {
		if i >= len(mp.NICs) || !mp.NICs[i].Mapped {
			unmapped++
		}
	}
	if unmapped > 0 {
		b.WriteString("if ($SwitchName -eq '') { Write-Host 'The network adapters are not connected: run the script with -SwitchName, or use Connect-VMNetworkAdapter.' }\n")
	}
	return []byte(b.String()), warns, nil
}

// layout places the disks and CD-ROMs on Hyper-V's controllers.
func layout(m *translate.Machine, disks []translate.TargetDisk) (plan, error) {
	p := plan{gen: 1, bootDisk: -1}
	if m.Firmware == translate.UEFI {
		p.gen = 2
	}
	p.bootDisk = bootDisk(m, disks)
	p.diskSlots = make([]slot, len(disks))
	p.cdSlots = make([]slot, len(m.CDROMs))
	p.cdOK = make([]bool, len(m.CDROMs))
	scsiUsed := 0
	nextSCSI := func() (slot, bool) {
		if scsiUsed >= scsiMax*scsiLocations {
			return slot{}, false
		}
		s := slot{true, scsiUsed / scsiLocations, scsiUsed % scsiLocations}
		scsiUsed++
		return s, true
	}
	var order []int // disks, boot disk first
	if p.bootDisk >= 0 {
		order = append(order, p.bootDisk)
	}
	for i := range disks {
		if i != p.bootDisk {
			order = append(order, i)
		}
	}
	if p.gen == 2 {
		for _, i := range order {
			s, ok := nextSCSI()
			if !ok {
				return p, fmt.Errorf("hyperv: %s: %d disks and CD-ROMs do not fit on %d SCSI controllers", m.Name, len(disks)+len(m.CDROMs), scsiMax)
			}
			p.diskSlots[i] = s
		}
		for i := range m.CDROMs {
			s, ok := nextSCSI()
			if !ok {
				return p, fmt.Errorf("hyperv: %s: %d disks and CD-ROMs do not fit on %d SCSI controllers", m.Name, len(disks)+len(m.CDROMs), scsiMax)
			}
			p.cdSlots[i], p.cdOK[i] = s, true
		}
		// Generation 2 comes with SCSI controller 0.
		if scsiUsed > 0 {
			p.scsiCtls = (scsiUsed+scsiLocations-1)/scsiLocations - 1
		}
		return p, nil
	}
	// Generation 1: IDE for the boot disk and as many disks as fit, one
	// IDE slot kept for a CD-ROM (DVD drives attach to IDE only), the rest
	// on SCSI, which Generation 1 cannot boot from.
	reserved := slot{false, 1, 0}
	free := map[slot]bool{}
	for _, s := range ideOrder {
		free[s] = true
	}
	diskIDE := ideSlots
	if len(m.CDROMs) > 0 {
		diskIDE--
	}
	used := 0
	for _, i := range order {
		if used < diskIDE {
			for _, s := range ideOrder {
				if free[s] && (len(m.CDROMs) == 0 || s != reserved) {
					p.diskSlots[i] = s
					free[s] = false
					break
				}
			}
			used++
			continue
		}
		s, ok := nextSCSI()
		if !ok {
			return p, fmt.Errorf("hyperv: %s: %d disks do not fit on IDE and %d SCSI controllers", m.Name, len(disks), scsiMax)
		}
		p.diskSlots[i] = s
	}
	cdOrder := append([]slot{reserved}, ideOrder...)
	for i := range m.CDROMs {
		for _, s := range cdOrder {
			if free[s] {
				p.cdSlots[i], p.cdOK[i] = s, true
				free[s] = false
				break
			}
		}
	}
	if scsiUsed > 0 {
		p.scsiCtls = (scsiUsed + scsiLocations - 1) / scsiLocations
	}
	return p, nil
}

// bootDisk picks the disk to boot: the one with the lowest boot order the
// source states, else the first with a partition table, else the first.
func bootDisk(m *translate.Machine, disks []translate.TargetDisk) int {
	if len(disks) == 0 {
		return -1
	}
	best := -1
	for i, d := range m.Disks {
		if d.BootOrder > 0 && (best < 0 || d.BootOrder < m.Disks[best].BootOrder) {
			best = i
		}
	}
	if best >= 0 {
		return best
	}
	for i, d := range disks {
		if d.Boot.Table != "" {
			return i
		}
	}
	return 0
}

func orEmpty(path string) string {
	if path == "" {
		return "empty"
	}
	return path
}

// inside returns path relative to dir when path is inside dir.
func inside(dir, path string) (string, bool) {
	if dir == "" || !filepath.IsAbs(path) {
		return "", false
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// isWindows reports whether the guest is Windows, from the libosinfo id or
// the source's own guest OS identifier.
func isWindows(m *translate.Machine) bool {
	g := strings.ToLower(m.GuestOS)
	return strings.HasPrefix(m.OSInfo, "http://microsoft.com/win") ||
		strings.HasPrefix(g, "win") || strings.Contains(g, "windows") || strings.HasPrefix(g, "longhorn")
}

// synthetic reports whether a source NIC model already is Hyper-V's
// synthetic adapter.
func synthetic(model string) bool {
	switch strings.ToLower(model) {
	case "netvsc", "hv_netvsc", "hyperv", "hyper-v", "synthetic":
		return true
	}
	return false
}

// staticMAC turns aa:bb:cc:dd:ee:ff into AABBCCDDEEFF, the form
// -StaticMacAddress takes.
func staticMAC(mac string) (string, bool) {
	s := strings.ToUpper(strings.NewReplacer(":", "", "-", "").Replace(mac))
	if len(s) != 12 {
		return "", false
	}
	if _, err := strconv.ParseUint(s, 16, 64); err != nil {
		return "", false
	}
	return s, true
}

// singleQuotes are the characters PowerShell takes as a single quote: the
// ASCII apostrophe and the typographic quotes U+2018 to U+201B.
const singleQuotes = "'\u2018\u2019\u201a\u201b"

// Quote writes s as a PowerShell single-quoted string: nothing inside is
// expanded, and each quote character is escaped by doubling it. Bytes
// that are not UTF-8 become U+FFFD.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		if strings.ContainsRune(singleQuotes, r) {
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

// comment makes s safe inside a one-line # comment: line breaks (including
// the Unicode ones) and other control characters become spaces.
func comment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 {
			return ' '
		}
		return r
	}, s)
}
