// Package snmp is Portico's SNMP agent: read-only Get, GetNext and GetBulk
// (RFC 3416) over SNMPv2c (RFC 1901), each community answered only from
// its networks, and over SNMPv3 with the User-based Security Model (RFC
// 3412, RFC 3414): HMAC-SHA-2 authentication (RFC 7860,
// usmHMAC192SHA256AuthProtocol by default; HMAC-96-SHA only when allowed)
// and AES-128 privacy (RFC 3826). The engine ID is derived from the node
// name, and snmpEngineBoots is kept in the data directory, so managers'
// time windows survive restarts.
//
// The agent serves MIB-II's system group (RFC 3418), the interfaces group
// and ifXTable (RFC 2863) from the OS interfaces, and the PORTICO-MIB
// (mibs/PORTICO-MIB.txt): node and service health, registrations and calls
// by protocol, relay counters, TURN allocations, tunnel and HA state and
// certificate expiry. Its values come from a Provider the node implements,
// so the agent depends on no service. Notifications (SNMPv2-Trap or
// InformRequest, v2c or v3) go to the configured receivers for service
// down/up, HA transitions, capacity reached, certificates expiring, store
// lost/regained and login lockouts.
//
// Requests are decoded by this package (ber.go: lenient about the length
// forms real managers write, strict about every length and cap); responses
// and notifications are encoded by github.com/gosnmp/gosnmp. Bad messages,
// wrong communities and failed USM checks are counted by reason and
// dropped, or answered with the Report RFC 3414 §3.2 calls for; each
// source is held to a request rate.
package snmp
