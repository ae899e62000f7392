package main

import (
	"fmt"
	"strings"
)

// named is a Go type the generator writes.
type named struct {
	goName string
	t      *typ
	pkg    string
}

type gen struct {
	mods    map[string]*module
	syms    map[string]map[string]*assignment
	pkgOf   map[string]string // module -> Go package
	named   map[string][]*named
	used    map[string]map[string]bool // pkg -> Go names taken
	inst    map[string]*typ            // parameterized instances by Go name
	queue   []*named
	csVars  map[string]map[string]string // pkg -> charset key -> var
	csOrder map[string][]string
}

// camel turns an ASN.1 identifier into an exported Go identifier.
func camel(s string) string {
	var sb strings.Builder
	up := true
	for _, r := range s {
		if r == '-' || r == '&' || r == '.' {
			up = true
			continue
		}
		if up && r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		up = false
		sb.WriteRune(r)
	}
	return sb.String()
}

func newGen(mods []*module, pkgOf map[string]string) (*gen, error) {
	g := &gen{mods: map[string]*module{}, syms: map[string]map[string]*assignment{}, pkgOf: pkgOf,
		named: map[string][]*named{}, used: map[string]map[string]bool{}, inst: map[string]*typ{},
		csVars: map[string]map[string]string{}, csOrder: map[string][]string{}}
	for _, m := range mods {
		g.mods[m.name] = m
		g.syms[m.name] = map[string]*assignment{}
		for _, a := range m.assigns {
			g.syms[m.name][a.name] = a
		}
	}
	// name every non-parameterized assignment; modules listed first keep
	// plain names, later clashes get a module prefix
	for _, m := range mods {
		pkg := pkgOf[m.name]
		if g.used[pkg] == nil {
			g.used[pkg] = map[string]bool{}
		}
		for _, a := range m.assigns {
			if len(a.params) > 0 {
				continue
			}
			name := camel(a.name)
			if g.used[pkg][name] {
				name = camel(strings.SplitN(m.name, "-", 2)[0]) + name
			}
			g.add(pkg, name, a.t)
		}
	}
	for len(g.queue) > 0 {
		n := g.queue[0]
		g.queue = g.queue[1:]
		if err := g.hoist(n); err != nil {
			return nil, fmt.Errorf("%s: %w", n.goName, err)
		}
	}
	return g, nil
}

func (g *gen) add(pkg, name string, t *typ) *named {
	base := name
	for i := 2; g.used[pkg][name] && t.goName != name; i++ {
		name = fmt.Sprintf("%s%d", base, i)
	}
	g.used[pkg][name] = true
	t.goName = name
	n := &named{goName: name, t: t, pkg: pkg}
	g.named[pkg] = append(g.named[pkg], n)
	g.queue = append(g.queue, n)
	return n
}

// hoist gives Go names to the constructed types written inline in n and
// instantiates parameterized references.
func (g *gen) hoist(n *named) error {
	t := n.t
	switch t.kind {
	case kSeq, kChoice:
		for _, f := range t.fields {
			if err := g.inline(f.t, n.goName+camel(f.name), n.pkg); err != nil {
				return err
			}
		}
	case kSeqOf:
		return g.inline(t.elem, n.goName+"Item", n.pkg)
	case kRef:
		return g.instantiate(t, n.pkg)
	}
	return nil
}

func (g *gen) inline(t *typ, name, pkg string) error {
	switch t.kind {
	case kSeq, kChoice, kEnum:
		g.add(pkg, name, t)
	case kSeqOf:
		return g.inline(t.elem, name, pkg)
	case kRef:
		return g.instantiate(t, pkg)
	}
	return nil
}

