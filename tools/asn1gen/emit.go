package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// emitter writes the Go code of one package.
type emitter struct {
	g    *gen
	pkg  string
	w    *bytes.Buffer
	deps map[string]bool // other generated packages referenced
	loop int             // loop variable counter
}

func (em *emitter) p(format string, a ...any) { fmt.Fprintf(em.w, format+"\n", a...) }

// goType returns the Go type of a field of type t.
func (em *emitter) goType(t *typ) (string, error) {
	switch t.kind {
	case kRef:
		if t.ref == "" {
			return t.goName, nil
		}
		a, err := em.g.lookup(t.module, t.ref)
		if err != nil {
			return "", err
		}
		pkg := em.g.pkgOf[a.module.name]
		if pkg != em.pkg {
			em.deps[pkg] = true
			return pkg + "." + a.t.goName, nil
		}
		return a.t.goName, nil
	case kSeq, kChoice, kEnum:
		return t.goName, nil
	case kSeqOf:
		el, err := em.goType(t.elem)
		return "[]" + el, err
	case kInt:
		return "int64", nil
	case kBool:
		return "bool", nil
	case kNull:
		return "struct{}", nil
	case kBitStr:
		return "asn1per.BitString", nil
	case kOctStr, kGeneral, kOpen:
		return "[]byte", nil
	case kOID:
		return "asn1per.ObjectIdentifier", nil
	case kStr:
		return "string", nil
	case kBMP:
		return "asn1per.BMPString", nil
	}
	return "", fmt.Errorf("no Go type for kind %d", t.kind)
}

func sizeArgs(t *typ) string {
	ub := "asn1per.Unbounded"
	if t.sizeUB >= 0 {
		ub = strconv.Itoa(t.sizeUB)
	}
	return fmt.Sprintf("%d, %s, %v", t.sizeLB, ub, t.sizeExt)
}

func (em *emitter) charset(t *typ) string {
	kind := "IA5"
	if t.strKind != "" {
		kind = t.strKind
	}
	key := kind + "\x00" + t.from
	if em.g.csVars[em.pkg] == nil {
		em.g.csVars[em.pkg] = map[string]string{}
	}
	if v, ok := em.g.csVars[em.pkg][key]; ok {
		return v
	}
	v := fmt.Sprintf("charset%d", len(em.g.csVars[em.pkg]))
	em.g.csVars[em.pkg][key] = v
	em.g.csOrder[em.pkg] = append(em.g.csOrder[em.pkg], fmt.Sprintf("%s = asn1per.NewCharSet(asn1per.%s, %q)", v, kind, t.from))
	return v
}

func wrap(name string) string { return fmt.Sprintf("return asn1per.Wrap(err, %q)", name) }

// encode writes statements encoding value v (an addressable Go expression
// of type t) with encoder ev.
func (em *emitter) encode(t *typ, v, ev, name string) error {
	t, err := em.g.effective(t)
	if err != nil {
		return err
	}
	switch t.kind {
	case kRef, kSeq, kChoice, kEnum:
		em.p("if err := %s.Encode(%s); err != nil { %s }", v, ev, wrap(name))
	case kInt:
		if t.hasLB && t.hasUB && !t.valExt {
			em.p("if err := %s.PutConstrained(int64(%s), %d, %d); err != nil { %s }", ev, v, t.lb, t.ub, wrap(name))
		} else {
			em.p("if err := %s.PutInt(int64(%s), %v, %d, %v, %d, %v); err != nil { %s }", ev, v, t.hasLB, t.lb, t.hasUB, t.ub, t.valExt, wrap(name))
		}
	case kBool:
		em.p("%s.PutBool(bool(%s))", ev, v)
	case kNull:
	case kOctStr:
		em.p("if err := %s.PutOctetString([]byte(%s), %s); err != nil { %s }", ev, v, sizeArgs(t), wrap(name))
	case kGeneral:
		em.p("if err := %s.PutOctetString([]byte(%s), 0, asn1per.Unbounded, false); err != nil { %s }", ev, v, wrap(name))
	case kOpen:
		em.p("%s.PutOpenType([]byte(%s))", ev, v)
	case kBitStr:
		em.p("if err := %s.PutBitString(asn1per.BitString(%s), %s); err != nil { %s }", ev, v, sizeArgs(t), wrap(name))
	case kOID:
		em.p("if err := %s.PutObjectIdentifier(asn1per.ObjectIdentifier(%s)); err != nil { %s }", ev, v, wrap(name))
	case kStr:
		em.p("if err := %s.PutString(string(%s), %s, %s); err != nil { %s }", ev, v, em.charset(t), sizeArgs(t), wrap(name))
	case kBMP:
		em.p("if err := %s.PutBMPString(asn1per.BMPString(%s), %s); err != nil { %s }", ev, v, sizeArgs(t), wrap(name))
	case kSeqOf:
		em.p("if err := %s.PutLength(len(%s), %s); err != nil { %s }", ev, v, sizeArgs(t), wrap(name))
		i := fmt.Sprintf("i%d", em.loop)
		em.loop++
		em.p("for %s := range %s {", i, v)
		if err := em.encode(t.elem, fmt.Sprintf("%s[%s]", v, i), ev, name); err != nil {
			return err
		}
		em.p("}")
	default:
		return fmt.Errorf("cannot encode kind %d", t.kind)
	}
	return nil
}

