package config

import (
	"bytes"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Changed lists the top-level sections (by YAML name) that differ between
// old and new, so a reload restarts only what changed.
func Changed(old, new *Config) []string {
	var out []string
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(new).Elem()
	t := ov.Type()
	for i := 0; i < t.NumField(); i++ {
		a, errA := yaml.Marshal(ov.Field(i).Interface())
		b, errB := yaml.Marshal(nv.Field(i).Interface())
		// Compared as YAML so an absent list and an empty one are the same.
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			out = append(out, name)
		}
	}
	return out
}

// Diff lists the fields (by path, as in validation errors) that differ
// between old and new. Lists are compared whole and named once
// ("turn.udp"); an absent list equals an empty one.
func Diff(old, new *Config) []string {
	var out []string
	diffValue(reflect.ValueOf(*old), reflect.ValueOf(*new), "", &out)
	return out
}

func diffValue(a, b reflect.Value, path string, out *[]string) {
	if a.Kind() == reflect.Pointer {
		switch {
		case a.IsNil() && b.IsNil():
			return
		case a.IsNil() || b.IsNil():
			*out = append(*out, path)
			return
		}
		a, b = a.Elem(), b.Elem()
	}
	switch a.Kind() {
	case reflect.Struct:
		if a.Type().Implements(textMarshaler) {
			break
		}
		t := a.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			p := path
			if !strings.Contains(opts, "inline") {
				if name == "" || name == "-" {
					continue
				}
				p = join(path, name)
			}
			diffValue(a.Field(i), b.Field(i), p, out)
		}
		return
	case reflect.Slice, reflect.Map:
		if a.Len() == 0 && b.Len() == 0 {
			return
		}
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, path)
	}
}

var textMarshaler = reflect.TypeOf((*interface{ MarshalText() ([]byte, error) })(nil)).Elem()
