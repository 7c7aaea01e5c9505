package hyperv

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode"

	"github.com/vmfs/vmfs/layouts/bootfacts"
	"github.com/vmfs/vmfs/translate"
)

// cmdlets is the allow-list of the cmdlets the script may call and the
// parameters it may pass them, written from the Hyper-V module reference
// (learn.microsoft.com/powershell/module/hyper-v) and, for the few
// Microsoft.PowerShell cmdlets, from their reference pages.
var cmdlets = map[string][]string{
	"New-VM":                  {"Name", "Generation", "MemoryStartupBytes", "NoVHD", "Path"},
	"Set-VMMemory":            {"VM", "DynamicMemoryEnabled", "StartupBytes"},
	"Set-VMProcessor":         {"VM", "Count"},
	"Set-VM":                  {"VM", "AutomaticCheckpointsEnabled"},
	"Remove-VMNetworkAdapter": {"VM"},
	"Get-VMDvdDrive":          {"VM"},
	"Remove-VMDvdDrive":       {},
	"Add-VMScsiController":    {"VM"},
	"Add-VMHardDiskDrive":     {"VM", "ControllerType", "ControllerNumber", "ControllerLocation", "Path", "Passthru"},
	"Add-VMDvdDrive":          {"VM", "ControllerNumber", "ControllerLocation", "Path", "Passthru"},
	"Add-VMNetworkAdapter":    {"VM", "Name", "StaticMacAddress", "SwitchName"}, // -SwitchName also through @net
	"Set-VMComPort":           {"VM", "Number", "Path"},
	"Set-VMFirmware":          {"VM", "EnableSecureBoot", "SecureBootTemplate", "FirstBootDevice"},
	"Remove-VM":               {"VM", "Force"},
	"Get-VM":                  {},
	"Get-VMHost":              {},
	"Join-Path":               {"Path", "ChildPath"},
	"Test-Path":               {"LiteralPath", "PathType"},
	"Where-Object":            {},
	"Write-Warning":           {},
	"Write-Host":              {},
	"Set-StrictMode":          {"Version"},
}

// words are the other bare words the script may hold: keywords, enum
// values, type names and member names. Source text is never among them.
var words = map[string]bool{
	"param": true, "string": true, "CmdletBinding": true, "if": true, "foreach": true, "in": true,
	"try": true, "catch": true, "throw": true, "else": true,
	"On": true, "Off": true, "IDE": true, "SCSI": true, "Leaf": true,
	"-eq": true, "-ne": true, "-gt": true, "-not": true,
	".VirtualMachinePath": true, ".Name": true, ".Count": true, ".Id": true, "2.0": true,
}

type token struct {
	kind byte // 'w' word, 's' single-quoted literal, 'v' variable, 'p' punctuation, 'n' end of line
	text string
}

const doubleQuotes = "\"\u201c\u201d\u201e"

