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
