package main

import (
	"fmt"
	"strings"
)

type fieldInfo struct {
	f      *field
	name   string // Go field name
	gt     string // Go type
	ptr    bool   // pointer: optional constructed, or constructed choice alternative
	has    string // presence flag field, if any
	null   bool
	inRoot bool
}

func (fi *fieldInfo) present() string {
	switch {
	case fi.ptr:
		return "x." + fi.name + " != nil"
	case fi.has != "":
		return "x." + fi.has
	}
	return "true"
}

func (em *emitter) fieldInfos(t *typ, choice bool) ([]*fieldInfo, error) {
	taken := map[string]bool{"Ext": true, "Choice": true, "Raw": true}
	uniq := func(s string) string {
		for taken[s] {
			s += "_"
		}
		taken[s] = true
		return s
	}
	var out []*fieldInfo
	for _, f := range t.fields {
		b, err := em.g.base(f.t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		fi := &fieldInfo{f: f, name: uniq(camel(f.name)), null: b.kind == kNull, inRoot: !f.ext}
		if fi.gt, err = em.goType(f.t); err != nil {
			return nil, err
		}
		cons := b.kind == kSeq || b.kind == kChoice
		opt := !choice && (f.optional || f.ext)
		switch {
		case choice:
			fi.ptr = cons
		case opt && cons:
			fi.ptr = true
		case opt:
			fi.has = uniq("Has" + fi.name)
		}
		out = append(out, fi)
	}
	return out, nil
}

// setExpr returns a Go condition that holds when the value of fi, a field
// with a presence flag, differs from its zero value, or "" when the field
// carries no value (NULL).
func (em *emitter) setExpr(fi *fieldInfo) (string, error) {
	if fi.null {
		return "", nil
	}
	b, err := em.g.base(fi.f.t)
	if err != nil {
		return "", err
	}
	v := "x." + fi.name
	switch b.kind {
	case kInt, kEnum:
		return v + " != 0", nil
	case kBool:
		return v, nil
	case kStr:
		return v + ` != ""`, nil
	case kBitStr:
		return v + ".Len != 0 || len(" + v + ".Bytes) != 0", nil
	case kOctStr, kGeneral, kOpen, kOID, kBMP, kSeqOf:
		return "len(" + v + ") != 0", nil
	}
	return "", fmt.Errorf("%s: no zero test for kind %d", fi.f.name, b.kind)
}

// presenceChecks writes the checks that fail Encode when a value is set
// while its presence flag is false: encoding it absent would drop data a
// caller put there (a proxy editing a message, say) without a trace.
func (em *emitter) presenceChecks(fis []*fieldInfo) error {
	for _, fi := range fis {
		if fi.has == "" {
			continue
		}
		cond, err := em.setExpr(fi)
		if err != nil {
			return err
		}
		if cond == "" {
			continue
		}
		em.p("if !x.%s && (%s) { return asn1per.Wrap(asn1per.ErrPresence, %q) }", fi.has, cond, fi.f.name)
	}
	return nil
}

// structFields writes the fields for fis: those of Go type bool (BOOLEAN
// values and presence flags) when bools is set, the others otherwise.
func (em *emitter) structFields(fis []*fieldInfo, bools bool) {
	for _, fi := range fis {
		switch {
		case fi.null:
		case fi.ptr:
			if !bools {
				em.p("%s *%s // %s", fi.name, fi.gt, fi.f.name)
			}
		case (fi.gt == "bool") == bools:
			em.p("%s %s // %s", fi.name, fi.gt, fi.f.name)
		}
		if fi.has != "" && bools {
			em.p("%s bool // %s is present", fi.has, fi.f.name)
		}
	}
}

func (em *emitter) emitSeq(n *named) error {
	t := n.t
	fis, err := em.fieldInfos(t, false)
	if err != nil {
		return err
	}
	var root, adds, opts []*fieldInfo
	for _, fi := range fis {
		if fi.inRoot {
			root = append(root, fi)
			if fi.f.optional {
				opts = append(opts, fi)
			}
		} else {
			adds = append(adds, fi)
		}
	}
	em.p("// %s is the ASN.1 SEQUENCE %s.", n.goName, n.goName)
	em.p("type %s struct {", n.goName)
	em.structFields(fis, false)
	if t.ext {
		em.p("Ext asn1per.Ext // extension bitmap length and unknown additions")
	}
	// The bool fields come last, together: interleaved with slices and
	// strings each would take a word, and a decoded SEQUENCE is allocated
	// whole, so padding costs memory and garbage collection per message.
	em.structFields(fis, true)
	em.p("}\n")

	// Encode
	em.p("// Encode writes x in ALIGNED PER.")
	em.p("func (x *%s) Encode(e *asn1per.Encoder) error {", n.goName)
	em.p("if x == nil { return asn1per.Wrap(asn1per.ErrMissing, %q) }", n.goName)
	if err := em.presenceChecks(fis); err != nil {
		return err
	}
	if t.ext {
		conds := []string{"x.Ext.Present()"}
		for _, fi := range adds {
			conds = append(conds, fi.present())
		}
		em.p("ext := %s", strings.Join(conds, " || "))
		em.p("e.PutBool(ext)")
	}
	for _, fi := range opts {
		em.p("e.PutBool(%s)", fi.present())
	}
	for _, fi := range root {
		if fi.null {
			continue
		}
		if fi.f.optional {
			em.p("if %s {", fi.present())
		}
		if err := em.encode(fi.f.t, "x."+fi.name, "e", fi.f.name); err != nil {
			return err
		}
		if fi.f.optional {
			em.p("}")
		}
	}
	if t.ext {
		em.p("if ext {")
		k := len(adds)
		if k > 0 {
			var ps []string
			for _, fi := range adds {
				ps = append(ps, fi.present())
			}
			em.p("present := [...]bool{%s}", strings.Join(ps, ", "))
			em.p("last := 0")
			em.p("for i, p := range present { if p { last = i + 1 } }")
			em.p("n := x.Ext.Len(last)")
		} else {
			em.p("n := x.Ext.Len(0)")
		}
		em.p("e.PutExtBitmapLen(n)")
		em.p("for i := 0; i < n; i++ {")
		if k > 0 {
			em.p("if i < %d { e.PutBool(present[i]); continue }", k)
		}
		em.p("e.PutBool(x.Ext.Has(i)) }")
		for i, fi := range adds {
			em.p("if present[%d] {", i)
			if fi.null {
				em.p("e.PutOpenType([]byte{0})")
			} else {
				em.p("c := e.Begin()")
				if err := em.encode(fi.f.t, "x."+fi.name, "c", fi.f.name); err != nil {
					return err
				}
				em.p("e.EndOpen(c)")
			}
			em.p("}")
		}
		em.p("x.Ext.EncodeUnknown(e)")
		em.p("}")
	}
	em.p("return nil\n}\n")

	// Decode
	em.decodeEntry(n.goName)
	// The extension bit and the presence bitmap are read at once.
	nOpt := len(opts)
	if nOpt > 63 {
		return fmt.Errorf("%s: %d OPTIONAL fields, more than 63", n.goName, nOpt)
	}
	switch {
	case t.ext && nOpt == 0:
		em.p("ext, err := d.Bool()")
		em.p("if err != nil { %s }", wrap(n.goName))
	case t.ext:
		em.p("pre, err := d.Bits(%d)", nOpt+1)
		em.p("if err != nil { %s }", wrap(n.goName))
		em.p("ext := pre>>%d != 0", nOpt)
	case nOpt > 0:
		em.p("pre, err := d.Bits(%d)", nOpt)
		em.p("if err != nil { %s }", wrap(n.goName))
	}
	oi := 0
	for _, fi := range root {
		if fi.f.optional {
			em.p("if pre&(1<<%d) != 0 {", nOpt-1-oi)
			oi++
			em.markPresent(fi)
		}
		if !fi.null {
			if err := em.decode(fi.f.t, "x."+fi.name, fi.gt, "d", fi.f.name); err != nil {
				return err
			}
		}
		if fi.f.optional {
			em.p("}")
		}
	}
	if t.ext {
		em.p("if ext {")
		// A bitmap no longer than the known additions stays on the stack.
		em.p("var buf [%d]bool", max(16, (len(adds)+7)&^7))
		em.p("present, err := d.ExtBitmap(buf[:0])")
		em.p("if err != nil { %s }", wrap(n.goName))
		em.p("x.Ext.N = len(present)")
		for i, fi := range adds {
			em.p("if len(present) > %d && present[%d] {", i, i)
			em.p("raw, err := d.OpenType()")
			em.p("if err != nil { %s }", wrap(fi.f.name))
			em.markPresent(fi)
			if fi.null {
				em.p("_ = raw")
			} else {
				em.p("fr := d.Push(raw)")
				if err := em.decode(fi.f.t, "x."+fi.name, fi.gt, "d", fi.f.name); err != nil {
					return err
				}
				em.p("d.Pop(fr)")
			}
			em.p("}")
		}
		em.p("if err := d.ExtUnknown(&x.Ext, present, %d); err != nil { %s }", len(adds), wrap(n.goName))
		em.p("}")
	}
	em.p("d.Leave()")
	em.p("return nil\n}\n")
	return nil
}

// decodeEntry writes Decode, which zeroes x, and the head of decode,
// which the decoding of an enclosing value calls on fields that are zero
// already.
func (em *emitter) decodeEntry(goName string) {
	em.p("// Decode reads x from ALIGNED PER.")
	em.p("func (x *%s) Decode(d *asn1per.Decoder) error {", goName)
	em.p("*x = %s{}", goName)
	em.p("return x.decode(d)\n}\n")
	em.p("func (x *%s) decode(d *asn1per.Decoder) error {", goName)
	em.p("if err := d.Enter(); err != nil { return asn1per.Wrap(err, %q) }", goName)
}

func (em *emitter) markPresent(fi *fieldInfo) {
	if fi.ptr {
		em.p("x.%s = new(%s)", fi.name, fi.gt)
	} else if fi.has != "" {
		em.p("x.%s = true", fi.has)
	}
}

func (em *emitter) emitChoice(n *named) error {
	t := n.t
	fis, err := em.fieldInfos(t, true)
	if err != nil {
		return err
	}
	var root, adds []*fieldInfo
	for _, fi := range fis {
		if fi.inRoot {
			root = append(root, fi)
		} else {
			adds = append(adds, fi)
		}
	}
	ordered := append(append([]*fieldInfo{}, root...), adds...)
	em.p("// %s is the ASN.1 CHOICE %s; Choice selects the alternative.", n.goName, n.goName)
	em.p("type %s struct {", n.goName)
	em.p("Choice int")
	em.structFields(ordered, false)
	if t.ext {
		em.p("Raw []byte // contents of an unknown extension alternative")
	}
	em.structFields(ordered, true)
	em.p("}\n")
	em.p("// Alternatives of %s.", n.goName)
	em.p("const (")
	for i, fi := range ordered {
		em.p("%s_%s = %d", n.goName, fi.name, i)
	}
	em.p(")\n")

	em.p("// Encode writes x in ALIGNED PER.")
	em.p("func (x *%s) Encode(e *asn1per.Encoder) error {", n.goName)
	em.p("if x == nil { return asn1per.Wrap(asn1per.ErrMissing, %q) }", n.goName)
	em.p("if err := e.PutChoice(x.Choice, %d, %v); err != nil { %s }", len(root), t.ext, wrap(n.goName))
	em.p("switch x.Choice {")
	for i, fi := range ordered {
		em.p("case %d:", i)
		if fi.ptr {
			em.p("if x.%s == nil { return asn1per.Wrap(asn1per.ErrMissing, %q) }", fi.name, fi.f.name)
		}
		ev := "e"
		if !fi.inRoot {
			ev = "c"
			em.p("c := e.Begin()")
		}
		if !fi.null {
			if err := em.encode(fi.f.t, "x."+fi.name, ev, fi.f.name); err != nil {
				return err
			}
		}
		if !fi.inRoot {
			em.p("e.EndOpen(c)")
		}
	}
	if t.ext {
		em.p("default: e.PutOpenType(x.Raw)")
	}
	em.p("}\nreturn nil\n}\n")

	em.decodeEntry(n.goName)
	em.p("idx, err := d.Choice(%d, %v)", len(root), t.ext)
	em.p("if err != nil { %s }", wrap(n.goName))
	em.p("x.Choice = idx")
	em.p("switch idx {")
	for i, fi := range ordered {
		em.p("case %d:", i)
		if !fi.inRoot {
			em.p("raw, err := d.OpenType()")
			em.p("if err != nil { %s }", wrap(fi.f.name))
			if fi.null {
				em.p("_ = raw")
				continue
			}
			em.p("fr := d.Push(raw)")
		}
		if fi.ptr {
			em.p("x.%s = new(%s)", fi.name, fi.gt)
		}
		if !fi.null {
			if err := em.decode(fi.f.t, "x."+fi.name, fi.gt, "d", fi.f.name); err != nil {
				return err
			}
		}
		if !fi.inRoot {
			em.p("d.Pop(fr)")
		}
	}
	if t.ext {
		em.p("default:")
		em.p("raw, err := d.OpenType()")
		em.p("if err != nil { %s }", wrap(n.goName))
		em.p("x.Raw = raw")
	}
	em.p("}\nd.Leave()\nreturn nil\n}\n")
	return nil
}

func (em *emitter) emitEnum(n *named) {
	t := n.t
	em.p("// %s is the ASN.1 ENUMERATED %s: a root index, or the number of root", n.goName, n.goName)
	em.p("// items plus the extension index.")
	em.p("type %s int\n", n.goName)
	em.p("// Values of %s.", n.goName)
	em.p("const (")
	for i, it := range t.items {
		em.p("%s_%s %s = %d", n.goName, camel(it), n.goName, i)
	}
	em.p(")\n")
	em.p("// Encode writes x in ALIGNED PER.")
	em.p("func (x *%s) Encode(e *asn1per.Encoder) error {", n.goName)
	em.p("if err := e.PutEnum(int(*x), %d, %v); err != nil { %s }", len(t.items), t.ext, wrap(n.goName))
	em.p("return nil\n}\n")
	em.p("// Decode reads x from ALIGNED PER.")
	em.p("func (x *%s) Decode(d *asn1per.Decoder) error {", n.goName)
	em.p("v, err := d.Enum(%d, %v)", len(t.items), t.ext)
	em.p("if err != nil { %s }", wrap(n.goName))
	em.p("*x = %s(v)", n.goName)
	em.p("return nil\n}\n")
}

// emitPlain writes a named primitive, SEQUENCE OF or constrained reference.
func (em *emitter) emitPlain(n *named) error {
	t := n.t
	if t.kind == kRef && !hasPERConstraint(t) {
		gt, err := em.goType(t)
		if err != nil {
			return err
		}
		em.p("// %s is the ASN.1 type %s.", n.goName, n.goName)
		em.p("type %s = %s\n", n.goName, gt)
		return nil
	}
	eff, err := em.g.effective(t)
	if err != nil {
		return err
	}
	if eff.kind == kRef {
		return fmt.Errorf("constrained reference to a constructed type")
	}
	gt, err := em.goType(eff)
	if err != nil {
		return err
	}
	em.p("// %s is the ASN.1 type %s.", n.goName, n.goName)
	em.p("type %s %s\n", n.goName, gt)
	em.p("// Encode writes x in ALIGNED PER.")
	em.p("func (x *%s) Encode(e *asn1per.Encoder) error {", n.goName)
	if err := em.encode(eff, "(*x)", "e", n.goName); err != nil {
		return err
	}
	em.p("return nil\n}\n")
	em.p("// Decode reads x from ALIGNED PER.")
	em.p("func (x *%s) Decode(d *asn1per.Decoder) error {", n.goName)
	if err := em.decode(eff, "(*x)", n.goName, "d", n.goName); err != nil {
		return err
	}
	em.p("return nil\n}\n")
	return nil
}

func (em *emitter) emitNamed(n *named) error {
	switch n.t.kind {
	case kSeq:
		return em.emitSeq(n)
	case kChoice:
		return em.emitChoice(n)
	case kEnum:
		em.emitEnum(n)
		return nil
	}
	return em.emitPlain(n)
}
