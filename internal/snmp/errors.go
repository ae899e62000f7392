package snmp

import "errors"

var (
	// errBadVersion: an SNMP version or security model the agent does not
	// speak (SNMPv1 among them).
	errBadVersion = errors.New("snmp: unsupported version")
	// errUnsupportedPDU: a PDU an agent does not take (a response, a trap).
	errUnsupportedPDU = errors.New("snmp: unsupported pdu")
)
