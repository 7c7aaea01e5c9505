package vmx

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// hostileVMX builds a .vmx of nearly MaxSize bytes: one disk, then line
// after line of the given kind.
func hostileVMX(kind string) []byte {
	var b strings.Builder
	b.WriteString("scsi0.present = \"TRUE\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"d.vmdk\"\nmemsize = \"1024\"\n")
	switch kind {
	case "encoding":
		b.WriteString(".encoding = \"windows-1252\"\n")
	case "utf8":
		b.WriteString(".encoding = \"UTF-8\"\n")
	}
	for i := 0; b.Len() < MaxSize-32; i++ {
		switch kind {
		case "distinct":
			fmt.Fprintf(&b, "k%x=\n", i)
		case "same":
			b.WriteString("a=1\n")
		case "shortest":
			b.WriteString("a=\n")
		case "blank":
			b.WriteString("\n")
		case "bad":
			b.WriteString("x\n")
		case "slots":
			fmt.Fprintf(&b, "scsi%d:%d.k%x=\n", i%60, i%250, i)
		case "escapes":
			fmt.Fprintf(&b, "e%x=|41|42\n", i)
		case "encoding":
			fmt.Fprintf(&b, "e%x=\xe9\n", i)
		case "utf8":
			fmt.Fprintf(&b, "u%x=\xc3\xa9\xff\n", i)
		case "upper":
			fmt.Fprintf(&b, "K%X=V\n", i)
		case "nonascii-key":
			fmt.Fprintf(&b, "\xc3\x84%x=\n", i)
		}
	}
	return []byte(b.String())
}

// TestParseMemory: a .vmx of MaxSize in the shortest lines allocates at
// most 16 times its size (today's main: 60 times), and the machine is the
// same as from the file's real lines alone.
func TestParseMemory(t *testing.T) {
	for _, kind := range []string{"distinct", "same", "shortest", "blank", "bad", "slots", "escapes", "encoding", "utf8", "upper", "nonascii-key"} {
		t.Run(kind, func(t *testing.T) {
			b := hostileVMX(kind)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			m, err := ParseBytes("/vm/x.vmx", b)
			runtime.ReadMemStats(&m1)
			if err != nil {
				t.Fatal(err)
			}
			a := m1.TotalAlloc - m0.TotalAlloc
			t.Logf("%d bytes: %d allocated (%.1fx)", len(b), a, float64(a)/float64(len(b)))
			if a > 16*uint64(len(b)) {
				t.Errorf("parsing %d bytes allocated %d, more than 16 times the input", len(b), a)
			}
			if len(m.Disks) != 1 || m.Disks[0].Path != "/vm/d.vmdk" || m.MemoryMiB != 1024 {
				t.Errorf("machine %+v", m)
			}
		})
	}
}
