package policy

// Config is the policy section of the configuration document.
type Config struct {
	// Rules are the call policy, first match wins; the sip section's guest
	// policy is appended as rules (GuestRules). Default none.
	Rules []Rule `yaml:"rules,omitempty" json:"rules,omitempty"`
	// ACL are the access control lists per service, checked before a
	// packet is parsed or a connection read.
	ACL ACLs `yaml:"acl" json:"acl"`
}

// Validate checks c; errors name field paths (policy.rules[1].action).
func (c Config) Validate() error {
	var errs ConfigError
	if _, err := Compile("policy.rules", c.Rules); err != nil {
		errs = append(errs, err.(ConfigError)...)
	}
	for _, a := range []struct {
		name string
		c    ACLConfig
	}{{"sip", c.ACL.SIP}, {"h323", c.ACL.H323}, {"turn", c.ACL.TURN}, {"management", c.ACL.Management}} {
		if _, err := NewACL("policy.acl."+a.name, a.c); err != nil {
			errs = append(errs, err.(ConfigError)...)
		}
	}
	if _, err := Listeners("policy.acl.listeners", c.ACL.Listeners); err != nil {
		errs = append(errs, err.(ConfigError)...)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
