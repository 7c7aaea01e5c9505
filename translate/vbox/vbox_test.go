package vbox

import (
	"errors"
	"fmt"
	corpusdir "github.com/vmfs/vmfs/internal/corpus"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/ovf"
	"github.com/vmfs/vmfs/translate/vmx"
)

var corpus = corpusdir.Dir()

func corpusFiles(t testing.TB, pattern string) []string { return corpusdir.Glob(t, pattern) }

func parseFile(t testing.TB, p string) (*translate.Machine, error) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return ParseBytes(p, b)
}

// unsupported lists corpus files vmfs refuses, with the reason.
var unsupported = map[string]string{
	"fox-it__dissect.hypervisor__encrypted.vbox":     "encrypted disks are not supported",
	"Pearostester__Windows-11__Windows_10.vbox":      "malformed XML", // junk after </VirtualBox>
	"Pearostester__Windows-11__Windows_10.vbox-prev": "no hard disk attached",
}

type want struct {
	name, disks, nics string
	cpus              int
	mem               int64
	fw                translate.Firmware
	cds               int
}

var byHand = map[string]want{
	"luiscidade17__VirtualBox__Ubuntu.vbox": {"Ubuntu", "ide/piix4:0:0:Snapshots/{181848e3-2d39-4a96-8f70-7e81621cc465}.vdi", "82540em/08:00:27:77:3f:04/nat", 1, 3042, translate.BIOS, 0},
	"libvirt__libvirt__2disks-nosnap.vbox":  {"74864f52-a7b7-4172-a7a5-54b6f3e9cd21", "ide/piix4:0:0:/home/libvirt/vbox/74864f52-a7b7-4172-a7a5-54b6f3e9cd21/libvirtTest-disk1.vdi,ide/piix4:0:1:/home/libvirt/vbox/74864f52-a7b7-4172-a7a5-54b6f3e9cd21/libvirtTest-disk2.vdi", "82540em/08:00:27:2a:58:9d/bridge", 1, 192, translate.BIOS, 0},
}

func TestCorpus(t *testing.T) {
	files := append(corpusFiles(t, "vbox/*.vbox"), corpusFiles(t, "vbox/*.vbox-prev")...)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			m, err := parseFile(t, f)
			if why, ok := unsupported[filepath.Base(f)]; ok {
				if err == nil || !strings.Contains(err.Error(), why) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line with %q", err, why)
				}
				if strings.Contains(why, "encrypted") && !errors.Is(err, layouts.ErrUnsupported) {
					t.Fatalf("error %v does not wrap ErrUnsupported", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Disks) == 0 || m.CPUs < 1 || m.MemoryMiB < 1 || m.Name == "" || m.UUID == "" {
				t.Fatalf("machine %+v", m)
			}
			w, ok := byHand[filepath.Base(f)]
			if !ok {
				return
			}
			var ds, ns []string
			dir := filepath.Dir(f)
			for _, d := range m.Disks {
				p := d.Path
				if r, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(r, "..") {
					p = r
				}
				ds = append(ds, fmt.Sprintf("%s/%s:%d:%d:%s", d.Bus, d.Controller, d.ControllerIndex, d.Unit, p))
			}
			for _, n := range m.NICs {
				ns = append(ns, n.Model+"/"+n.MAC+"/"+n.Type)
			}
			if m.Name != w.name || m.CPUs != w.cpus || m.MemoryMiB != w.mem || m.Firmware != w.fw || len(m.CDROMs) != w.cds {
				t.Errorf("machine %s cpus %d mem %d fw %s cds %d, want %+v", m.Name, m.CPUs, m.MemoryMiB, m.Firmware, len(m.CDROMs), w)
			}
			if got := strings.Join(ds, ","); got != w.disks {
				t.Errorf("disks %s\nwant %s", got, w.disks)
			}
			if got := strings.Join(ns, ","); got != w.nics {
				t.Errorf("NICs %s, want %s", got, w.nics)
			}
		})
	}
}

