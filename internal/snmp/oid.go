package snmp

import (
	"slices"
	"strconv"
	"strings"

	"github.com/gosnmp/gosnmp"
)

// oid is an object identifier as its sub-identifiers.
type oid []uint32

func (o oid) String() string {
	var b strings.Builder
	for _, n := range o {
		b.WriteByte('.')
		b.WriteString(strconv.FormatUint(uint64(n), 10))
	}
	return b.String()
}

// child is o with sub-identifiers appended, in a new slice.
func (o oid) child(n ...uint32) oid {
	return append(slices.Clip(o), n...)
}

func (o oid) hasPrefix(p oid) bool {
	return len(o) >= len(p) && slices.Equal(o[:len(p)], p)
}

// Object identifiers the agent serves or sends.
var (
	oidMIB2      = oid{1, 3, 6, 1, 2, 1}
	oidSystem    = oidMIB2.child(1)
	oidIfNumber  = oidMIB2.child(2, 1, 0)
	oidIfEntry   = oidMIB2.child(2, 2, 1)
	oidIfXEntry  = oidMIB2.child(31, 1, 1, 1)
	oidSysUpTime = oidSystem.child(3, 0)
	// snmpTrapOID.0 (SNMPv2-MIB).
	oidTrapOID = oid{1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0}
	// snmpEngine (SNMP-FRAMEWORK-MIB, RFC 3411 §5).
	oidEngine = oid{1, 3, 6, 1, 6, 3, 10, 2, 1}
	// usmStats (SNMP-USER-BASED-SM-MIB, RFC 3414 §5).
	oidUsmStats = oid{1, 3, 6, 1, 6, 3, 15, 1, 1}

	// Enterprise is the private enterprise number the Portico MIB sits
	// under. 99999 is a placeholder until IANA assigns Portico its own
	// number (mibs/PORTICO-MIB.txt says the same).
	Enterprise       uint32 = 99999
	oidPortico              = oid{1, 3, 6, 1, 4, 1, Enterprise}
	oidObjects              = oidPortico.child(1)
	oidNotifications        = oidPortico.child(2, 0)
)

// usmStats columns (RFC 3414 §5).
const (
	usmUnsupportedSecLevels = 1
	usmNotInTimeWindows     = 2
	usmUnknownUserNames     = 3
	usmUnknownEngineIDs     = 4
	usmWrongDigests         = 5
	usmDecryptionErrors     = 6
)

// entry is one instance the agent serves.
type entry struct {
	oid oid
	typ gosnmp.Asn1BER
	val any
}

func (e entry) pdu() gosnmp.SnmpPDU {
	return gosnmp.SnmpPDU{Name: e.oid.String(), Type: e.typ, Value: e.val}
}

// view is every instance at one moment, sorted by object identifier.
type view []entry

func (v view) sort() {
	slices.SortFunc(v, func(a, b entry) int { return slices.Compare(a.oid, b.oid) })
}

// get returns the instance o, or the exception RFC 3416 §4.2.1 gives.
func (v view) get(o oid) gosnmp.SnmpPDU {
	i, found := slices.BinarySearchFunc(v, o, func(e entry, t oid) int { return slices.Compare(e.oid, t) })
	if found {
		return v[i].pdu()
	}
	exc := gosnmp.NoSuchObject
	// An instance of a known object that is not there is noSuchInstance.
	if len(o) > 1 {
		parent := o[:len(o)-1]
		j, _ := slices.BinarySearchFunc(v, parent, func(e entry, t oid) int { return slices.Compare(e.oid, t) })
		if j < len(v) && v[j].oid.hasPrefix(parent) && len(v[j].oid) == len(o) {
			exc = gosnmp.NoSuchInstance
		}
	}
	return gosnmp.SnmpPDU{Name: o.String(), Type: exc}
}

// next returns the first instance after o, or endOfMibView.
func (v view) next(o oid) (gosnmp.SnmpPDU, oid) {
	i, found := slices.BinarySearchFunc(v, o, func(e entry, t oid) int { return slices.Compare(e.oid, t) })
	if found {
		i++
	}
	if i >= len(v) {
		return gosnmp.SnmpPDU{Name: o.String(), Type: gosnmp.EndOfMibView}, o
	}
	return v[i].pdu(), v[i].oid
}
