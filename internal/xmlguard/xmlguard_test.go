package xmlguard

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	l := Limits{Depth: 4, Elements: 10, Attrs: 5}
	cases := []struct{ name, doc, want string }{
		{"fits", "<a><b><c><d/></c></b></a>", ""},
		{"deep", "<a><b><c><d><e/></d></c></b></a>", "XML nested deeper than 4 elements"},
		{"deep-unclosed", "<a><b><c><d><e>", "XML nested deeper than 4 elements"},
		{"wide", "<a>" + strings.Repeat("<b/>", 10) + "</a>", "more than 10 XML elements"},
		{"attrs", "<a x='1' y='2'><b x='1' y='2'/><c x='1' y='2'/></a>", "more than 5 XML attributes"},
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
