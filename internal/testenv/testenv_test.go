package testenv

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestQEMUArgs(t *testing.T) {
	cases := []struct {
		name string
		m    Machine
		want []string // substrings of the joined args
		err  string
	}{
		{name: "bios-ide", m: Machine{Disks: []Disk{{Path: "/d.raw", Bus: "ide"}}},
			want: []string{"-machine pc", "-accel tcg", "-m 256", "if=none,id=d0,format=raw,file=/d.raw",
				"ide-hd,drive=d0,bus=ide.0,unit=0,bootindex=1", "-serial file:/s"}},
		{name: "uefi-sata-kvm", m: Machine{Firmware: UEFI, Accel: "kvm", MemoryMiB: 512,
			Disks: []Disk{{Path: "/a,b.qcow2", Format: "qcow2", Snapshot: true}, {Path: "/e.raw", ReadOnly: true}}},
			want: []string{"-machine q35", "-accel kvm", "-m 512", "readonly=on,file=/code",
				"if=pflash,format=raw,file=/vars", "format=qcow2,file=/a,,b.qcow2,snapshot=on",
				"-device ahci,id=c0", "ide-hd,drive=d0,bus=c0.0,bootindex=1", "ide-hd,drive=d1,bus=c0.1",
				"file=/e.raw,readonly=on"}},
		{name: "scsi-kinds", m: Machine{NIC: "vmxnet3", MAC: "00:50:56:3f:00:19", Disks: []Disk{
			{Path: "/0", Bus: "pvscsi"}, {Path: "/1", Bus: "pvscsi"}, {Path: "/2", Bus: "virtio-scsi"},
			{Path: "/3", Bus: "lsilogic"}, {Path: "/4", Bus: "virtio"}}},
			want: []string{"-device pvscsi,id=c0", "scsi-hd,drive=d0,bus=c0.0,scsi-id=0,bootindex=1",
				"scsi-hd,drive=d1,bus=c0.0,scsi-id=1", "-device virtio-scsi-pci,id=c1",
				"-device lsi53c895a,id=c2", "virtio-blk-pci,drive=d4", "-nic user,model=vmxnet3,mac=00:50:56:3f:00:19"}},
		{name: "no-disk", m: Machine{}, err: "no disk"},
		{name: "bad-bus", m: Machine{Disks: []Disk{{Path: "/x", Bus: "floppy"}}}, err: "unknown disk bus"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args, err := QEMUArgs(c.m, "/s", "/code", "/vars")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(args, " ")
			for _, w := range c.want {
				if !strings.Contains(joined, w) {
					t.Errorf("args lack %q:\n%s", w, joined)
				}
			}
		})
	}
}

const sampleDomain = `<domain type="kvm">
  <name>vm</name>
  <memory unit="KiB">524288</memory>
  <os firmware="efi"><type arch="x86_64" machine="pc-q35-7.2">hvm</type></os>
  <cpu mode="host-passthrough"/>
  <devices>
    <disk type="file" device="cdrom"><source file="/iso"/><target dev="sdc" bus="sata"/></disk>
    <disk type="file" device="disk"><driver name="qemu" type="qcow2"/><source file="/mnt/vm-disk1.qcow2"/>
      <target dev="sdb" bus="scsi"/><address type="drive" controller="1" bus="0" target="0" unit="0"/></disk>
    <disk type="file" device="disk"><driver name="qemu" type="raw"/><source file="/mnt/vm-disk0.raw"/>
      <target dev="sda" bus="scsi"/><boot order="1"/><readonly/></disk>
    <controller type="scsi" index="0" model="vmpvscsi"/>
    <controller type="scsi" index="1" model="virtio-scsi"/>
    <interface type="network"><source network="default"/><model type="virtio"/></interface>
    <serial type="pty"><target port="0"/></serial>
    <console type="pty"><target type="serial" port="0"/></console>
    <graphics type="vnc" port="-1"/>
  </devices>
</domain>`