// instantiate replaces a reference to a parameterized type (SIGNED{},
// ENCRYPTED{}, HASHED{}) by a reference to a generated instance.
func (g *gen) instantiate(t *typ, pkg string) error {
	if len(t.args) == 0 {
		return nil
	}
	a, err := g.lookup(t.module, t.ref)
	if err != nil {
		return err
	}
	if len(a.params) != len(t.args) {
		return fmt.Errorf("%s: %d parameters, %d arguments", t.ref, len(a.params), len(t.args))
	}
	name := camel(t.ref)
	subst := map[string]*typ{}
	for i, arg := range t.args {
		if arg.kind != kRef {
			return fmt.Errorf("%s: only type references are supported as arguments", t.ref)
		}
		name += camel(arg.ref)
		subst[a.params[i]] = arg
	}
	if inst, ok := g.inst[name]; ok {
		t.ref, t.args, t.module = "", nil, ""
		t.goName = inst.goName
		return nil
	}
	body := clone(a.t, subst)
	g.inst[name] = body
	g.add(pkg, name, body)
	t.ref, t.args, t.module = "", nil, ""
	t.goName = body.goName
	return nil
}

func clone(t *typ, subst map[string]*typ) *typ {
	if t.kind == kRef && subst[t.ref] != nil && len(t.args) == 0 {
		c := *subst[t.ref]
		return &c
	}
	c := *t
	c.goName = ""
	if t.elem != nil {
		c.elem = clone(t.elem, subst)
	}
	c.fields = nil
	for _, f := range t.fields {
		nf := *f
		nf.t = clone(f.t, subst)
		c.fields = append(c.fields, &nf)
	}
	return &c
}

func (g *gen) lookup(mod, name string) (*assignment, error) {
	if a, ok := g.syms[mod][name]; ok {
		return a, nil
	}
	if from, ok := g.mods[mod].imports[name]; ok {
		if a, ok := g.syms[from][name]; ok {
			return a, nil
		}
	}
	return nil, fmt.Errorf("undefined type %s in %s", name, mod)
}

// target returns the named type a reference denotes.
func (g *gen) target(t *typ) (*typ, error) {
	if t.kind != kRef {
		return t, nil
	}
	if t.ref == "" { // instance
		for _, it := range g.inst {
			if it.goName == t.goName {
				return it, nil
			}
		}
		return nil, fmt.Errorf("no instance %s", t.goName)
	}
	a, err := g.lookup(t.module, t.ref)
	if err != nil {
		return nil, err
	}
	return a.t, nil
}

// base follows references to the underlying non-reference type.
func (g *gen) base(t *typ) (*typ, error) {
	for i := 0; t.kind == kRef; i++ {
		if i > 50 {
			return nil, fmt.Errorf("reference loop at %s", t.ref)
		}
		n, err := g.target(t)
		if err != nil {
			return nil, err
		}
		if n == nil {
			return nil, fmt.Errorf("unresolved %s", t.goName)
		}
		t = n
	}
	return t, nil
}

// hasPERConstraint reports whether a reference adds PER-visible
// constraints of its own.
func hasPERConstraint(t *typ) bool {
	return t.hasLB || t.hasUB || t.valExt || t.hasSize || t.sizeExt || t.from != ""
}

// effective returns the type to encode inline for t: a primitive with the
// merged constraints when t is a constrained reference to a primitive,
// else t itself.
func (g *gen) effective(t *typ) (*typ, error) {
	if t.kind != kRef || !hasPERConstraint(t) {
		return t, nil
	}
	b, err := g.base(t)
	if err != nil {
		return nil, err
	}
	if b.kind == kSeq || b.kind == kChoice {
		return t, nil
	}
	m := *b
	if t.hasLB || t.hasUB {
		m.hasLB, m.lb, m.hasUB, m.ub = t.hasLB, t.lb, t.hasUB, t.ub
	}
	if t.valExt {
		m.valExt = true
	}
	if t.hasSize {
		m.hasSize, m.sizeLB, m.sizeUB = true, t.sizeLB, t.sizeUB
	}
	if t.sizeExt {
		m.sizeExt = true
	}
	if t.from != "" {
		m.from = t.from
	}
	return &m, nil
}
