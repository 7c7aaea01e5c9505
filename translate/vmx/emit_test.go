package vmx

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/translate"
)

// sameDisks lists the target disks at the source's own paths.
func sameDisks(m *translate.Machine) []translate.TargetDisk {
	var td []translate.TargetDisk
	for _, d := range m.Disks {
		td = append(td, translate.TargetDisk{Path: d.Path, Format: "vmdk"})
	}
	return td
}

// compareMachines reports what a round trip through a descriptor lost.
func compareMachines(t *testing.T, a, b *translate.Machine) {
	t.Helper()
	if a.Name != b.Name || a.UUID != b.UUID || a.MemoryMiB != b.MemoryMiB || a.CPUs != b.CPUs ||
		a.CoresPerSocket != b.CoresPerSocket || a.Firmware != b.Firmware || a.SecureBoot != b.SecureBoot {
		t.Errorf("machine changed:\n%+v\n%+v", a, b)
	}
	if !strings.EqualFold(a.GuestOS, b.GuestOS) {
		t.Errorf("guestOS %q → %q", a.GuestOS, b.GuestOS)
	}
	if len(a.Disks) != len(b.Disks) {
		t.Fatalf("%d disks → %d", len(a.Disks), len(b.Disks))
	}
	for i := range a.Disks {
		x, y := a.Disks[i], b.Disks[i]
		if x.Path != y.Path || x.Bus != y.Bus || x.ControllerIndex != y.ControllerIndex || x.Unit != y.Unit {
			t.Errorf("disk %d %+v → %+v", i, x, y)
		}
	}
	if len(a.CDROMs) != len(b.CDROMs) {
		t.Fatalf("%d CD-ROMs → %d", len(a.CDROMs), len(b.CDROMs))
	}
	for i := range a.CDROMs {
		if a.CDROMs[i].Path != b.CDROMs[i].Path || a.CDROMs[i].Bus != b.CDROMs[i].Bus {
			t.Errorf("CD-ROM %d %+v → %+v", i, a.CDROMs[i], b.CDROMs[i])
		}
	}
	if len(a.NICs) != len(b.NICs) {
		t.Fatalf("%d NICs → %d", len(a.NICs), len(b.NICs))
	}
	for i := range a.NICs {
		x, y := a.NICs[i], b.NICs[i]
		if x.Model == "" {
			x.Model = "e1000e" // the emitter's choice for an unstated model
		}
		if x != y {
			t.Errorf("NIC %d %+v → %+v", i, x, y)
		}
	}
	if len(a.Serials) != len(b.Serials) {
		t.Errorf("serials %+v → %+v", a.Serials, b.Serials)
	}
}

// TestRoundTrip: vmx → vmx emitter → vmx parser gives the same machine.
func TestRoundTrip(t *testing.T) {
	files := append(corpusFiles(t, "vmx/*.vmx"), corpusFiles(t, "virt-v2v/test-i-vmx-*.vmx")...)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			m, err := parseFile(t, f)
			if err != nil {
				t.Skip(err) // the no-disk and encrypted files
			}
			out, _, err := Target{}.Emit(m, sameDisks(m), translate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 1 || out[0].Name != translate.FileName(m.Name)+".vmx" || out[0].Mode != 0o644 {
				t.Fatalf("files: %d, first %q mode %v", len(out), out[0].Name, out[0].Mode)
			}
			m2, err := ParseBytes(f, out[0].Data)
			if err != nil {
				t.Fatalf("%v\n%s", err, out[0].Data)
			}
			compareMachines(t, m, m2)
			for _, w := range m2.Warnings {
				if w.Code != WarnCDROMDisconnect {
					t.Errorf("warning on re-parse: %v", w)
				}
			}
		})
	}
}