// lex splits a script into tokens the way PowerShell reads what this
// package writes, and fails on anything it never writes: double-quoted or
// here-strings, backticks, subexpressions, block comments.
func lex(s string) ([]token, error) {
	var out []token
	r := []rune(s)
	isQ := func(c rune) bool { return strings.ContainsRune(singleQuotes, c) }
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case c == '\n':
			out = append(out, token{'n', ""})
			i++
		case c == ' ' || c == '\t':
			i++
		case c == '\r':
			return nil, fmt.Errorf("carriage return at rune %d", i)
		case c == '#':
			if i+1 < len(r) && r[i+1] == '>' || i > 0 && r[i-1] == '<' {
				return nil, fmt.Errorf("block comment at rune %d", i)
			}
			for i < len(r) && r[i] != '\n' {
				if r[i] == '\r' || r[i] == 0x85 || r[i] == 0x2028 || r[i] == 0x2029 {
					return nil, fmt.Errorf("line break %U inside a comment", r[i])
				}
				i++
			}
		case isQ(c):
			var b strings.Builder
			i++
			for {
				if i >= len(r) {
					return nil, fmt.Errorf("unterminated single-quoted string")
				}
				if isQ(r[i]) {
					if i+1 < len(r) && isQ(r[i+1]) {
						b.WriteRune(r[i+1])
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteRune(r[i])
				i++
			}
			out = append(out, token{'s', b.String()})
		case strings.ContainsRune(doubleQuotes, c):
			return nil, fmt.Errorf("double-quoted string at rune %d", i)
		case c == '`':
			return nil, fmt.Errorf("backtick at rune %d", i)
		case c == '$':
			if i+1 < len(r) && r[i+1] == '(' {
				return nil, fmt.Errorf("subexpression at rune %d", i)
			}
			j := i + 1
			for j < len(r) && (r[j] == '_' || unicode.IsLetter(r[j]) || unicode.IsDigit(r[j])) {
				j++
			}
			if j == i+1 {
				return nil, fmt.Errorf("bare $ at rune %d", i)
			}
			out = append(out, token{'v', string(r[i:j])})
			i = j
		case c == '@':
			if i+1 < len(r) && (isQ(r[i+1]) || strings.ContainsRune(doubleQuotes, r[i+1])) {
				return nil, fmt.Errorf("here-string at rune %d", i)
			}
			if i+1 < len(r) && r[i+1] != '(' && r[i+1] != '{' {
				// splatting: @name
				j := i + 1
				for j < len(r) && (unicode.IsLetter(r[j]) || unicode.IsDigit(r[j])) {
					j++
				}
				out = append(out, token{'v', string(r[i:j])})
				i = j
				continue
			}
			out = append(out, token{'p', "@"})
			i++
		case strings.ContainsRune("(){}[];|,=+", c):
			out = append(out, token{'p', string(c)})
			i++
		default:
			j := i
			for j < len(r) && !unicode.IsSpace(r[j]) && !strings.ContainsRune("(){}[];|,=+$@#`"+singleQuotes+doubleQuotes, r[j]) {
				j++
			}
			out = append(out, token{'w', string(r[i:j])})
			i = j
		}
	}
	return out, nil
}

var (
	cmdletRe = regexp.MustCompile(`^[A-Z][a-zA-Z]+-[A-Z][a-zA-Z]+$`)
	numberRe = regexp.MustCompile(`^[0-9]+$`)
)

// checkScript checks the invariants every generated script keeps and
// returns its single-quoted literals, unescaped.
func checkScript(t testing.TB, script []byte) []string {
	t.Helper()
	s := string(script)
	if !strings.HasPrefix(s, utf8BOM) {
		t.Fatalf("no UTF-8 byte order mark")
	}
	s = strings.TrimPrefix(s, utf8BOM)
	lines := strings.Split(s, "\n")
	if lines[0] != "#Requires -Modules Hyper-V" || lines[1] != "#Requires -RunAsAdministrator" || !strings.HasPrefix(lines[2], "# ") {
		t.Fatalf("header:\n%s", strings.Join(lines[:3], "\n"))
	}
	if !strings.Contains(s, "\n)\n$ErrorActionPreference = 'Stop'\n") {
		t.Errorf("$ErrorActionPreference = 'Stop' does not follow the param block")
	}
	toks, err := lex(s)
	if err != nil {
		t.Fatalf("lex: %v\n%s", err, s)
	}
	first := 0
	for first < len(toks) && toks[first].kind == 'n' {
		first++
	}
	if first+1 >= len(toks) || toks[first].text != "[" || toks[first+1].text != "CmdletBinding" {
		t.Errorf("the first statement is not the param block")
	}
	var lits []string
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		switch tk.kind {
		case 's':
			lits = append(lits, tk.text)
		case 'w':
			if params, ok := cmdlets[tk.text]; ok {
				for j := i + 1; j < len(toks); j++ {
					n := toks[j]
					if n.kind == 'n' || n.kind == 'p' && strings.Contains(";|}){", n.text) {
						break
					}
					if n.kind == 'w' && strings.HasPrefix(n.text, "-") {
						if !contains(params, n.text[1:]) {
							t.Errorf("%s: parameter %s is not in the allow-list", tk.text, n.text)
						}
					}
				}
				continue
			}
			if cmdletRe.MatchString(tk.text) {
				t.Errorf("cmdlet %s is not in the allow-list", tk.text)
				continue
			}
			if strings.HasPrefix(tk.text, "-") && i > 0 {
				// A parameter: checked with its cmdlet, or an operator.
				if !words[tk.text] && !inCmdlet(toks, i) {
					t.Errorf("stray parameter or operator %q", tk.text)
				}
				continue
			}
			if !words[tk.text] && !numberRe.MatchString(tk.text) {
				t.Errorf("unexpected bare word %q", tk.text)
			}
		}
	}
	return lits
}

