package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

type parser struct {
	toks []token
	pos  int
	mod  *module
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) peekN(n int) token {
	if p.pos+n < len(p.toks) {
		return p.toks[p.pos+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}
func (p *parser) is(s string) bool { return p.peek().text == s && p.peek().kind != tString }
func (p *parser) accept(s string) bool {
	if p.is(s) {
		p.next()
		return true
	}
	return false
}
func (p *parser) expect(s string) error {
	if !p.accept(s) {
		return p.errf("expected %q, found %q", s, p.peek().text)
	}
	return nil
}
func (p *parser) errf(f string, a ...any) error {
	return fmt.Errorf("%s line %d: %s", p.mod.name, p.peek().line, fmt.Sprintf(f, a...))
}

// skipBalanced skips tokens up to and including the bracket closing the
// one just consumed (open is "(" or "{").
func (p *parser) skipBalanced(open, close string) error {
	depth := 1
	for depth > 0 {
		t := p.next()
		if t.kind == tEOF {
			return p.errf("unbalanced %s", open)
		}
		if t.kind == tPunct && t.text == open {
			depth++
		} else if t.kind == tPunct && t.text == close {
			depth--
		}
	}
	return nil
}

// parseModule reads one module definition.
func parseModule(src string) (*module, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, mod: &module{imports: map[string]string{}}}
	p.mod.name = p.next().text
	for !p.is("BEGIN") {
		if p.peek().kind == tEOF {
			return nil, p.errf("no BEGIN")
		}
		p.next()
	}
	p.next()
	if p.accept("EXPORTS") {
		for !p.accept(";") {
			p.next()
		}
	}
	if p.accept("IMPORTS") {
		var names []string
		for !p.accept(";") {
			t := p.next()
			switch {
			case t.text == "FROM":
				mod := p.next().text
				for _, n := range names {
					p.mod.imports[n] = mod
				}
				names = nil
				if p.accept("{") {
					if err := p.skipBalanced("{", "}"); err != nil {
						return nil, err
					}
				}
			case t.kind == tIdent:
				names = append(names, t.text)
			}
		}
	}
	for !p.is("END") {
		if p.peek().kind == tEOF {
			return nil, p.errf("no END")
		}
		a, err := p.parseAssignment()
		if err != nil {
			return nil, err
		}
		if a != nil {
			p.mod.assigns = append(p.mod.assigns, a)
		}
	}
	return p.mod, nil
}

func (p *parser) parseAssignment() (*assignment, error) {
	name := p.next()
	if name.kind != tIdent {
		return nil, p.errf("expected assignment, found %q", name.text)
	}
	a := &assignment{name: name.text, module: p.mod}
	if p.accept("{") {
		for !p.accept("}") {
			t := p.next()
			if t.kind == tIdent {
				a.params = append(a.params, t.text)
			}
		}
	}
	if !p.accept("::=") {
		return nil, p.errf("value assignments are not supported (%s)", name.text)
	}
	t, err := p.parseType()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name.text, err)
	}
	a.t = t
	return a, nil
}

