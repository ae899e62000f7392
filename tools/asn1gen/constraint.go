package main

import (
	"strconv"
)

// parseConstraint reads a constraint after its "(" up to the matching
// ")", keeping the PER-visible parts: value ranges, SIZE and FROM, and
// extension markers. Other constraints (WITH COMPONENTS, CONSTRAINED BY,
// table constraints) are skipped.
func (p *parser) parseConstraint(t *typ) error {
	for {
		switch {
		case p.accept(")"):
			return nil
		case p.accept(","), p.accept("^"), p.accept("|"):
		case p.accept("..."):
			if t.kind == kInt || (t.kind == kRef && !t.hasSize) {
				t.valExt = true
			} else {
				t.sizeExt = true
			}
		case p.is("SIZE"):
			if err := p.parseConstraintBody(t, true); err != nil {
				return err
			}
		case p.accept("FROM"):
			if err := p.expect("("); err != nil {
				return err
			}
			for !p.accept(")") {
				tok := p.next()
				switch {
				case tok.kind == tString:
					if p.accept("..") {
						hi := p.next().text
						if len(tok.text) == 1 && len(hi) == 1 {
							for c := tok.text[0]; c <= hi[0] && c >= tok.text[0]; c++ {
								t.from += string(c)
							}
						}
					} else {
						t.from += tok.text
					}
				case tok.kind == tEOF:
					return p.errf("unterminated FROM")
				}
			}
		case p.accept("("):
			if err := p.parseConstraint(t); err != nil {
				return err
			}
		case p.peek().kind == tNumber || p.is("-") || p.is("MIN") || p.is("MAX"):
			lb, hasLB, err := p.parseBound()
			if err != nil {
				return err
			}
			ub, hasUB := lb, hasLB
			if p.accept("..") {
				if ub, hasUB, err = p.parseBound(); err != nil {
					return err
				}
			}
			t.lb, t.hasLB, t.ub, t.hasUB = lb, hasLB, ub, hasUB
		case p.accept("{"):
			if err := p.skipBalanced("{", "}"); err != nil {
				return err
			}
		default:
			if p.next().kind == tEOF {
				return p.errf("unterminated constraint")
			}
		}
	}
}

func (p *parser) parseBound() (int64, bool, error) {
	if p.accept("MIN") || p.accept("MAX") {
		return 0, false, nil
	}
	neg := p.accept("-")
	tok := p.next()
	v, err := strconv.ParseInt(tok.text, 10, 64)
	if err != nil {
		return 0, false, p.errf("bound %q: %v", tok.text, err)
	}
	if neg {
		v = -v
	}
	return v, true, nil
}

// parseConstraintBody reads "SIZE (range[, ...])".
func (p *parser) parseConstraintBody(t *typ, _ bool) error {
	if err := p.expect("SIZE"); err != nil {
		return err
	}
	if err := p.expect("("); err != nil {
		return err
	}
	var sub typ
	sub.kind = kInt
	if err := p.parseConstraint(&sub); err != nil {
		return err
	}
	t.hasSize = true
	t.sizeLB = int(sub.lb)
	t.sizeUB = -1
	if sub.hasUB {
		t.sizeUB = int(sub.ub)
	}
	if !sub.hasLB {
		t.sizeLB = 0
	}
	if sub.valExt {
		t.sizeExt = true
	}
	return nil
}
