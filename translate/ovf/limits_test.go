package ovf

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestParseXMLMemory: ParseXML on MaxSize of hostile XML allocates at most
// 16 times its input, or fails at a limit; a smaller document at the
// limits allocates at most 16 times MaxSize (each element and attribute
// costs some hundred bytes, whatever its size in the file).
func TestParseXMLMemory(t *testing.T) {
	fill := func(head, unit, tail string) []byte {
		n := (MaxSize - len(head) - len(tail)) / len(unit)
		return []byte(head + strings.Repeat(unit, n) + tail)
	}
	cases := []struct {
		name string
		doc  []byte
	}{
		{"elements", fill("<a>", "<b/>", "</a>")},
		{"attrs", fill("<a", " b=''", "/>")},
		{"attrs-many-tags", fill("<a>", "<b"+strings.Repeat(" c=''", 100)+"/>", "</a>")},
		{"attrs-at-limits", []byte("<a>" + strings.Repeat("<b"+strings.Repeat(" c=''", 1000)+"/>", 199) + "</a>")},
		{"elements-at-limits", []byte("<a>" + strings.Repeat("<b/>", maxNodes-1) + "</a>")},
		{"attr-values", fill("<a", " b='xxxxxxxxxxxxxxxxxxxxxxxxxx'", "/>")},
		{"text-pieces", fill("<a>", "x<!---->", "</a>")},
		{"text-cdata", fill("<a>", "<![CDATA[x]]>", "</a>")},
		{"text", fill("<a>", "x", "</a>")},
		{"deep", fill("<a>", "<b>", "")},
		{"comments", fill("<a>", "<!---->", "</a>")},
		{"namespaces", fill("<a", " xmlns:p=''", "/>")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			start := time.Now()
			_, err := ParseXML(c.doc)
			took := time.Since(start)
			runtime.ReadMemStats(&m1)
			a := m1.TotalAlloc - m0.TotalAlloc
			t.Logf("%d bytes: %v, %d allocated (%.1fx), error %v", len(c.doc), took, a, float64(a)/float64(len(c.doc)), err)
			if a > 16*uint64(max(len(c.doc), MaxSize)) {
				t.Errorf("%d bytes allocated %d, more than 16 times the input or MaxSize", len(c.doc), a)
			}
		})
	}
}