func (p *parser) parseType() (*typ, error) {
	// tags are not PER-visible
	for p.accept("[") {
		for !p.accept("]") {
			p.next()
		}
		p.accept("IMPLICIT")
		p.accept("EXPLICIT")
	}
	t := &typ{module: p.mod.name, sizeUB: -1}
	tok := p.next()
	switch tok.text {
	case "SEQUENCE", "SET":
		if p.accept("{") {
			t.kind = kSeq
			if err := p.parseComponents(t); err != nil {
				return nil, err
			}
			break
		}
		t.kind = kSeqOf
		if p.is("SIZE") {
			if err := p.parseConstraintBody(t, true); err != nil {
				return nil, err
			}
		} else if p.accept("(") {
			if err := p.parseConstraint(t); err != nil {
				return nil, err
			}
		}
		if err := p.expect("OF"); err != nil {
			return nil, err
		}
		if p.peek().kind == tIdent && p.peekN(1).kind == tIdent && isLower(p.peek().text) {
			p.next() // element name
		}
		el, err := p.parseType()
		if err != nil {
			return nil, err
		}
		t.elem = el
	case "CHOICE":
		t.kind = kChoice
		if err := p.expect("{"); err != nil {
			return nil, err
		}
		if err := p.parseComponents(t); err != nil {
			return nil, err
		}
	case "INTEGER":
		t.kind = kInt
		if p.accept("{") {
			if err := p.skipBalanced("{", "}"); err != nil {
				return nil, err
			}
		}
	case "BOOLEAN":
		t.kind = kBool
	case "NULL":
		t.kind = kNull
	case "ENUMERATED":
		t.kind = kEnum
		if err := p.parseEnum(t); err != nil {
			return nil, err
		}
	case "BIT":
		t.kind = kBitStr
		if err := p.expect("STRING"); err != nil {
			return nil, err
		}
		if p.accept("{") {
			if err := p.skipBalanced("{", "}"); err != nil {
				return nil, err
			}
		}
	case "OCTET":
		t.kind = kOctStr
		if err := p.expect("STRING"); err != nil {
			return nil, err
		}
	case "OBJECT":
		t.kind = kOID
		if err := p.expect("IDENTIFIER"); err != nil {
			return nil, err
		}
	case "IA5String", "PrintableString", "NumericString", "VisibleString":
		t.kind = kStr
		t.strKind = strings.TrimSuffix(tok.text, "String")
	case "BMPString":
		t.kind = kBMP
	case "GeneralString", "GraphicString", "UTF8String", "TeletexString", "T61String", "VideotexString", "UniversalString":
		t.kind = kGeneral
	case "TYPE-IDENTIFIER":
		t.kind = kOpen
		if err := p.expect("."); err != nil {
			return nil, err
		}
		p.next() // &Type
	default:
		if tok.kind != tIdent {
			return nil, p.errf("unexpected %q in type", tok.text)
		}
		t.kind = kRef
		t.ref = tok.text
		if p.accept("{") {
			for !p.accept("}") {
				a, err := p.parseType()
				if err != nil {
					return nil, err
				}
				t.args = append(t.args, a)
				p.accept(",")
			}
		}
	}
	for p.accept("(") {
		if err := p.parseConstraint(t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func isLower(s string) bool { return s != "" && s[0] >= 'a' && s[0] <= 'z' }

func (p *parser) parseComponents(t *typ) error {
	markers := 0
	for {
		if p.accept("}") {
			return nil
		}
		if p.accept(",") {
			continue
		}
		if p.accept("...") {
			t.ext = true
			markers++
			if p.accept("!") {
				p.next()
			}
			continue
		}
		if p.is("[[") {
			return p.errf("extension addition groups are not supported")
		}
		if p.is("COMPONENTS") {
			return p.errf("COMPONENTS OF is not supported")
		}
		name := p.next()
		if name.kind != tIdent {
			return p.errf("expected component name, found %q", name.text)
		}
		ft, err := p.parseType()
		if err != nil {
			return fmt.Errorf("%s: %w", name.text, err)
		}
		f := &field{name: name.text, t: ft, ext: markers == 1}
		if p.accept("OPTIONAL") {
			f.optional = true
		} else if p.accept("DEFAULT") {
			f.optional = true
			depth := 0
			for depth > 0 || !(p.is(",") || p.is("}")) {
				switch {
				case p.is("{"):
					depth++
				case p.is("}"):
					depth--
				}
				p.next()
			}
		}
		t.fields = append(t.fields, f)
	}
}

func (p *parser) parseEnum(t *typ) error {
	if err := p.expect("{"); err != nil {
		return err
	}
	type item struct {
		name string
		val  int
	}
	var root []item
	inExt := false
	next := 0
	for !p.accept("}") {
		if p.accept(",") {
			continue
		}
		if p.accept("...") {
			inExt = true
			continue
		}
		name := p.next().text
		v := -1
		if p.accept("(") {
			n, err := strconv.Atoi(p.next().text)
			if err != nil {
				return p.errf("enumeration value: %v", err)
			}
			v = n
			if err := p.expect(")"); err != nil {
				return err
			}
		}
		if inExt {
			t.nExtEn++
			continue
		}
		if v < 0 {
			v = next
		}
		next = v + 1
		root = append(root, item{name, v})
	}
	sort.SliceStable(root, func(i, j int) bool { return root[i].val < root[j].val })
	for _, it := range root {
		t.items = append(t.items, it.name)
	}
	t.ext = inExt
	return nil
}