// TestChain: an attached child of a differencing chain is the disk, with
// the chain in a warning.
func TestChain(t *testing.T) {
	m, err := parseFile(t, filepath.Join(corpus, "vbox/Marvint-dev__Samba-AD__Debian.vbox"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range m.Warnings {
		if w.Code == WarnChain {
			found = true
		}
	}
	if !found {
		t.Fatalf("no %s warning: %v", WarnChain, m.Warnings)
	}
}

func TestParseBytes(t *testing.T) {
	const head = `<VirtualBox xmlns="http://www.virtualbox.org/" version="1.19-linux"><Machine uuid="{11111111-2222-3333-4444-555555555555}" name="t" OSType="Windows10_64">
<MediaRegistry><HardDisks><HardDisk uuid="{aaaaaaaa-0000-0000-0000-000000000001}" location="d.vdi" format="VDI">%s</HardDisk></HardDisks></MediaRegistry>
<Hardware><CPU count="4"/><Memory RAMSize="2048"/><Firmware type="EFI"/>
<Network><Adapter slot="0" enabled="true" MACAddress="0800271A2B3C" type="virtio"><BridgedInterface name="eth0"/></Adapter><Adapter slot="1" MACAddress="080027000000"/></Network>
<StorageControllers><StorageController name="NVMe" type="NVMe"><AttachedDevice type="HardDisk" port="1" device="0"><Image uuid="{%s}"/></AttachedDevice></StorageController></StorageControllers>
</Hardware></Machine></VirtualBox>`
	cases := []struct {
		name, child, attach, want string
	}{
		{"plain", "", "aaaaaaaa-0000-0000-0000-000000000001", ""},
		{"child", `<HardDisk uuid="{bbbbbbbb-0000-0000-0000-000000000002}" location="Snapshots/c.vdi" format="VDI"/>`, "bbbbbbbb-0000-0000-0000-000000000002", ""},
		{"encrypted", `<Property name="CRYPT/KeyId" value="k"/>`, "aaaaaaaa-0000-0000-0000-000000000001", "encrypted disks are not supported"},
		{"unregistered", "", "cccccccc-0000-0000-0000-000000000003", "not in the media registry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseBytes("/vm/t.vbox", []byte(fmt.Sprintf(head, c.child, c.attach)))
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := m.Disks[0]
			if m.CPUs != 4 || m.MemoryMiB != 2048 || m.Firmware != translate.UEFI || d.Bus != translate.BusNVMe || d.Unit != 1 {
				t.Fatalf("machine %+v disk %+v", m, d)
			}
			if len(m.NICs) != 1 || m.NICs[0].MAC != "08:00:27:1a:2b:3c" || m.NICs[0].Model != "virtio" || m.NICs[0].Type != "bridge" || m.NICs[0].Network != "eth0" {
				t.Fatalf("NICs %+v", m.NICs)
			}
			if c.name == "child" && d.Path != "/vm/Snapshots/c.vdi" {
				t.Fatalf("path %s", d.Path)
			}
		})
	}
}

func targetDisks(m *translate.Machine, format string) []translate.TargetDisk {
	var td []translate.TargetDisk
	for i := range m.Disks {
		td = append(td, translate.TargetDisk{Path: fmt.Sprintf("/mnt/%s-disk%d.%s", translate.FileName(m.Name), i, format), Format: format, Size: int64(i+1) << 30,
			UUID: fmt.Sprintf("12345678-0000-4000-8000-%012d", i)})
	}
	return td
}

// same checks what a round trip must keep.
func same(t *testing.T, a, b *translate.Machine) {
	t.Helper()
	if a.CPUs != b.CPUs || a.MemoryMiB != b.MemoryMiB || a.Firmware != b.Firmware || len(a.Disks) != len(b.Disks) || len(a.NICs) != len(b.NICs) {
		t.Fatalf("cpus %d→%d mem %d→%d fw %s→%s disks %d→%d nics %d→%d", a.CPUs, b.CPUs, a.MemoryMiB, b.MemoryMiB, a.Firmware, b.Firmware, len(a.Disks), len(b.Disks), len(a.NICs), len(b.NICs))
	}
	for i := range a.NICs {
		if a.NICs[i].MAC != "" && a.NICs[i].MAC != b.NICs[i].MAC {
			t.Errorf("NIC %d MAC %s → %s", i, a.NICs[i].MAC, b.NICs[i].MAC)
		}
	}
}

func emitOVF(t *testing.T, m *translate.Machine) *translate.Machine {
	t.Helper()
	outs, _, err := ovf.Target{}.Emit(m, targetDisks(m, "vmdk"), translate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ovf.ParseBytes("/mnt/"+outs[0].Name, outs[0].Data)
	if err != nil {
		t.Fatalf("%v\n%s", err, outs[0].Data)
	}
	return got
}

func emitVBox(t *testing.T, m *translate.Machine) *translate.Machine {
	t.Helper()
	outs, _, err := Target{}.Emit(m, targetDisks(m, "vdi"), translate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseBytes("/mnt/"+outs[0].Name, outs[0].Data)
	if err != nil {
		t.Fatalf("%v\n%s", err, outs[0].Data)
	}
	for i, d := range got.Disks {
		if d.Path != fmt.Sprintf("/mnt/%s-disk%d.vdi", translate.FileName(m.Name), i) {
			t.Errorf("disk %d path %s", i, d.Path)
		}
	}
	if !strings.Contains(string(outs[0].Data), "{12345678-0000-4000-8000-000000000000}") {
		t.Errorf("the image UUID is not in the media registry")
	}
	return got
}

// TestRoundTrip: ovf→vbox→ovf, vbox→ovf→vbox and vmx→ovf keep CPUs,
// memory, firmware, disks, NICs and MACs.
func TestRoundTrip(t *testing.T) {
	t.Run("ovf-vbox-ovf", func(t *testing.T) {
		for _, f := range corpusFiles(t, "ovf/*.ovf") {
			b, _ := os.ReadFile(f)
			m, err := ovf.ParseBytes(f, b)
			if err != nil {
				continue
			}
			t.Run(filepath.Base(f), func(t *testing.T) {
				v := emitVBox(t, m)
				same(t, m, v)
				same(t, m, emitOVF(t, v))
			})
		}
	})
	t.Run("vbox-ovf-vbox", func(t *testing.T) {
		for _, f := range corpusFiles(t, "vbox/*.vbox") {
			m, err := parseFile(t, f)
			if err != nil {
				continue
			}
			t.Run(filepath.Base(f), func(t *testing.T) {
				o := emitOVF(t, m)
				same(t, m, o)
				same(t, m, emitVBox(t, o))
			})
		}
	})
	t.Run("vmx-ovf", func(t *testing.T) {
		for _, f := range append(corpusFiles(t, "vmx/*.vmx"), corpusFiles(t, "virt-v2v/test-i-vmx-*.vmx")...) {
			b, _ := os.ReadFile(f)
			m, err := vmx.ParseBytes(f, b)
			if err != nil || len(m.Disks) == 0 {
				continue
			}
			t.Run(filepath.Base(f), func(t *testing.T) {
				o := emitOVF(t, m)
				same(t, m, o)
				same(t, m, emitVBox(t, o))
			})
		}
	})
}

// TestPolicies: the device mapping of each --devices policy.
func TestPolicies(t *testing.T) {
	m := &translate.Machine{Name: "p", CPUs: 1, MemoryMiB: 64,
		Disks: []translate.Disk{{Bus: translate.BusSCSI, Controller: "pvscsi"}, {Bus: translate.BusIDE, ControllerIndex: 1, Unit: 1}},
		NICs:  []translate.NIC{{Model: "vmxnet3"}, {Model: "e1000e"}}}
	cases := []struct{ policy, ctls, nics, warn string }{
		{"preserve", "LsiLogic,PIIX4", "82540EM,82545EM", WarnEmitController},
		{"virtio", "VirtioSCSI", "virtio,virtio", ""},
		{"compat", "AHCI", "82540EM,82540EM", ""},
	}
	for _, c := range cases {
		t.Run(c.policy, func(t *testing.T) {
			b, ws, err := Marshal(m, targetDisks(m, "vdi"), translate.Options{Devices: c.policy})
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseBytes("/mnt/p.vbox", b)
			if err != nil {
				t.Fatal(err)
			}
			var ctls, nics []string
			seen := map[string]bool{}
			for _, d := range got.Disks {
				typ := map[string]string{"lsilogic": "LsiLogic", "piix4": "PIIX4", "virtio-scsi": "VirtioSCSI", "ahci": "AHCI"}[d.Controller]
				if !seen[typ] {
					seen[typ] = true
					ctls = append(ctls, typ)
				}
			}
			for _, n := range got.NICs {
				mp, err := translate.Map(&translate.Machine{NICs: []translate.NIC{{Model: n.Model}}}, nil, translate.Options{}, Target{}.Caps())
				if err != nil {
					t.Fatal(err)
				}
				nics = append(nics, mp.NICs[0].Model)
			}
			if strings.Join(ctls, ",") != c.ctls || strings.Join(nics, ",") != c.nics {
				t.Fatalf("controllers %v NICs %v, want %s %s", ctls, nics, c.ctls, c.nics)
			}
			if c.warn != "" {
				found := false
				for _, w := range ws {
					found = found || w.Code == c.warn
				}
				if !found {
					t.Fatalf("no %s in %v", c.warn, ws)
				}
			}
		})
	}
}

func FuzzParseVBox(f *testing.F) {
	for _, p := range corpusFiles(f, "vbox/*.vbox") {
		if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	// Hostile: text in thousands of pieces, a tag past the attribute
	// limit, nesting past the depth limit.
	f.Add([]byte("<Envelope><a>" + strings.Repeat("x<!---->", 4000) + "</a></Envelope>"))
	f.Add([]byte("<Envelope><a" + strings.Repeat(" b=''", 1001) + "/></Envelope>"))
	f.Add([]byte("<Envelope>" + strings.Repeat("<a>", 65) + strings.Repeat("</a>", 65) + "</Envelope>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseBytes("/x/fuzz.vbox", b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if len(m.Disks) == 0 || m.CPUs < 1 || m.MemoryMiB < 1 {
			t.Fatalf("machine %+v", m)
		}
		if _, _, err := (Target{}).Emit(m, targetDisks(m, "vdi"), translate.Options{}); err != nil && !strings.Contains(err.Error(), "no free") {
			t.Fatalf("emit: %v", err)
		}
	})
}
