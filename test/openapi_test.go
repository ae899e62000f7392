package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// openAPIChecker validates real responses against the served OpenAPI document.
type openAPIChecker struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	paths    []pathRE
	checked  map[string]bool
}

type pathRE struct {
	template string
	re       *regexp.Regexp
}

func newOpenAPIChecker(t *testing.T, raw []byte) *openAPIChecker {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc["openapi"] == nil || !strings.HasPrefix(doc["openapi"].(string), "3.") {
		t.Fatalf("openapi.json is not an OpenAPI 3 document")
	}
	res, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("file:///openapi.json", res); err != nil {
		t.Fatal(err)
	}
	oc := &openAPIChecker{doc: doc, compiler: c, checked: map[string]bool{}}
	for p := range doc["paths"].(map[string]any) {
		re := "^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(p), `[^/]+`) + "$"
		oc.paths = append(oc.paths, pathRE{p, regexp.MustCompile(re)})
	}
	return oc
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// check fails the test when validate refuses a response.
func (oc *openAPIChecker) check(t *testing.T, method, path string, code int, body []byte) {
	t.Helper()
	if err := oc.validate(method, path, code, body); err != nil {
		t.Error(err)
	}
}

// validate checks one response: the path, method and status must be
// documented and the body must match the documented schema.
func (oc *openAPIChecker) validate(method, path string, code int, body []byte) error {
	path, _, _ = strings.Cut(path, "?")
	var tmpl string
	for _, p := range oc.paths {
		if p.re.MatchString(path) {
			tmpl = p.template
		}
	}
	if tmpl == "" {
		return fmt.Errorf("openapi: %s %s is not documented", method, path)
	}
	op, ok := oc.doc["paths"].(map[string]any)[tmpl].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if !ok {
		return fmt.Errorf("openapi: %s %s has no operation", method, tmpl)
	}
	resp, ok := op["responses"].(map[string]any)[strconv.Itoa(code)].(map[string]any)
	if !ok {
		return fmt.Errorf("openapi: %s %s answered %d, which is not documented: %s", method, tmpl, code, body)
	}
	content, _ := resp["content"].(map[string]any)
	if content == nil {
		if len(bytes.TrimSpace(body)) != 0 {
			return fmt.Errorf("openapi: %s %s %d documents no body but got %q", method, tmpl, code, body)
		}
		return nil
	}
	if _, ok := content["application/json"]; !ok {
		return nil // binary or text; not JSON-validated
	}
	loc := fmt.Sprintf("file:///openapi.json#/paths/%s/%s/responses/%d/content/application~1json/schema", pointerEscape(tmpl), strings.ToLower(method), code)
	sch, err := oc.compiler.Compile(loc)
	if err != nil {
		return fmt.Errorf("openapi: compile %s: %v", loc, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("openapi: %s %s %d: body is not JSON: %q", method, tmpl, code, body)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("openapi: %s %s %d: response does not match the document: %v\nbody: %s", method, tmpl, code, err, body)
	}
	oc.checked[method+" "+tmpl+" "+strconv.Itoa(code)] = true
	return nil
}

func (oc *openAPIChecker) summary() []string {
	var s []string
	for k := range oc.checked {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// TestOpenAPICheckerCatchesMismatch proves the checker can fail.
func TestOpenAPICheckerCatchesMismatch(t *testing.T) {
	raw, err := os.ReadFile("../internal/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	oc := newOpenAPIChecker(t, raw)
	if err := oc.validate("GET", "/healthz", 200, []byte(`{"status":"alive"}`)); err != nil {
		t.Fatalf("a valid response was refused: %v", err)
	}
	for _, bad := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, `{"state":1}`},
		{"GET", "/api/v1/users", 200, `[{"name":"a"}]`},
		{"GET", "/api/v1/nowhere", 200, `{}`},
		{"GET", "/api/v1/status", 418, `{}`},
	} {
		if oc.validate(bad.method, bad.path, bad.code, []byte(bad.body)) == nil {
			t.Errorf("checker accepted %s %s %d %s", bad.method, bad.path, bad.code, bad.body)
		}
	}
}
