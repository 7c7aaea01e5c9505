package xmlguard

import (
	"bytes"
	"encoding/xml"
	"runtime"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	l := Limits{Depth: 4, Elements: 10, Attrs: 5, TagAttrs: 3}
	cases := []struct{ name, doc, want string }{
		{"fits", "<a><b><c><d/></c></b></a>", ""},
		{"deep", "<a><b><c><d><e/></d></c></b></a>", "XML nested deeper than 4 elements"},
		{"deep-unclosed", "<a><b><c><d><e>", "XML nested deeper than 4 elements"},
		{"wide", "<a>" + strings.Repeat("<b/>", 10) + "</a>", "more than 10 XML elements"},
		{"attrs", "<a x='1' y='2'><b x='1' y='2'/><c x='1' y='2'/></a>", "more than 5 XML attributes"},
		{"tag-attrs", "<a x='1' y='2' z='3' w='4'/>", "an XML element with more than 3 attributes"},
		{"attrs-in-quotes-comments-cdata", "<a x='a=b=c=d' y=\"e=f='g\"><!-- <b a=1 b=2 c=3 d=4> --><![CDATA[<b a=1 b=2 c=3 d=4>]]><?pi a=1 b=2 c=3 d=4?>text = = = =</a>", ""},
		{"siblings-at-limit", "<a><b><c><d/><d/><d/></c></b></a>", ""},
		// Malformed before any limit: left to the parser.
		{"malformed", "<a><b></a>" + strings.Repeat("<x>", 10), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check([]byte(c.doc), l)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.want != "" && (err == nil || err.Error() != c.want):
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestGuardNoLimits(t *testing.T) {
	var g Guard
	for range 1000 {
		if err := g.Token(xml.StartElement{Name: xml.Name{Local: "a"}, Attr: make([]xml.Attr, 3)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrescanHugeTag: a tag of a million attributes is refused from its
// bytes, before a decoder builds them.
func TestPrescanHugeTag(t *testing.T) {
	doc := []byte("<a" + strings.Repeat(" b=''", 1<<20) + "/>")
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	err := Check(doc, Limits{Attrs: 1000})
	runtime.ReadMemStats(&m1)
	if err == nil || err.Error() != "more than 1000 XML attributes" {
		t.Fatalf("error %v", err)
	}
	if a := m1.TotalAlloc - m0.TotalAlloc; a > 1<<16 {
		t.Errorf("refusing allocated %d bytes", a)
	}
}

// TestPrescanCountsNoFewer: on well-formed documents Prescan counts what
// the decoder finds.
func TestPrescanCountsNoFewer(t *testing.T) {
	docs := []string{
		"<?xml version='1.0'?><!DOCTYPE a><a x='1'><b y=\"=\" z='>'/>t=t<!--=--><c/></a>",
		"<a\n\tx = '1'\n y='2'/>",
	}
	for _, d := range docs {
		checkNoFewer(t, []byte(d), true)
	}
}

// checkNoFewer fails when Prescan counts fewer attributes in b than a
// decoder reads from it, or, when exact (b is well-formed), more.
func checkNoFewer(t *testing.T, b []byte, exact bool) {
	t.Helper()
	want := 0
	dec := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			want += len(se.Attr)
		}
	}
	if want < 2 {
		return
	}
	if err := Prescan(b, Limits{Attrs: want}); exact && err != nil {
		t.Errorf("%q: %v with the decoder's %d attributes", b, err, want)
	}
	if err := Prescan(b, Limits{Attrs: want - 1}); err == nil {
		t.Errorf("%q: passes with %d attributes, fewer than the decoder's %d", b, want-1, want)
	}
}

// FuzzPrescan: Prescan never counts fewer attributes than a decoder reads,
// and Check never panics.
func FuzzPrescan(f *testing.F) {
	f.Add([]byte("<?xml version='1.0'?><!DOCTYPE a><a x='1'><b y=\"=\" z='>'/>t=t<!--=--><c/></a>"))
	f.Add([]byte("<a><![CDATA[<b x='1'>]]><?p a='1'?><b x='1' y='2'/></a>"))
	f.Add([]byte("<a" + strings.Repeat(" b=''", 100) + "/>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkNoFewer(t, b, false)
		_ = Check(b, Limits{Depth: 8, Elements: 100, Attrs: 100, TagAttrs: 10})
	})
}
