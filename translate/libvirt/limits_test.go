package libvirt

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const domHead = `<domain type='kvm'><name>a</name><memory unit='MiB'>64</memory><devices><disk type='file' device='disk'><source file='/a.qcow2'/><target dev='vda' bus='virtio'/></disk>`

// hostileXML builds a domain XML of nearly MaxSize bytes of one kind.
func hostileXML(kind string) []byte {
	var b strings.Builder
	switch kind {
	case "deep":
		// 600,000 levels: what a 4 MiB file can nest.
		b.WriteString(domHead + "</devices><metadata>")
		n := (MaxSize - b.Len() - 64) / 7
		b.WriteString(strings.Repeat("<a>", n))
		return []byte(b.String() + strings.Repeat("</a>", n) + "</metadata></domain>")
	case "deep-devices":
		b.WriteString(domHead)
		n := (MaxSize - b.Len() - 64) / 7
		return []byte(b.String() + strings.Repeat("<a>", n) + strings.Repeat("</a>", n) + "</devices></domain>")
	}
	b.WriteString(domHead)
	for b.Len() < MaxSize-64 {
		switch kind {
		case "disks":
			b.WriteString("<disk/>")
		case "interfaces":
			b.WriteString("<interface type='user'/>")
		case "unknown":
			b.WriteString("<x/>")
		case "attrs":
			b.WriteString("<disk a='' b='' c='' d='' e='' f='' g='' h=''/>")
		case "hostdevs":
			b.WriteString("<hostdev mode='subsystem' type='pci'/>")
		}
	}
	b.WriteString("</devices></domain>")
	return []byte(b.String())
}

// TestParseLimits: domain XML nested deep or wide is refused quickly, with
// a one-line error naming the file, allocating less than 16 times its
// size; a domain at the limits is read within 16 times MaxSize (libvirtxml
// allocates some 30 times the size of real domains, 3 KiB per <disk/>, so
// the bound of what is accepted is the limits', not the input's).
func TestParseLimits(t *testing.T) {
	dir := t.TempDir()
	atLimit := func(elem string, n int) []byte {
		return []byte(domHead + strings.Repeat(elem, n) + "</devices></domain>")
	}
	cases := []struct {
		name string
		doc  []byte
		want string
	}{
		{"deep", hostileXML("deep"), "XML nested deeper than 64 elements"},
		{"deep-devices", hostileXML("deep-devices"), "XML nested deeper than 64 elements"},
		{"disks", hostileXML("disks"), "more than 10000 XML elements"},
		{"interfaces", hostileXML("interfaces"), "more than 50000 XML attributes"},
		{"unknown", hostileXML("unknown"), "more than 10000 XML elements"},
		{"attrs", hostileXML("attrs"), "more than 50000 XML attributes"},
		{"hostdevs", hostileXML("hostdevs"), "more than 50000 XML attributes"},
		{"one-tag-attrs", []byte(domHead + "<disk" + strings.Repeat(" a=''", (MaxSize-len(domHead)-64)/5) + "/></devices></domain>"), "an XML element with more than 1000 attributes"},
		{"disks-at-limit", atLimit("<disk/>", 9990), ""},
		{"interfaces-at-limit", atLimit("<interface type='user'/>", 9990), ""},
		{"attrs-at-limit", atLimit("<disk type='file' device='disk' a='' b='' c=''/>", 9990), ""},
		{"deep-at-limit", []byte(domHead + "</devices><metadata>" + strings.Repeat("<a x='1'>", 60) + strings.Repeat("</a>", 60) + "</metadata></domain>"), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name+".xml")
			if err := os.WriteFile(p, c.doc, 0o644); err != nil {
				t.Fatal(err)
			}
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			start := time.Now()
			_, err := ParseBytes(p, c.doc)
			took := time.Since(start)
			runtime.ReadMemStats(&m1)
			a := m1.TotalAlloc - m0.TotalAlloc
			t.Logf("%d bytes: %v, %d allocated (%.1fx), error %v", len(c.doc), took, a, float64(a)/float64(len(c.doc)), err)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if a > 16*MaxSize {
					t.Errorf("parsing %d bytes allocated %d, more than 16 times MaxSize", len(c.doc), a)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), p+": "+c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v: want one line naming %s and saying %q", err, p, c.want)
			}
			if a > 16*uint64(len(c.doc)) {
				t.Errorf("refusing %d bytes allocated %d, more than 16 times the input", len(c.doc), a)
			}
			if took > 2*time.Second {
				t.Errorf("refusing took %v", took)
			}
		})
	}
}
