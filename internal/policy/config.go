package policy

// Config is the policy section of the configuration document.
type Config struct {
	// Rules are the call policy, first match wins; the sip section's guest
	// policy is appended as rules (GuestRules). Default none.
	Rules []Rule `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// Validate checks c; errors name field paths (policy.rules[1].action).
func (c Config) Validate() error {
	var errs ConfigError
	if _, err := Compile("policy.rules", c.Rules); err != nil {
		errs = append(errs, err.(ConfigError)...)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