func TestMachineFromDomain(t *testing.T) {
	cases := []struct {
		name string
		xml  string
		want Machine
		err  string
	}{
		{name: "efi-two-scsi", xml: sampleDomain, want: Machine{Firmware: UEFI, Type: "q35", MemoryMiB: 512,
			NIC: "virtio-net-pci", Disks: []Disk{
				{Path: "/mnt/vm-disk0.raw", Format: "raw", Bus: "pvscsi", ReadOnly: true},
				{Path: "/mnt/vm-disk1.qcow2", Format: "qcow2", Bus: "virtio-scsi"}}}},
		{name: "bios-sata", xml: `<domain type="kvm"><name>x</name><memory unit="MiB">256</memory>
			<os><type machine="pc">hvm</type></os><devices><disk type="file" device="disk">
			<source file="/d"/><target dev="sda" bus="sata"/></disk></devices></domain>`,
			want: Machine{Firmware: BIOS, Type: "pc", MemoryMiB: 256, Disks: []Disk{{Path: "/d", Format: "raw", Bus: "sata"}}}},
		{name: "no-disk", xml: `<domain type="kvm"><name>x</name><os><type>hvm</type></os><devices/></domain>`, err: "no disk"},
		{name: "bad-xml", xml: `<domain`, err: "domain xml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := MachineFromDomain([]byte(c.xml))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, c.want) {
				t.Errorf("got  %+v\nwant %+v", m, c.want)
			}
		})
	}
}

func TestDomainRewrite(t *testing.T) {
	cases := []struct {
		name, accel string
		want, not   []string
	}{
		{name: "tcg", accel: "tcg",
			want: []string{`<domain type="qemu">`, `<name>vmfs-x</name>`, `<serial type="file">`,
				`<source path="/tmp/s.log">`, `<interface type="user">`, `<model type="virtio">`,
				`<on_reboot>destroy</on_reboot>`, `/mnt/vm-disk0.raw`},
			not: []string{"host-passthrough", "<console", "<graphics", "<uuid", `network="default"`}},
		{name: "kvm", accel: "kvm", want: []string{`<domain type="kvm">`, "host-passthrough"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := DomainRewrite([]byte(sampleDomain), "vmfs-x", c.accel, "/tmp/s.log")
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("lacks %q:\n%s", w, out)
				}
			}
			for _, n := range c.not {
				if strings.Contains(string(out), n) {
					t.Errorf("still has %q:\n%s", n, out)
				}
			}
		})
	}
}

func TestTreeHelpers(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a", "b", "f"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "g"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := SHA256Tree(t, src)
	if got := before["a/b/f"]; !strings.HasPrefix(got, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 size=5") {
		t.Errorf("a/b/f: %s", got)
	}
	dst := CopyTree(t, src, filepath.Join(t.TempDir(), "copy"))
	after := SHA256Tree(t, dst)
	for k := range before { // modes differ (copies are 0644): compare sums only
		if strings.Fields(before[k])[0] != strings.Fields(after[k])[0] {
			t.Errorf("%s: %s vs %s", k, before[k], after[k])
		}
	}

	Traversable(t, filepath.Join(src, "a", "b", "f"))
	for _, d := range []string{src, filepath.Join(src, "a"), filepath.Join(src, "a", "b")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o011 != 0o011 {
			t.Errorf("%s: mode %v not traversable", d, fi.Mode())
		}
	}
	if !IsMounted("/proc") || IsMounted(src) {
		t.Errorf("IsMounted: /proc %v, %s %v", IsMounted("/proc"), src, IsMounted(src))
	}
	if got := escapeMountinfo("/a b\\c"); got != `/a\040b\134c` {
		t.Errorf("escapeMountinfo = %q", got)
	}
}

