// Package asn1per implements the ALIGNED variant of the ASN.1 Packed
// Encoding Rules, ITU-T X.691 (02/2021): constrained, semi-constrained and
// unconstrained whole numbers (§11.5-11.8), normally small numbers (§11.6),
// length determinants with fragmentation (§11.9), BOOLEAN, NULL,
// ENUMERATED, BIT STRING, OCTET STRING, OBJECT IDENTIFIER, open types,
// the SEQUENCE preamble and extension additions (§19), CHOICE indexes
// (§23) and known-multiplier restricted character strings (§30).
//
// It is the runtime for the H.225.0 and H.245 types that tools/asn1gen
// generates into internal/h323. Encoder appends to a byte slice; Decoder
// reads a byte slice, checks every length against the remaining input,
// bounds nesting, and never panics. Decode errors carry the ASN.1 field
// path (see FieldError).
package asn1per
