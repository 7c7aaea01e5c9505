package ovf

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding/htmlindex"

	"github.com/vmfs/vmfs/internal/xmlguard"
)

// Limits of the XML reader: real descriptors are a few hundred elements,
// ten levels deep, with some tens of attributes on an element.
const (
	maxDepth = 64
	maxNodes = 200000
	maxText  = 64 << 10 // text kept per element
)

var xmlLimits = xmlguard.Limits{Depth: maxDepth, Elements: maxNodes, Attrs: 200000, TagAttrs: 1000}

// Node is an element of an XML document, namespaces dropped: OVF files
// put the same elements in several namespaces (OVF 0.9, 1.x, 2.0, VMware,
// VirtualBox, DMTF CIM), so every lookup matches on local names only.
type Node struct {
	Name     string
	Attrs    []xml.Attr
	Text     string
	Children []*Node
}

// Attr returns the attribute with local name name ("" when absent).
func (n *Node) Attr(name string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// HasAttr says whether an attribute with local name name is present.
func (n *Node) HasAttr(name string) bool {
	if n == nil {
		return false
	}
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return true
		}
	}
	return false
}

// Child returns the first child named name, or nil.
func (n *Node) Child(name string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// All returns the children named name.
func (n *Node) All(name string) []*Node {
	if n == nil {
		return nil
	}
	var out []*Node
	for _, c := range n.Children {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// ChildText returns the trimmed text of the first child named name.
func (n *Node) ChildText(name string) string {
	if c := n.Child(name); c != nil {
		return strings.TrimSpace(c.Text)
	}
	return ""
}

// ParseXML reads a whole document into a tree. It fails on a document that
// is not well-formed, too deep or too large, and it reads the declared
// character set (ISO-8859-1 .vbox files exist).
func ParseXML(b []byte) (*Node, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if err := xmlguard.Prescan(b, xmlLimits); err != nil {
		return nil, err
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.CharsetReader = func(label string, r io.Reader) (io.Reader, error) {
		enc, err := htmlindex.Get(label)
		if err != nil {
			return nil, fmt.Errorf("unknown XML encoding %q", label)
		}
		return enc.NewDecoder().Reader(r), nil
	}
	d.Strict = true
	var root *Node
	// The open elements, and the text of each so far: one buffer per
	// level, reused, so that text in many pieces costs its length once.
	var stack []*Node
	var texts [][]byte
	guard := xmlguard.Guard{Limits: xmlLimits}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed XML: %w", err)
		}
		if err := guard.Token(tok); err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &Node{Name: t.Name.Local, Attrs: t.Attr}
			if len(stack) == 0 {
				if root != nil {
					return nil, fmt.Errorf("malformed XML: two root elements")
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			}
			stack = append(stack, n)
			if len(texts) < len(stack) {
				texts = append(texts, nil)
			}
			texts[len(stack)-1] = texts[len(stack)-1][:0]
		case xml.EndElement:
			if text := texts[len(stack)-1]; len(text) > 0 {
				stack[len(stack)-1].Text = string(text)
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				if text := texts[len(stack)-1]; len(text) < maxText {
					texts[len(stack)-1] = append(text, t[:min(len(t), maxText-len(text))]...)
				}
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("malformed XML: text outside the root element")
			}
		}
	}
	if root == nil {
		return nil, fmt.Errorf("malformed XML: no root element")
	}
	return root, nil
}
