package snmp

import (
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gosnmp/gosnmp"
)

// The PORTICO-MIB objects (mibs/PORTICO-MIB.txt), under oidObjects.
var (
	oidNode         = oidObjects.child(1)
	oidServiceEntry = oidObjects.child(2, 1)
	oidProtoEntry   = oidObjects.child(3, 1)
	oidRelay        = oidObjects.child(4)
	oidCertEntry    = oidObjects.child(5, 1)
	oidEvent        = oidObjects.child(6)
)

// system is what the system group says besides the snapshot.
type system struct {
	descr, contact, location string
	started                  time.Time // the agent's start: sysUpTime
}

// engine is the snmpEngine group (RFC 3411 §5) and the usmStats counters
// (RFC 3414 §5).
type engine struct {
	id          []byte
	boots, time uint32
	usm         [usmDecryptionErrors + 1]uint64 // by usmStats column
}

// iface is one row of ifTable/ifXTable.
type iface struct {
	index                              int
	name                               string
	mtu                                int
	hw                                 net.HardwareAddr
	up, running, loopback              bool
	speedMbps                          uint64
	inOctets, inPkts, inErrs, inDrops  uint64
	outOctets, outPkts, outErr, outDrp uint64
}

// interfaces reads the OS interfaces and, on Linux, their counters.
func interfaces() []iface {
	list, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := make([]iface, 0, len(list))
	for _, i := range list {
		f := iface{index: i.Index, name: i.Name, mtu: i.MTU, hw: i.HardwareAddr,
			up: i.Flags&net.FlagUp != 0, running: i.Flags&net.FlagRunning != 0, loopback: i.Flags&net.FlagLoopback != 0}
		dir := filepath.Join("/sys/class/net", i.Name)
		f.speedMbps = sysUint(dir, "speed")
		st := filepath.Join(dir, "statistics")
		f.inOctets, f.inPkts, f.inErrs, f.inDrops = sysUint(st, "rx_bytes"), sysUint(st, "rx_packets"), sysUint(st, "rx_errors"), sysUint(st, "rx_dropped")
		f.outOctets, f.outPkts, f.outErr, f.outDrp = sysUint(st, "tx_bytes"), sysUint(st, "tx_packets"), sysUint(st, "tx_errors"), sysUint(st, "tx_dropped")
		out = append(out, f)
	}
	return out
}