func TestWaitSerial(t *testing.T) {
	cases := []struct {
		name, out string
		exited    bool
		err       string
	}{
		{name: "found", out: "x\nMARK\n"},
		{name: "exited", out: "x\n", exited: true, err: "exited before"},
		{name: "guest-error", out: "VMFS-GUEST-ERROR boom\n", err: "guest error"},
		{name: "uefi-shell", out: "BdsDxe: failed to load Boot0001\nShell> ", err: "UEFI shell"},
		{name: "seabios-nothing", out: "No bootable device.", err: "SeaBIOS found no bootable disk"},
		{name: "timeout", out: "", err: "no \"MARK\" after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := waitSerial(func() string { return c.out }, func() bool { return c.exited }, "MARK", 150*time.Millisecond)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
		})
	}
}

// TestGuestsBootDirect checks the test guests themselves, without vmfs:
// the boot sector and the Linux guest under plain QEMU on the buses the
// translations produce, BIOS and UEFI.
func TestGuestsBootDirect(t *testing.T) {
	if testing.Short() {
		t.Skip("boots guests")
	}
	g := Guest(t)
	t.Logf("guests in %s (build or cache lookup took %v, cold build %ss)", g.Dir, g.BuildTime, g.Env["BUILD_SECONDS"])

	accels := []string{"tcg"}
	if KVMWorks() {
		accels = append(accels, "kvm")
	}
	for _, accel := range accels {
		for _, c := range []struct{ typ, bus string }{{"pc", "ide"}, {"q35", "sata"}, {"q35", "lsilogic"}, {"pc", "pvscsi"}, {"pc", "virtio"}} {
			t.Run("bootsector/"+accel+"/"+c.typ+"-"+c.bus, func(t *testing.T) {
				vm := Boot(t, Machine{Type: c.typ, Accel: accel, MemoryMiB: 32,
					Disks: []Disk{{Path: g.BootSectorRaw, Bus: c.bus, Snapshot: true}}})
				d := vm.WaitFor(t, BootSectorEnd, BootTimeout())
				if want := BootSectorRead + g.BootSectorText; !strings.Contains(vm.Output(), want) {
					t.Fatalf("serial lacks %q:\n%s", want, vm.Output())
				}
				t.Logf("boot sector done in %v", d)
			})
		}
	}

	type linuxCase struct {
		name  string
		fw    Firmware
		typ   string
		bus   string
		twice bool
	}
	linux := []linuxCase{
		{"bios-pvscsi", BIOS, "pc", "pvscsi", true},
		{"uefi-sata", UEFI, "q35", "sata", false},
	}
	if os.Getenv("VMFS_TEST_FULL") == "1" {
		linux = append(linux,
			linuxCase{"bios-ide", BIOS, "pc", "ide", false},
			linuxCase{"bios-sata", BIOS, "q35", "sata", false},
			linuxCase{"bios-virtio", BIOS, "q35", "virtio", false},
			linuxCase{"bios-virtio-scsi", BIOS, "pc", "virtio-scsi", false},
			linuxCase{"uefi-virtio", UEFI, "q35", "virtio", false},
			linuxCase{"uefi-virtio-scsi", UEFI, "q35", "virtio-scsi", false},
		)
	}
	for _, c := range linux {
		t.Run("linux/"+c.name, func(t *testing.T) {
			raw := g.LinuxBIOSRaw
			if c.fw == UEFI {
				raw = g.LinuxUEFIRaw
			}
			disk := g.RawCopy(t, raw)
			boots := 1
			if c.twice {
				boots = 2
			}
			for n := 0; n < boots; n++ {
				vm := Boot(t, Machine{Firmware: c.fw, Type: c.typ, Accel: AccelReal(),
					Disks: []Disk{{Path: disk, Bus: c.bus}}})
				vm.WaitFor(t, GuestDone, BootTimeout())
				d := vm.WaitExit(t, time.Minute)
				CheckLinuxBoot(t, vm.Output(), c.fw, n)
				t.Logf("boot %d: powered off after %v", n+1, d)
			}
		})
	}
}

