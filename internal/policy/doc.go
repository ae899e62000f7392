// Package policy decides who may reach what: call policy rules (an ordered
// list over caller and callee with allow, deny, rewrite and route actions,
// with a dry run), the guest and VMR rules they replace, access control
// lists per service and listener, and per-source rate limits.
//
// Rules are compiled once per configuration (Compile) and evaluated per
// call without locks or allocation beyond the decision. The first rule
// whose every condition holds decides; a call no rule matches is allowed
// (registered and federated callers keep the checks their service makes).
//
// Destination patterns (Match.Destinations) are:
//
//	1000-1999      a numeric range: digit strings of the same length
//	sales          an alias, compared without case
//	+44*  9??      a glob: * any run of characters, ? one character
//	re:^\+1(\d+)$  an RE2 regular expression; a rewrite may use $1...
package policy
