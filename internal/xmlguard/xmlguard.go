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
	TagAttrs int // attributes of one element
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
		if err := g.countAttrs(len(t.Attr)); err != nil {
			return err
		}
		g.depth++
	case xml.EndElement:
		g.depth--
	}
	return nil
}

func (g *Guard) countAttrs(n int) error {
	if g.TagAttrs > 0 && n > g.TagAttrs {
		return fmt.Errorf("an XML element with more than %d attributes", g.TagAttrs)
	}
	g.attrs += n
	if g.Attrs > 0 && g.attrs > g.Attrs {
		return fmt.Errorf("more than %d XML attributes", g.Attrs)
	}
	return nil
}

// Prescan counts the attributes of document b from its bytes, without
// decoding it: encoding/xml builds all the attributes of a tag before it
// returns the tag, a slice grown one attribute at a time, so a tag of a
// million attributes costs some hundred bytes each before a Guard sees
// it. Prescan allocates nothing. It reads b as an ASCII-compatible text
// (UTF-8, the ISO-8859 and Windows code pages) and skips comments, CDATA
// sections, processing instructions and declarations; it counts the "="
// outside quotes in each tag, which is the tag's attributes when b is
// well-formed and never fewer.
func Prescan(b []byte, l Limits) error {
	g := Guard{Limits: l}
	for i := 0; i < len(b); {
		lt := bytes.IndexByte(b[i:], '<')
		if lt < 0 {
			return nil
		}
		i += lt + 1
		rest := b[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("!--")):
			i = skipPast(b, i+3, "-->")
			continue
		case bytes.HasPrefix(rest, []byte("![CDATA[")):
			i = skipPast(b, i+8, "]]>")
			continue
		case bytes.HasPrefix(rest, []byte("?")):
			i = skipPast(b, i+1, "?>")
			continue
		case bytes.HasPrefix(rest, []byte("!")):
			i = skipPast(b, i+1, ">")
			continue
		}
		n := 0
		var quote byte
	tag:
		for ; i < len(b); i++ {
			c := b[i]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '=':
				n++
			case c == '>':
				i++
				break tag
			}
		}
		if err := g.countAttrs(n); err != nil {
			return err
		}
	}
	return nil
}

// skipPast returns the offset after the first end at or after i, or the
// end of b.
func skipPast(b []byte, i int, end string) int {
	if j := bytes.Index(b[i:], []byte(end)); j >= 0 {
		return i + j + len(end)
	}
	return len(b)
}

// Check checks document b against l: its attributes with Prescan, then
// each of its tokens with a Guard. It returns the error of the first
// limit b crosses. A document that is malformed before it crosses one
// passes: the parser that reads it next says what is wrong where.
func Check(b []byte, l Limits) error {
	if err := Prescan(b, l); err != nil {
		return err
	}
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