// inCmdlet reports whether the parameter at toks[i] follows an allowed
// cmdlet in the same statement.
func inCmdlet(toks []token, i int) bool {
	for j := i - 1; j >= 0; j-- {
		n := toks[j]
		if n.kind == 'n' || n.kind == 'p' && strings.Contains(";|}){", n.text) {
			return false
		}
		if n.kind == 'w' {
			if _, ok := cmdlets[n.text]; ok {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func codes(ws []translate.Warning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Code)
	}
	sort.Strings(out)
	return out
}

// td makes target disks in /out named after the machine.
func td(formats ...string) []translate.TargetDisk {
	var out []translate.TargetDisk
	for i, f := range formats {
		out = append(out, translate.TargetDisk{Path: fmt.Sprintf("/out/vm-disk%d.%s", i, f), Format: f, Size: 1 << 30})
	}
	return out
}

func mdisks(n int, bus translate.Bus) []translate.Disk {
	out := make([]translate.Disk, n)
	for i := range out {
		out[i] = translate.Disk{Path: fmt.Sprintf("/src/d%d.vmdk", i), Bus: bus, Controller: "lsilogic", Unit: i}
	}
	return out
}

func vhdx(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "vhdx"
	}
	return out
}

func TestScript(t *testing.T) {
	linuxBIOS := func() *translate.Machine {
		return &translate.Machine{Name: "vm", CPUs: 2, MemoryMiB: 1024, Firmware: translate.BIOS, GuestOS: "debian10-64",
			OSInfo: "http://debian.org/debian/10", Disks: mdisks(1, translate.BusSCSI), Source: "/src/vm.vmx", SourceFormat: "vmx"}
	}
	cases := []struct {
		name    string
		m       func() *translate.Machine
		disks   []translate.TargetDisk
		want    []string // lines (trimmed) the script must hold
		notWant []string // substrings it must not hold
		codes   []string // warning codes, sorted
		err     string
	}{
		{
			name: "bios-linux-nic-serial",
			m: func() *translate.Machine {
				m := linuxBIOS()
				m.NICs = []translate.NIC{{MAC: "00:50:56:0a:bc:de", Model: "e1000", Network: "VM Network", Type: "bridge"}}
				m.Serials = []translate.Serial{{Type: "pipe", Path: "/tmp/s"}}
				return m
			},
			disks: td("vhdx"),
			want: []string{
				"$vm = New-VM -Name $vmName -Generation 1 -MemoryStartupBytes 1073741824 -NoVHD -Path $VMPath",
				"Set-VMMemory -VM $vm -DynamicMemoryEnabled $false -StartupBytes 1073741824",
				"Set-VMProcessor -VM $vm -Count 2",
				"$bootDrive = Add-VMHardDiskDrive -VM $vm -ControllerType IDE -ControllerNumber 0 -ControllerLocation 0 -Path $disk0 -Passthru",
				"Add-VMNetworkAdapter -VM $vm -Name 'Network Adapter 1' -StaticMacAddress '0050560ABCDE' @net",
				`Set-VMComPort -VM $vm -Number 1 -Path '\\.\pipe\vm-com1'`,
				"$disk0 = Join-Path -Path $DiskDir -ChildPath 'vm-disk0.vhdx'",
				"Set-VM -VM $vm -AutomaticCheckpointsEnabled $false",
			},
			notWant: []string{"Set-VMFirmware", "Add-VMScsiController", "Start-VM -", "SCSI"},
			codes:   []string{WarnNIC, WarnSerial},
		},
		{
			name: "uefi-windows-secureboot",
			m: func() *translate.Machine {
				return &translate.Machine{Name: "win", CPUs: 4, MemoryMiB: 4096, Firmware: translate.UEFI, SecureBoot: true,
					GuestOS: "windows9-64", OSInfo: "http://microsoft.com/win/10", Disks: mdisks(1, translate.BusSATA)}
			},
			disks: td("vhdx"),
			want: []string{
				"$vm = New-VM -Name $vmName -Generation 2 -MemoryStartupBytes 4294967296 -NoVHD -Path $VMPath",
				"$bootDrive = Add-VMHardDiskDrive -VM $vm -ControllerType SCSI -ControllerNumber 0 -ControllerLocation 0 -Path $disk0 -Passthru",
				"Set-VMFirmware -VM $vm -EnableSecureBoot On -SecureBootTemplate 'MicrosoftWindows'",
				"Set-VMFirmware -VM $vm -FirstBootDevice $bootDrive",
			},
			notWant: []string{"Add-VMScsiController", "IDE"},
		},
		{
			name: "uefi-linux-secureboot",
			m: func() *translate.Machine {
				return &translate.Machine{Name: "lin", CPUs: 1, MemoryMiB: 512, Firmware: translate.UEFI, SecureBoot: true,
					GuestOS: "ubuntu-64", Disks: mdisks(2, translate.BusSCSI)}
			},
			disks: td("vhdx", "vhdx"),
			want: []string{
				"Set-VMFirmware -VM $vm -EnableSecureBoot On -SecureBootTemplate 'MicrosoftUEFICertificateAuthority'",
				"$null = Add-VMHardDiskDrive -VM $vm -ControllerType SCSI -ControllerNumber 0 -ControllerLocation 1 -Path $disk1",
			},
			codes: []string{WarnDrivers},
		},
		{
			name: "uefi-no-secureboot-unknown-os",
			m: func() *translate.Machine {
				return &translate.Machine{Name: "u", CPUs: 1, MemoryMiB: 512, Firmware: translate.UEFI, Disks: mdisks(1, translate.BusVirtio)}
			},
			disks: td("vhdx"),
			want:  []string{"Set-VMFirmware -VM $vm -EnableSecureBoot Off"},
			codes: []string{WarnDrivers},
		},
		{
			name: "gen1-ide-overflow-keeps-cdrom-slot",
			m: func() *translate.Machine {
				m := linuxBIOS()
				m.Disks = mdisks(6, translate.BusSCSI)
				m.CDROMs = []translate.CDROM{{Bus: translate.BusIDE}}
				return m
			},
			disks: td(vhdx(6)...),
			want: []string{
				"$bootDrive = Add-VMHardDiskDrive -VM $vm -ControllerType IDE -ControllerNumber 0 -ControllerLocation 0 -Path $disk0 -Passthru",
				"$null = Add-VMHardDiskDrive -VM $vm -ControllerType IDE -ControllerNumber 0 -ControllerLocation 1 -Path $disk1",
				"$null = Add-VMHardDiskDrive -VM $vm -ControllerType IDE -ControllerNumber 1 -ControllerLocation 1 -Path $disk2",
				"$null = Add-VMHardDiskDrive -VM $vm -ControllerType SCSI -ControllerNumber 0 -ControllerLocation 0 -Path $disk3",
				"$null = Add-VMHardDiskDrive -VM $vm -ControllerType SCSI -ControllerNumber 0 -ControllerLocation 2 -Path $disk5",
				"$null = Add-VMDvdDrive -VM $vm -ControllerNumber 1 -ControllerLocation 0",
				"Add-VMScsiController -VM $vm",
			},
			codes: []string{WarnDrivers},
		},
		{
			name: "gen1-four-ide-disks-without-cdrom",
			m: func() *translate.Machine {
				m := linuxBIOS()
				m.Disks = mdisks(5, translate.BusIDE)
				return m
			},
			disks: td(vhdx(5)...),
			want: []string{
				"$null = Add-VMHardDiskDrive -VM $vm -ControllerType IDE -ControllerNumber 1 -ControllerLocation 0 -Path $disk2",
				"$null = Add-VMHardDiskDrive -VM $vm -ControllerType IDE -ControllerNumber 1 -ControllerLocation 1 -Path $disk3",
				"$null = Add-VMHardDiskDrive -VM $vm -ControllerType SCSI -ControllerNumber 0 -ControllerLocation 0 -Path $disk4",
			},
			codes: []string{WarnDrivers},
		},
		{
			name: "gen1-boot-order-picks-boot-disk",
			m: func() *translate.Machine {
				m := linuxBIOS()
				m.Disks = mdisks(2, translate.BusIDE)
				m.Disks[1].BootOrder = 1
				return m
			},
			disks: td("vhdx", "vhdx"),
			want: []string{
				"$bootDrive = Add-VMHardDiskDrive -VM $vm -ControllerType IDE -ControllerNumber 0 -ControllerLocation 0 -Path $disk1 -Passthru",
				"$null = Add-VMHardDiskDrive -VM $vm -ControllerType IDE -ControllerNumber 0 -ControllerLocation 1 -Path $disk0",
			},
		},
		{
			name: "gen1-cdroms-beyond-ide-dropped",
			m: func() *translate.Machine {
				m := linuxBIOS()
				m.Disks = mdisks(3, translate.BusIDE)
				m.CDROMs = []translate.CDROM{{}, {}, {}}
				return m
			},
			disks: td(vhdx(3)...),
			want:  []string{"$null = Add-VMDvdDrive -VM $vm -ControllerNumber 1 -ControllerLocation 0"},
			codes: []string{WarnCDROM, WarnCDROM},
		},
		{
			name: "gen2-cdroms-iso-inside-and-outside",
			m: func() *translate.Machine {
				return &translate.Machine{Name: "c", CPUs: 1, MemoryMiB: 512, Firmware: translate.UEFI, OSInfo: "http://microsoft.com/win/11",
					Disks:  mdisks(1, translate.BusSATA),
					CDROMs: []translate.CDROM{{Path: "/out/media/install.iso"}, {Path: "/isos/tools.iso"}, {}}}
			},
			disks: td("vhdx"),
			want: []string{
				"$iso0 = Join-Path -Path $DiskDir -ChildPath 'media/install.iso'",
				"$iso1 = '/isos/tools.iso'",
				"$null = Add-VMDvdDrive -VM $vm -ControllerNumber 0 -ControllerLocation 1 -Path $iso0",
				"$null = Add-VMDvdDrive -VM $vm -ControllerNumber 0 -ControllerLocation 2 -Path $iso1",
				"$null = Add-VMDvdDrive -VM $vm -ControllerNumber 0 -ControllerLocation 3",
				"Write-Warning ('ISO image not found, DVD drive left empty: ' + $iso1)",
			},
			codes: []string{WarnCDROM},
		},
		{
			name: "gen2-cdrom-only-boots-from-dvd",
			m: func() *translate.Machine {
				return &translate.Machine{Name: "c", CPUs: 1, MemoryMiB: 512, Firmware: translate.UEFI, OSInfo: "http://microsoft.com/win/11",
					CDROMs: []translate.CDROM{{}}}
			},
			want: []string{
				"$bootDrive = Add-VMDvdDrive -VM $vm -ControllerNumber 0 -ControllerLocation 0 -Passthru",
				"Set-VMFirmware -VM $vm -FirstBootDevice $bootDrive",
			},
			notWant: []string{"foreach"},
		},
		{
			name: "unsupported-formats",
			m: func() *translate.Machine {
				m := linuxBIOS()
				m.Disks = mdisks(3, translate.BusIDE)
				return m
			},
			disks: td("qcow2", "vhd", "raw"),
			want:  []string{"$disk0 = Join-Path -Path $DiskDir -ChildPath 'vm-disk0.qcow2'"},
			codes: []string{WarnDiskFormat, WarnDiskFormat},
		},
		{
			name: "vhd-on-gen2",
			m: func() *translate.Machine {
				return &translate.Machine{Name: "v", CPUs: 1, MemoryMiB: 512, Firmware: translate.UEFI, GuestOS: "windows9-64", Disks: mdisks(1, translate.BusSCSI)}
			},
			disks: td("vhd"),
			want:  []string{"$disk0 = Join-Path -Path $DiskDir -ChildPath 'vm-disk0.vhd'"},
			codes: []string{WarnDiskFormat},
		},
		{
			name: "nics-without-mac-and-malformed-mac",
			m: func() *translate.Machine {
				m := linuxBIOS()
				m.NICs = []translate.NIC{{Model: "vmxnet3"}, {MAC: "zz:zz", Model: "netvsc"}, {MAC: "02-00-00-AA-bb-01", Model: "virtio"}}
				return m
			},
			disks: td("vhdx"),
			want: []string{
				"Add-VMNetworkAdapter -VM $vm -Name 'Network Adapter 1' @net",
				"Add-VMNetworkAdapter -VM $vm -Name 'Network Adapter 2' @net",
				"Add-VMNetworkAdapter -VM $vm -Name 'Network Adapter 3' -StaticMacAddress '020000AABB01' @net",
				"if ($SwitchName -ne '') { $net['SwitchName'] = $SwitchName }",
			},
			codes: []string{WarnMAC, WarnNIC, WarnNIC},
		},
		{
			name: "odd-memory-three-serials",
			m: func() *translate.Machine {
				m := linuxBIOS()
				m.MemoryMiB = 513
				m.Serials = []translate.Serial{{}, {}, {}}
				return m
			},
			disks: td("vhdx"),
			want: []string{
				"$vm = New-VM -Name $vmName -Generation 1 -MemoryStartupBytes 538968064 -NoVHD -Path $VMPath",
				`Set-VMComPort -VM $vm -Number 2 -Path '\\.\pipe\vm-com2'`,
			},
			notWant: []string{"-Number 3"},
			codes:   []string{WarnMemory, WarnSerial, WarnSerial},
		},
		{
			name: "unknown-firmware-uefi-only-disk",
			m: func() *translate.Machine {
				m := linuxBIOS()
				m.Firmware = translate.FirmwareUnknown
				return m
			},
			disks: []translate.TargetDisk{{Path: "/out/vm-disk0.vhdx", Format: "vhdx", Boot: bootfacts.Facts{Table: "gpt", HasESP: true}}},
			want:  []string{"$vm = New-VM -Name $vmName -Generation 1 -MemoryStartupBytes 1073741824 -NoVHD -Path $VMPath"},
			codes: []string{WarnFirmware},
		},
		{
			name:  "no-cpus",
			m:     func() *translate.Machine { m := linuxBIOS(); m.CPUs = 0; return m },
			disks: td("vhdx"),
			err:   "hyperv: vm: machine has 0 CPUs",
		},
		{
			name:  "disk-count-mismatch",
			m:     linuxBIOS,
			disks: td("vhdx", "vhdx"),
			err:   "hyperv: vm: 2 target disks for 1 machine disks",
		},
		{
			name: "too-many-disks-gen2",
			m: func() *translate.Machine {
				return &translate.Machine{Name: "big", CPUs: 1, MemoryMiB: 512, Firmware: translate.UEFI, Disks: mdisks(257, translate.BusSCSI)}
			},
			disks: td(vhdx(257)...),
			err:   "do not fit on 4 SCSI controllers",
		},
		{
			name: "gen2-many-disks-extra-controllers",
			m: func() *translate.Machine {
				return &translate.Machine{Name: "big", CPUs: 1, MemoryMiB: 512, Firmware: translate.UEFI, GuestOS: "windows9-64", Disks: mdisks(130, translate.BusSCSI)}
			},
			disks: td(vhdx(130)...),
			want: []string{
				"$null = Add-VMHardDiskDrive -VM $vm -ControllerType SCSI -ControllerNumber 2 -ControllerLocation 1 -Path $disk129",
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.m()
			out, warns, err := Target{}.Emit(m, c.disks, translate.Options{})
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 1 || out[0].Name != translate.FileName(m.Name)+".ps1" || out[0].Mode != 0o644 {
				t.Fatalf("files %+v", out)
			}
			script := out[0].Data
			checkScript(t, script)
			lines := map[string]bool{}
			for _, l := range strings.Split(string(script), "\n") {
				lines[strings.TrimSpace(l)] = true
			}
			for _, w := range c.want {
				if !lines[w] {
					t.Errorf("no line %q in:\n%s", w, script)
				}
			}
			for _, nw := range c.notWant {
				if strings.Contains(string(script), nw) {
					t.Errorf("script holds %q:\n%s", nw, script)
				}
			}
			if got := codes(warns); strings.Join(got, " ") != strings.Join(c.codes, " ") {
				t.Errorf("warnings %v, want %v", warns, c.codes)
			}
			for _, w := range warns {
				if w.Message == "" || strings.ContainsAny(w.Message, "\n") {
					t.Errorf("warning message %q", w.Message)
				}
			}
			// Count the drives: every disk and every kept CD-ROM once.
			if n := strings.Count(string(script), "Add-VMHardDiskDrive -VM"); n != len(c.disks) {
				t.Errorf("%d Add-VMHardDiskDrive for %d disks", n, len(c.disks))
			}
		})
	}
}

// hostile are names that would break out of a quoted string or run code
// if they were quoted wrongly.
var hostile = []string{
	`it's`,
	`'; Remove-Item -Recurse C:\ ; '`,
	`$(Remove-Item C:\)`,
	"`$env:PATH`",
	"new\nline\r\nand cr",
	`semi;colon|pipe&amp`,
	"\u2018typographic\u2019 \u201aquotes\u201b '\u2019",
	`"double" “smart” „low“`,
	`# not a comment <# nor this #>`,
	`@' here '@ @" here "@`,
	"tab\there\u2028ls\u2029ps\u0085nel",
	"Ünïcödé 名前 🚀",
	`C:\Windows\..\*?[a-z]`,
	"",
	"'",
	"''",
	"'''",
}

// TestNetworkMap: a NIC whose network --network-map names is connected to
// the switch of that name, quoted; the others follow -SwitchName.
func TestNetworkMap(t *testing.T) {
	m := &translate.Machine{Name: "vm", CPUs: 1, MemoryMiB: 512, Firmware: translate.BIOS, Disks: mdisks(1, translate.BusSATA),
		NICs: []translate.NIC{{Model: "e1000", Network: "VM Network"}, {Model: "e1000", Network: "inside"}}}
	out, warns, err := Target{}.Emit(m, td("vhdx"), translate.Options{NetworkMap: map[string]string{"VM Network": "Ext'ernal $x"}})
	if err != nil {
		t.Fatal(err)
	}
	script := string(out[0].Data)
	checkScript(t, out[0].Data)
	for _, w := range []string{
		"Add-VMNetworkAdapter -VM $vm -Name 'Network Adapter 1' -SwitchName 'Ext''ernal $x'\n",
		"Add-VMNetworkAdapter -VM $vm -Name 'Network Adapter 2' @net\n",
	} {
		if !strings.Contains(script, w) {
			t.Errorf("script lacks %q:\n%s", w, script)
		}
	}
	for _, w := range warns {
		if w.Code == translate.WarnIgnored || w.Code == translate.WarnNetMapUnused {
			t.Errorf("warning %v for an option the target applied", w)
		}
	}
}

func TestHostileNames(t *testing.T) {
	for i, name := range hostile {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			m := &translate.Machine{Name: name, CPUs: 1, MemoryMiB: 256, Firmware: translate.UEFI, SecureBoot: true, GuestOS: name,
				Source: name, SourceFormat: name,
				Disks:   []translate.Disk{{Bus: translate.Bus(name), Controller: name}},
				CDROMs:  []translate.CDROM{{Path: "/isos/" + name + ".iso"}, {Path: "/out/" + name + ".iso"}},
				NICs:    []translate.NIC{{MAC: name, Model: name, Network: name, Type: name}},
				Serials: []translate.Serial{{Type: name, Path: name}}}
			disks := []translate.TargetDisk{{Path: "/out/" + name + "-disk0.vhdx", Format: "vhdx"}}
			script, warns, err := Script(m, disks)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range warns {
				if strings.ContainsAny(w.Message, "\r\n\u2028\u2029\u0085") {
					t.Errorf("warning breaks its line: %q", w.Message)
				}
			}
			lits := checkScript(t, script)
			for _, want := range []string{name, name + "-disk0.vhdx", "/isos/" + name + ".iso", name + ".iso"} {
				if strings.Contains(want, "/") && strings.Contains(name, "/") {
					continue
				}
				if !contains(lits, want) {
					t.Errorf("literal %q not round-tripped; literals %q", want, lits)
				}
			}
		})
	}
}

func TestQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "''"},
		{"a", "'a'"},
		{"it's", "'it''s'"},
		{"\u2019", "'\u2019\u2019'"},
		{"$x `y` \"z\"", "'$x `y` \"z\"'"},
	} {
		t.Run(c.in, func(t *testing.T) {
			if got := Quote(c.in); got != c.want {
				t.Errorf("Quote(%q) = %q, want %q", c.in, got, c.want)
			}
			toks, err := lex(Quote(c.in))
			if err != nil || len(toks) != 1 || toks[0].kind != 's' || toks[0].text != c.in {
				t.Errorf("lex(Quote(%q)) = %v, %v", c.in, toks, err)
			}
		})
	}
}

// FuzzScript generates scripts from arbitrary source text and checks the
// invariants: no panic, every string a single-quoted literal that reads
// back as the input, only allowed cmdlets and parameters.
func FuzzScript(f *testing.F) {
	for _, h := range hostile {
		f.Add(h, "/isos/"+h, "e1000", "00:11:22:33:44:55", uint8(0))
	}
	f.Add("vm", "/out/a.iso", "", "", uint8(7))
	f.Fuzz(func(t *testing.T, name, iso, model, mac string, flags uint8) {
		m := &translate.Machine{Name: name, CPUs: 1 + int(flags%3), MemoryMiB: 1 + int64(flags), GuestOS: model,
			Disks:  mdisks(1+int(flags%7), translate.BusSCSI),
			CDROMs: []translate.CDROM{{Path: iso}},
			NICs:   []translate.NIC{{MAC: mac, Model: model}}}
		if flags&1 != 0 {
			m.Firmware = translate.UEFI
			m.SecureBoot = flags&2 != 0
		}
		if flags&4 != 0 {
			m.Serials = []translate.Serial{{Path: name}}
		}
		var disks []translate.TargetDisk
		for i := range m.Disks {
			disks = append(disks, translate.TargetDisk{Path: fmt.Sprintf("/out/%s-%d.vhdx", name, i), Format: "vhdx"})
		}
		script, _, err := Script(m, disks)
		if err != nil {
			t.Fatal(err)
		}
		lits := checkScript(t, script)
		// Invalid UTF-8 reads back as U+FFFD, one per byte.
		if !contains(lits, string([]rune(name))) {
			t.Fatalf("name %q not among literals %q", name, lits)
		}
	})
}

