package config

import (
	"reflect"
	"strings"
)

// Changed lists the top-level sections (by YAML name) that differ between
// old and new, so a reload restarts only what changed.
func Changed(old, new *Config) []string {
	var out []string
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(new).Elem()
	t := ov.Type()
	for i := 0; i < t.NumField(); i++ {
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			out = append(out, name)
		}
	}
	return out
}