// sysUint reads a number from a sysfs file; 0 when it is absent or not a
// number (a virtual interface has no speed).
func sysUint(dir, name string) uint64 {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// ticks is d in hundredths of a second, as TimeTicks.
func ticks(d time.Duration) uint32 { return uint32(d / (10 * time.Millisecond)) }

func truth(b bool) int {
	if b {
		return 1
	}
	return 2
}

func c32(v uint64) uint32 { return uint32(v) }

func g32(v uint64) uint32 { return uint32(min(v, math.MaxUint32)) }

// build makes the view of one moment: MIB-II system, interfaces and ifX
// groups, and the Portico MIB.
func build(sys system, eng engine, s Snapshot, ifs []iface, now time.Time) view {
	var v view
	add := func(o oid, t gosnmp.Asn1BER, val any) { v = append(v, entry{o, t, val}) }
	str := func(o oid, s string) { add(o, gosnmp.OctetString, s) }

	add(oidEngine.child(1, 0), gosnmp.OctetString, eng.id)
	add(oidEngine.child(2, 0), gosnmp.Integer, int(eng.boots))
	add(oidEngine.child(3, 0), gosnmp.Integer, int(eng.time))
	add(oidEngine.child(4, 0), gosnmp.Integer, maxResponse)
	for c := uint32(usmUnsupportedSecLevels); c <= usmDecryptionErrors; c++ {
		add(oidUsmStats.child(c, 0), gosnmp.Counter32, c32(eng.usm[c]))
	}

	str(oidSystem.child(1, 0), sys.descr)
	add(oidSystem.child(2, 0), gosnmp.ObjectIdentifier, oidPortico.String())
	add(oidSysUpTime, gosnmp.TimeTicks, ticks(now.Sub(sys.started)))
	str(oidSystem.child(4, 0), sys.contact)
	str(oidSystem.child(5, 0), s.Node)
	str(oidSystem.child(6, 0), sys.location)
	add(oidSystem.child(7, 0), gosnmp.Integer, 72) // applications and end-to-end (RFC 3418)

	add(oidIfNumber, gosnmp.Integer, len(ifs))
	for _, f := range ifs {
		i := uint32(f.index)
		col := func(c uint32) oid { return oidIfEntry.child(c, i) }
		xcol := func(c uint32) oid { return oidIfXEntry.child(c, i) }
		typ := 6 // ethernetCsmacd
		if f.loopback {
			typ = 24 // softwareLoopback
		}
		oper := 2
		if f.up && f.running {
			oper = 1
		}
		add(col(1), gosnmp.Integer, f.index)
		str(col(2), f.name)
		add(col(3), gosnmp.Integer, typ)
		add(col(4), gosnmp.Integer, f.mtu)
		add(col(5), gosnmp.Gauge32, g32(f.speedMbps*1000000))
		add(col(6), gosnmp.OctetString, []byte(f.hw))
		add(col(7), gosnmp.Integer, truth(f.up))
		add(col(8), gosnmp.Integer, oper)
		add(col(9), gosnmp.TimeTicks, uint32(0))
		add(col(10), gosnmp.Counter32, c32(f.inOctets))
		add(col(11), gosnmp.Counter32, c32(f.inPkts))
		add(col(13), gosnmp.Counter32, c32(f.inDrops))
		add(col(14), gosnmp.Counter32, c32(f.inErrs))
		add(col(16), gosnmp.Counter32, c32(f.outOctets))
		add(col(17), gosnmp.Counter32, c32(f.outPkts))
		add(col(19), gosnmp.Counter32, c32(f.outDrp))
		add(col(20), gosnmp.Counter32, c32(f.outErr))
		str(xcol(1), f.name)
		add(xcol(6), gosnmp.Counter64, f.inOctets)
		add(xcol(7), gosnmp.Counter64, f.inPkts)
		add(xcol(10), gosnmp.Counter64, f.outOctets)
		add(xcol(11), gosnmp.Counter64, f.outPkts)
		add(xcol(15), gosnmp.Gauge32, g32(f.speedMbps))
		str(xcol(18), "")
	}

	str(oidNode.child(1, 0), s.Node)
	str(oidNode.child(2, 0), s.Version)
	add(oidNode.child(3, 0), gosnmp.TimeTicks, ticks(now.Sub(s.Started)))
	add(oidNode.child(4, 0), gosnmp.Integer, truth(s.Ready))
	add(oidNode.child(5, 0), gosnmp.Integer, truth(s.StoreUp))
	add(oidNode.child(6, 0), gosnmp.Gauge32, g32(uint64(max(s.ConfigVersion, 0))))
	str(oidNode.child(7, 0), s.Tunnel)
	str(oidNode.child(8, 0), s.HA)
	add(oidNode.child(9, 0), gosnmp.Gauge32, g32(s.TURNAllocations))
	for n, sv := range s.Services {
		i := uint32(n + 1)
		str(oidServiceEntry.child(2, i), sv.Name)
		add(oidServiceEntry.child(3, i), gosnmp.Integer, truth(sv.Up))
		str(oidServiceEntry.child(4, i), sv.Error)
	}
	for n, p := range s.Protocols {
		i := uint32(n + 1)
		str(oidProtoEntry.child(2, i), p.Name)
		add(oidProtoEntry.child(3, i), gosnmp.Gauge32, g32(p.Registrations))
		add(oidProtoEntry.child(4, i), gosnmp.Gauge32, g32(p.ActiveCalls))
		add(oidProtoEntry.child(5, i), gosnmp.Counter64, p.CallsTotal)
	}
	add(oidRelay.child(1, 0), gosnmp.Gauge32, g32(s.Relay.Sessions))
	add(oidRelay.child(2, 0), gosnmp.Counter64, s.Relay.Packets)
	add(oidRelay.child(3, 0), gosnmp.Counter64, s.Relay.Bytes)
	add(oidRelay.child(4, 0), gosnmp.Counter64, s.Relay.PacketsLost)
	for n, c := range s.Certificates {
		i := uint32(n + 1)
		str(oidCertEntry.child(2, i), c.Name)
		add(oidCertEntry.child(3, i), gosnmp.Integer, daysLeft(c.NotAfter, now))
		str(oidCertEntry.child(4, i), c.NotAfter.UTC().Format(time.RFC3339))
	}
	v.sort()
	return v
}

// daysLeft is how many whole days remain before t (negative once past).
func daysLeft(t, now time.Time) int {
	d := t.Sub(now).Hours() / 24
	return int(math.Floor(d))
}
