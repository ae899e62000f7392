package sipedge

import "strings"

// guestPolicy decides where guests may call (the seed of internal/policy).
type guestPolicy struct {
	enabled  bool
	ranges   [][2]string
	aliases  map[string]bool
	fallback string
}

func newGuestPolicy(g GuestPolicy) *guestPolicy {
	p := &guestPolicy{enabled: g.Enabled, aliases: map[string]bool{}, fallback: g.DefaultDestination}
	for _, r := range g.VMRRanges {
		lo, hi, err := parseRange(r)
		if err == nil {
			p.ranges = append(p.ranges, [2]string{lo, hi})
		}
	}
	for _, a := range g.Aliases {
		p.aliases[strings.ToLower(a)] = true
	}
	return p
}

// destination returns the user part a guest's call goes to, and whether the
// call is allowed at all. A dialled destination that is not allowed is
// replaced by the default destination when one is configured.
func (p *guestPolicy) destination(user string) (string, bool) {
	if !p.enabled {
		return "", false
	}
	if p.allowed(user) {
		return user, true
	}
	if p.fallback != "" {
		return p.fallback, true
	}
	return "", false
}

func (p *guestPolicy) allowed(user string) bool {
	if user == "" {
		return false
	}
	if p.aliases[strings.ToLower(user)] {
		return true
	}
	if !digits(user) {
		return false
	}
	for _, r := range p.ranges {
		if len(user) == len(r[0]) && user >= r[0] && user <= r[1] {
			return true
		}
	}
	return false
}