// TestLibvirtDirect checks StartLibvirt and StartDomain without vmfs: the
// boot sector and the UEFI Linux guest from plain files under libvirt.
func TestLibvirtDirect(t *testing.T) {
	if testing.Short() {
		t.Skip("boots guests under libvirt")
	}
	g := Guest(t)
	StartLibvirt(t)
	cases := []struct {
		name, raw, os, bus, accel string
		fw                        Firmware
	}{
		{"bootsector", g.BootSectorRaw, `<os><type arch="x86_64" machine="q35">hvm</type></os>`, "sata", LibvirtAccelTiny(), BIOS},
		{"linux-uefi", g.LinuxUEFIRaw, `<os firmware="efi"><type arch="x86_64" machine="q35">hvm</type><firmware>` +
			`<feature enabled="no" name="enrolled-keys"/><feature enabled="no" name="secure-boot"/></firmware></os>`, "sata", AccelReal(), UEFI},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			disk := g.RawCopy(t, c.raw)
			Traversable(t, disk)
			xml := `<domain type="kvm"><name>x</name><memory unit="MiB">256</memory>` + c.os +
				`<features><acpi/><apic/></features><devices><disk type="file" device="disk">` +
				`<driver name="qemu" type="raw"/><source file="` + disk + `"/><target dev="sda" bus="` + c.bus + `"/>` +
				`</disk></devices></domain>`
			path := filepath.Join(t.TempDir(), "domain.xml")
			if err := os.WriteFile(path, []byte(xml), 0o644); err != nil {
				t.Fatal(err)
			}
			dom := StartDomain(t, path, c.accel)
			if c.fw == BIOS {
				d := dom.WaitFor(t, BootSectorEnd, BootTimeout())
				if want := BootSectorRead + g.BootSectorText; !strings.Contains(dom.Output(), want) {
					t.Fatalf("serial lacks %q:\n%s", want, dom.Output())
				}
				t.Logf("boot sector (%s) done %v after virsh start", c.accel, d)
				return
			}
			dom.WaitFor(t, GuestDone, BootTimeout())
			d := dom.WaitShutoff(t, BootTimeout())
			CheckLinuxBoot(t, dom.Output(), c.fw, 0)
			t.Logf("guest shut off %v after virsh start", d)
		})
	}
}

// TestPrivateDirs: a mount without --overlay made by a test puts its
// overlay in the test process's own cache dir, and its registry and log in
// the process's own run dir: nothing lands in the user's ~/.cache/vmfs or
// in /run/vmfs.
func TestPrivateDirs(t *testing.T) {
	cache, run := os.Getenv("XDG_CACHE_HOME"), os.Getenv("VMFS_RUN_DIR")
	for _, d := range []string{cache, run} {
		if !strings.HasPrefix(d, filepath.Join(os.TempDir(), "vmfs-test-dirs-")) {
			t.Fatalf("%q is not a private temporary dir", d)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "disk-flat.img"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "disk.vmdk"), []byte("# Disk DescriptorFile\nversion=1\n"+
		"CID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"disk-flat.img\" 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vmx := filepath.Join(dir, "private.vmx")
	if err := os.WriteFile(vmx, []byte(".encoding = \"UTF-8\"\ndisplayName = \"p\"\nmemsize = \"256\"\n"+
		"scsi0.present = \"TRUE\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"disk.vmdk\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := Mount(t, vmx, MountDir(t))
	ovs, _ := filepath.Glob(filepath.Join(cache, "vmfs", "overlays", "private.vmx-*"))
	if len(ovs) != 1 {
		t.Errorf("overlays in %s: %v, want the mount's one", cache, ovs)
	}
	regs, _ := filepath.Glob(filepath.Join(run, "*.json"))
	if len(regs) != 1 {
		t.Errorf("registry %s holds %v, want the mount's record", run, regs)
	}
	if err := Unmount(t, mnt); err != nil {
		t.Fatal(err)
	}
}
