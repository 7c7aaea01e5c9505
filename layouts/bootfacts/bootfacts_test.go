package bootfacts

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/probe"
	"github.com/vmfs/vmfs/layouts/raw"
)

// image writes a raw image of size bytes with partly random content and
// zero runs, then partitions it with sfdisk from script ("" for none).
func image(t testing.TB, dir, name string, size int64, script string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	b := make([]byte, size)
	r := rand.New(rand.NewSource(size))
	for off := int64(0); off < size; off += 64 << 10 {
		if (off/(64<<10))%3 == 1 { // a zero run every third 64 KiB
			continue
		}
		end := min(off+48<<10, size)
		r.Read(b[off:end])
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if script != "" {
		if _, err := exec.LookPath("sfdisk"); err != nil {
			t.Skip("sfdisk not installed (util-linux)")
		}
		cmd := exec.Command("sfdisk", "-q", "--wipe", "always", p)
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sfdisk: %v %s", err, out)
		}
	}
	return p
}

// oracle asks sfdisk what the table holds.
func oracle(t *testing.T, p string) Facts {
	t.Helper()
	out, err := exec.Command("sfdisk", "-J", p).Output()
	if err != nil {
		return Facts{} // no table
	}
	var j struct {
		PT struct {
			Label      string `json:"label"`
			Partitions []struct {
				Type string `json:"type"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		t.Fatal(err)
	}
	f := Facts{Table: map[string]string{"gpt": "gpt", "dos": "mbr"}[j.PT.Label]}
	for _, p := range j.PT.Partitions {
		switch strings.ToUpper(p.Type) {
		case ESPType:
			f.HasESP = true
		case BIOSBootType:
			f.HasBIOSBP = true
		}
	}
	return f
}

func openRaw(t *testing.T, p string) layouts.Disk {
	t.Helper()
	f, err := layouts.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	d, err := raw.Open(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

const (
	linuxType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		size   int64
		script string
		want   Facts
	}{
		{"gpt-esp", 5<<20 + 1234*512, "label: gpt\nsize=1MiB, type=" + ESPType + "\ntype=" + linuxType + "\n", Facts{Table: "gpt", HasESP: true}},
		{"gpt-bios-boot", 4<<20 + 7*512, "label: gpt\nsize=1MiB, type=" + BIOSBootType + "\ntype=" + linuxType + "\n", Facts{Table: "gpt", HasBIOSBP: true}},
		{"gpt-both", 6<<20 + 512, "label: gpt\nsize=1MiB, type=" + BIOSBootType + "\nsize=1MiB, type=" + ESPType + "\ntype=" + linuxType + "\n", Facts{Table: "gpt", HasESP: true, HasBIOSBP: true}},
		{"gpt-1024-entries", 5<<20 + 512, "label: gpt\ntable-length: 1024\nsize=1MiB, type=" + linuxType + "\nsize=1MiB, type=" + ESPType + "\n", Facts{Table: "gpt", HasESP: true}},
		{"gpt-linux-only", 3<<20 + 3*512, "label: gpt\ntype=" + linuxType + "\n", Facts{Table: "gpt"}},
		{"mbr", 3<<20 + 5*512, "label: dos\ntype=83, bootable\n", Facts{Table: "mbr"}},
		{"mbr-efi-type", 3<<20 + 9*512, "label: dos\ntype=ef\n", Facts{Table: "mbr"}},
		{"none", 2<<20 + 11*512, "", Facts{}},
		{"tiny", 300, "", Facts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := image(t, dir, tt.name+".img", tt.size, tt.script)
			if tt.script != "" {
				if o := oracle(t, p); o != tt.want {
					t.Fatalf("sfdisk sees %+v, test expects %+v", o, tt.want)
				}
			}
			got, err := Read(openRaw(t, p))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			// The same through another layout: qemu-img converts to qcow2,
			// probing opens it.
			if tt.size < 512 {
				return
			}
			q := p + ".qcow2"
			if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", p, q).CombinedOutput(); err != nil {
				t.Skipf("qemu-img convert: %v %s", err, out)
			}
			d, err := probe.Open(q, nil)
			if err != nil {
				t.Skipf("qcow2 not readable here yet: %v", err)
			}
			defer d.Close()
			got, err = Read(d)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("qcow2: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestCorrupt: damaged or hostile tables fail with ErrFormat, quickly and
// without large allocations.
func TestCorrupt(t *testing.T) {
	dir := t.TempDir()
	p := image(t, dir, "gpt.img", 3<<20+512, "label: gpt\nsize=1MiB, type="+ESPType+"\n")
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	good = good[:Window]
	// header rewrites a field of the primary GPT header and fixes its CRC.
	header := func(off int, v uint32) func([]byte) {
		return func(b []byte) {
			binary.LittleEndian.PutUint32(b[512+off:], v)
			binary.LittleEndian.PutUint32(b[512+16:], 0)
			binary.LittleEndian.PutUint32(b[512+16:], crc32.ChecksumIEEE(b[512:512+92]))
		}
	}
	tests := []struct {
		name string
		edit func([]byte)
	}{
		{"entry count huge", header(80, 0xFFFFFFFF)},
		{"entry size zero", header(84, 0)},
		{"entry size odd", header(84, 130)},
		{"entry array past window", header(72, 0x7FFFFFFF)},
		{"entry array at LBA 0", header(72, 0)},
		{"header crc", func(b []byte) { b[512+40] ^= 0xFF }},
		{"entries crc", func(b []byte) { b[1024+40] ^= 0xFF }},
		{"protective MBR without GPT", func(b []byte) { copy(b[512:520], "NOT PART") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append([]byte(nil), good...)
			tt.edit(b)
			_, err := FromBytes(b)
			if err == nil || !errors.Is(err, layouts.ErrFormat) {
				t.Fatalf("err = %v, want ErrFormat", err)
			}
		})
	}
}

func FuzzFromBytes(f *testing.F) {
	// Small seeds (GPTs of 4 entries, 3 KiB) keep the fuzzer quick; run it
	// with -fuzzminimizetime=1x on a loaded machine.
	dir := f.TempDir()
	for i, s := range []string{
		"label: gpt\ntable-length: 4\nsize=1MiB, type=" + ESPType + "\ntype=" + linuxType + "\n",
		"label: gpt\ntable-length: 4\nsize=1MiB, type=" + BIOSBootType + "\n",
		"label: dos\ntype=83\n",
	} {
		p := image(f, dir, "seed"+string(rune('a'+i)), 3<<20, s)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:3<<10])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		facts, err := FromBytes(b)
		if err != nil {
			if !errors.Is(err, layouts.ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		if facts.Table == "" && (facts.HasESP || facts.HasBIOSBP) {
			t.Fatalf("partitions without a table: %+v", facts)
		}
	})
}

func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	p := image(b, dir, "b.img", 4<<20, "label: gpt\nsize=1MiB, type="+ESPType+"\ntype="+linuxType+"\n")
	f, err := layouts.OpenFile(p)
	if err != nil {
		b.Fatal(err)
	}
	d, _ := raw.Open(f, nil)
	defer d.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(d); err != nil {
			b.Fatal(err)
		}
	}
}
