// Package xmlguard bounds what reading an XML document may cost: how deep
// its elements nest, how many elements and attributes it holds. The
// descriptor parsers check every token against the same limits, before
// any of it becomes a tree or a struct, so that a hostile document fails
// in time and memory proportional to the limits, not to its nesting.
package xmlguard

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// Limits bound one document. A zero field is no limit.
type Limits struct {
	Depth    int // elements open at once
	Elements int // elements in all
	Attrs    int // attributes in all
}

// Guard applies Limits to the tokens of one document, in order.
type Guard struct {
	Limits
	depth, elements, attrs int
}

// Token accounts for the next token of the document: it fails when tok
// opens an element past a limit.
func (g *Guard) Token(tok xml.Token) error {
	switch t := tok.(type) {
	case xml.StartElement:
		g.elements++
		if g.Elements > 0 && g.elements > g.Elements {
			return fmt.Errorf("more than %d XML elements", g.Elements)
		}
		if g.Depth > 0 && g.depth >= g.Depth {
			return fmt.Errorf("XML nested deeper than %d elements", g.Depth)
		}
		g.attrs += len(t.Attr)
		if g.Attrs > 0 && g.attrs > g.Attrs {
			return fmt.Errorf("more than %d XML attributes", g.Attrs)
		}
		g.depth++
	case xml.EndElement:
		g.depth--
	}
	return nil
}

// Check reads the tokens of document b and returns the error of the first
// limit it crosses. A document that is malformed before it crosses one
// passes: the parser that reads it next says what is wrong where.
func Check(b []byte, l Limits) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	g := Guard{Limits: l}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil // io.EOF, or malformed
		}
		if err := g.Token(tok); err != nil {
			return err
		}
	}
}