func TestEmit(t *testing.T) {
	base := func() *translate.Machine {
		return &translate.Machine{
			Name: "web \"01\" | test", MemoryMiB: 2048, CPUs: 2, Firmware: translate.UEFI,
			OSInfo: "http://microsoft.com/win/10", SourceFormat: "libvirt", UUID: "564d96af-e646-bd86-5c4d-654e7736ef31",
			Disks: []translate.Disk{{Path: "/a.qcow2", Bus: translate.BusVirtio}, {Path: "/b.vmdk", Bus: translate.BusSCSI, Controller: "virtio-scsi"}},
			NICs:  []translate.NIC{{MAC: "52:54:00:12:34:56", Model: "virtio"}, {MAC: "00:50:56:00:00:01", Model: "pcnet", Type: "nat"}},
		}
	}
	tests := []struct {
		name  string
		edit  func(m *translate.Machine)
		check func(t *testing.T, text string, m2 *translate.Machine, warns []translate.Warning)
	}{
		{"from libvirt", func(*translate.Machine) {}, func(t *testing.T, text string, m2 *translate.Machine, warns []translate.Warning) {
			if m2.Name != "web \"01\" | test" || m2.GuestOS != "windows9-64" || m2.UUID != "564d96af-e646-bd86-5c4d-654e7736ef31" {
				t.Errorf("%+v", m2)
			}
			// Order kept by bios.hddOrder: the virtio boot disk, now on SATA, first.
			if m2.Disks[1].Bus != translate.BusSCSI || m2.Disks[1].Path != "/b.vmdk" || m2.Disks[1].Controller != "lsisas1068" ||
				m2.Disks[0].Bus != translate.BusSATA || m2.Disks[0].Path != "/a.qcow2" {
				t.Errorf("disks %+v", m2.Disks)
			}
			if m2.NICs[0].MAC != "52:54:00:12:34:56" || m2.NICs[0].Model != "e1000e" || m2.NICs[1].Model != "vlance" || m2.NICs[1].Type != "nat" {
				t.Errorf("nics %+v", m2.NICs)
			}
			if !strings.Contains(text, `ethernet1.addressType = "static"`) || !strings.Contains(text, `ethernet0.addressType = "generated"`) {
				t.Errorf("address types:\n%s", text)
			}
			for _, c := range []string{WarnEmitBus, WarnEmitNIC, WarnEmitFormat} {
				if !hasCode(warns, c) {
					t.Errorf("no %s in %v", c, warns)
				}
			}
		}},
		{"SCSI unit 7 is the controller's", func(m *translate.Machine) {
			m.Disks = nil
			for i := range 9 {
				m.Disks = append(m.Disks, translate.Disk{Path: fmt.Sprintf("/d%d.vmdk", i), Bus: translate.BusSCSI, Unit: i})
			}
		}, func(t *testing.T, text string, m2 *translate.Machine, warns []translate.Warning) {
			if strings.Contains(text, "scsi0:7.") || len(m2.Disks) != 9 {
				t.Errorf("%s", text)
			}
		}},
		{"unknown guest", func(m *translate.Machine) { m.OSInfo = "" }, func(t *testing.T, text string, m2 *translate.Machine, warns []translate.Warning) {
			if m2.GuestOS != "other-64" {
				t.Errorf("guestOS %q", m2.GuestOS)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.edit(m)
			td := sameDisks(m)
			for i := range td {
				td[i].Format = strings.TrimPrefix(filepath.Ext(td[i].Path), ".")
			}
			b, warns, err := Marshal(m, td, translate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			m2, err := ParseBytes("/x/x.vmx", b)
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			tt.check(t, string(b), m2, warns)
		})
	}
	t.Run("disk count mismatch", func(t *testing.T) {
		if _, _, err := Marshal(base(), nil, translate.Options{}); err == nil {
			t.Fatal("no error")
		}
	})
}

func hasCode(ws []translate.Warning, code string) bool {
	for _, w := range ws {
		if w.Code == code {
			return true
		}
	}
	return false
}

// FuzzParseVMX: the parser never panics; what it accepts satisfies the
// model's invariants and survives an emit/parse round trip.
func FuzzParseVMX(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(corpus, "vmx/*.vmx"))
	v2v, _ := filepath.Glob(filepath.Join(corpus, "virt-v2v/*.vmx"))
	for _, p := range append(files, v2v...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("scsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"a|22|7c.vmdk\"\n.encoding = \"Shift_JIS\"\n"))
	// Hostile: many short lines of the kinds TestParseMemory measures.
	for _, kind := range []string{"distinct", "shortest", "slots", "encoding", "nonascii-key"} {
		f.Add(hostileVMX(kind)[:64<<10])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseBytes("/vm/x.vmx", b)
		if err != nil {
			return
		}
		checkInvariants(t, m)
		out, _, err := Marshal(m, sameDisks(m), translate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseBytes("/vm/x.vmx", out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		if len(m2.Disks) != len(m.Disks) || m2.CPUs != m.CPUs || m2.MemoryMiB != m.MemoryMiB || len(m2.NICs) != len(m.NICs) {
			t.Fatalf("round trip changed the machine:\n%+v\n%+v", m, m2)
		}
	})
}
