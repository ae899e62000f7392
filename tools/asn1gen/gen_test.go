package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

func refDir(t *testing.T) string {
	ref := filepath.Join("..", "..", "..", "shared", "ref", "asn1")
	if dir := os.Getenv("PORTICO_REF_DIR"); dir != "" {
		ref = filepath.Join(dir, "asn1")
	}
	if _, err := os.Stat(filepath.Join(ref, moduleFiles[0])); err != nil {
		t.Skipf("ITU-T ASN.1 modules not found at %s (../shared/ref/asn1 beside the repository): %v", ref, err)
	}
	return ref
}

// TestGeneratedCurrent regenerates the h225 and h245 packages and requires
// the committed files to match exactly.
func TestGeneratedCurrent(t *testing.T) {
	files, err := generate(refDir(t))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join("..", "..", "internal", "h323")
	var names []string
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./internal/h323/h225)", name, err)
			continue
		}
		if !bytes.Equal(got, files[name]) {
			t.Errorf("%s is stale: run go generate ./internal/h323/h225", name)
		}
	}
	for _, pkg := range []string{"h225", "h245"} {
		m, _ := filepath.Glob(filepath.Join(out, pkg, "types*.go"))
		for _, f := range m {
			rel, _ := filepath.Rel(out, f)
			if _, ok := files[filepath.ToSlash(rel)]; !ok {
				t.Errorf("%s is not produced by the generator any more", rel)
			}
		}
	}
}

func TestParseConstructs(t *testing.T) {
	src := `M DEFINITIONS AUTOMATIC TAGS ::= BEGIN
IMPORTS X FROM Other;
A ::= SEQUENCE {
  a INTEGER (0..255), -- comment -- b IA5String (SIZE (1..128))(FROM ("0123456789#*,")) OPTIONAL,
  c SEQUENCE SIZE (1..10) OF BOOLEAN,
  ...,
  d CHOICE { x NULL, y BMPString (SIZE (1..256)), ... } OPTIONAL,
  e INTEGER (0..16383, ...)
}
P{T} ::= SEQUENCE { t T, s BIT STRING }
E ::= ENUMERATED { b(1), a(0), ... , c(5) }
O ::= TYPE-IDENTIFIER.&Type (A)
S ::= IA5String (SIZE (1) ^ FROM ("0123456789#*ABCD!"))
END`
	m, err := parseModule(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.assigns) != 5 || m.imports["X"] != "Other" {
		t.Fatalf("assignments %d, imports %v", len(m.assigns), m.imports)
	}
	a := m.assigns[0].t
	if a.kind != kSeq || !a.ext || len(a.fields) != 5 {
		t.Fatalf("A: kind %d ext %v fields %d", a.kind, a.ext, len(a.fields))
	}
	b := a.fields[1]
	if !b.optional || b.t.from != "0123456789#*," || b.t.sizeLB != 1 || b.t.sizeUB != 128 {
		t.Fatalf("b: %+v", b.t)
	}
	if c := a.fields[2].t; c.kind != kSeqOf || c.sizeUB != 10 || c.elem.kind != kBool {
		t.Fatalf("c: %+v", c)
	}
	if d := a.fields[3]; !d.ext || d.t.kind != kChoice || !d.t.ext {
		t.Fatalf("d: %+v", d)
	}
	if e := a.fields[4].t; !e.valExt || e.ub != 16383 {
		t.Fatalf("e: %+v", e)
	}
	if p := m.assigns[1]; len(p.params) != 1 || p.params[0] != "T" {
		t.Fatalf("P params %v", p.params)
	}
	if e := m.assigns[2].t; len(e.items) != 2 || e.items[0] != "a" || !e.ext || e.nExtEn != 1 {
		t.Fatalf("E: %+v", e)
	}
	if o := m.assigns[3].t; o.kind != kOpen {
		t.Fatalf("O kind %d", o.kind)
	}
	if s := m.assigns[4].t; s.sizeLB != 1 || s.sizeUB != 1 || s.from != "0123456789#*ABCD!" {
		t.Fatalf("S: %+v", s)
	}
}