// decode writes statements decoding into v (of Go type gt) with decoder
// expression dv.
func (em *emitter) decode(t *typ, v, gt, dv, name string) error {
	t, err := em.g.effective(t)
	if err != nil {
		return err
	}
	val := func(call string) {
		em.p("{ r, err := %s.%s; if err != nil { %s }; %s = %s(r) }", dv, call, wrap(name), v, gt)
	}
	switch t.kind {
	case kRef, kSeq, kChoice, kEnum:
		m, err := em.decodeMethod(t)
		if err != nil {
			return err
		}
		em.p("if err := %s.%s(%s); err != nil { %s }", v, m, dv, wrap(name))
	case kInt:
		if t.hasLB && t.hasUB && !t.valExt {
			val(fmt.Sprintf("Constrained(%d, %d)", t.lb, t.ub))
		} else {
			val(fmt.Sprintf("Int(%v, %d, %v, %d, %v)", t.hasLB, t.lb, t.hasUB, t.ub, t.valExt))
		}
	case kBool:
		val("Bool()")
	case kNull:
	case kOctStr:
		val(fmt.Sprintf("OctetString(%s)", sizeArgs(t)))
	case kGeneral:
		val("OctetString(0, asn1per.Unbounded, false)")
	case kOpen:
		val("OpenType()")
	case kBitStr:
		val(fmt.Sprintf("BitString(%s)", sizeArgs(t)))
	case kOID:
		val("ObjectIdentifier()")
	case kStr:
		val(fmt.Sprintf("String(%s, %s)", em.charset(t), sizeArgs(t)))
	case kBMP:
		val(fmt.Sprintf("BMPString(%s)", sizeArgs(t)))
	case kSeqOf:
		el, err := em.goType(t.elem)
		if err != nil {
			return err
		}
		n := fmt.Sprintf("n%d", em.loop)
		em.loop++
		em.p("{ %s, err := %s.Length(%s, %d); if err != nil { %s }", n, dv, sizeArgs(t), em.g.minBits(t.elem, map[*typ]bool{}), wrap(name))
		em.p("%s = make(%s, 0, min(%s, 64))", v, gt, n)
		em.p("for range %s { var zero %s; %s = append(%s, zero)", n, el, v, v)
		if err := em.decode(t.elem, fmt.Sprintf("%s[len(%s)-1]", v, v), el, dv, name); err != nil {
			return err
		}
		em.p("} }")
	default:
		return fmt.Errorf("cannot decode kind %d", t.kind)
	}
	return nil
}

// decodeMethod names the method decoding a value of t into a field of a
// value being decoded: the unexported decode, which skips zeroing what is
// already zero, for SEQUENCE and CHOICE types of this package, else Decode.
func (em *emitter) decodeMethod(t *typ) (string, error) {
	b, err := em.g.base(t)
	if err != nil {
		return "", err
	}
	if b.kind != kSeq && b.kind != kChoice {
		return "Decode", nil
	}
	gt, err := em.goType(t)
	if err != nil {
		return "", err
	}
	if strings.Contains(gt, ".") {
		return "Decode", nil
	}
	return "decode", nil
}

// minBits is a lower bound (0 or 1) on the encoded size of t, used to
// check element counts against the remaining input.
func (g *gen) minBits(t *typ, seen map[*typ]bool) int {
	if seen[t] {
		return 0
	}
	seen[t] = true
	defer delete(seen, t)
	switch t.kind {
	case kRef:
		b, err := g.target(t)
		if err != nil || b == nil {
			return 0
		}
		return g.minBits(b, seen)
	case kBool, kOID, kOpen, kGeneral:
		return 1
	case kInt:
		if !t.hasLB || !t.hasUB || t.valExt || t.ub > t.lb {
			return 1
		}
	case kEnum:
		if t.ext || len(t.items) > 1 {
			return 1
		}
	case kOctStr, kStr, kBMP, kBitStr, kSeqOf:
		if t.sizeExt || t.sizeUB != t.sizeLB || t.sizeLB > 0 && (t.kind != kSeqOf || g.minBits(t.elem, seen) > 0) {
			return 1
		}
	case kSeq:
		for _, f := range t.fields {
			if t.ext || f.optional || g.minBits(f.t, seen) > 0 {
				return 1
			}
		}
		if t.ext {
			return 1
		}
	case kChoice:
		if t.ext || len(t.fields) > 1 {
			return 1
		}
		if len(t.fields) == 1 {
			return g.minBits(t.fields[0].t, seen)
		}
	}
	return 0
}