func BenchmarkScript(b *testing.B) {
	m := &translate.Machine{Name: "bench", CPUs: 4, MemoryMiB: 4096, Firmware: translate.UEFI, SecureBoot: true, GuestOS: "windows9-64",
		Disks: mdisks(8, translate.BusSCSI), CDROMs: []translate.CDROM{{Path: "/out/x.iso"}},
		NICs: []translate.NIC{{MAC: "00:11:22:33:44:55", Model: "e1000"}, {Model: "vmxnet3"}}, Serials: []translate.Serial{{}}}
	disks := td(vhdx(8)...)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, _, err := Script(m, disks); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLexRejects: the checks would see a quoting mistake.
func TestLexRejects(t *testing.T) {
	for _, c := range []struct{ name, in string }{
		{"double-quotes", `$a = "x"`},
		{"smart-double-quotes", "$a = \u201cx\u201d"},
		{"backtick", "$a = 'x'`n"},
		{"subexpression", "Write-Host $(Get-VM)"},
		{"unterminated", "$a = 'it''s"},
		{"here-string", "$a = @'\nx\n'@"},
		{"block-comment", "<# x #>"},
		{"carriage-return", "$a = 1\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if toks, err := lex(c.in); err == nil {
				t.Errorf("lex(%q) = %v, want an error", c.in, toks)
			}
		})
	}
	// A quote not doubled leaves source text as code: a stray word, or
	// an unterminated string.
	t.Run("undoubled-quote", func(t *testing.T) {
		toks, err := lex("$vmName = 'it's'")
		if err != nil {
			return
		}
		for _, tk := range toks {
			if tk.kind == 'w' && tk.text == "s" {
				return
			}
		}
		t.Errorf("lex = %v: the stray word is not visible", toks)
	})
}
