package snmp

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/gosnmp/gosnmp"
)

// Kind is a notification of the PORTICO-MIB (porticoNotifications).
type Kind uint32

// The notifications, numbered as in mibs/PORTICO-MIB.txt.
const (
	ServiceDown Kind = iota + 1
	ServiceUp
	HATransition
	CapacityReached
	CertificateExpiring
	StoreLost
	StoreRegained
	LoginLockout
)

var kindNames = map[Kind]string{ServiceDown: "serviceDown", ServiceUp: "serviceUp", HATransition: "haTransition",
	CapacityReached: "capacityReached", CertificateExpiring: "certificateExpiring", StoreLost: "storeLost",
	StoreRegained: "storeRegained", LoginLockout: "loginLockout"}

func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "kind" + strconv.Itoa(int(k))
}

// Notification is one event for the receivers: porticoEventComponent and
// porticoEventMessage go with it.
type Notification struct {
	Kind      Kind
	Component string
	Message   string
}

// queueLen bounds the notifications waiting to be sent; past it they are
// dropped and counted.
const queueLen = 256

// watchEvery is how often the node's state is compared with the last look
// for the notifications that come from state (services, store, HA,
// capacity, certificates).
const watchEvery = 5 * time.Second

// notifier sends notifications to every receiver, one at a time, from the
// goroutine Run starts; Notify only queues.
type notifier struct {
	a     *Agent
	log   *slog.Logger
	queue chan Notification
	every time.Duration // watchEvery; tests shorten it

	// state of the last look (watch), owned by run.
	services   map[string]bool
	storeUp    *bool
	ha         string
	capacity   map[string]uint64
	certWarned map[string]time.Time
}

func newNotifier(a *Agent, log *slog.Logger) *notifier {
	return &notifier{a: a, log: log, queue: make(chan Notification, queueLen), every: watchEvery, services: map[string]bool{},
		capacity: map[string]uint64{}, certWarned: map[string]time.Time{}}
}

// Notify queues n for every receiver; it never blocks.
func (a *Agent) Notify(n Notification) {
	if len(a.set.Load().sec.Traps) == 0 {
		return
	}
	select {
	case a.notes.queue <- n:
	default:
		a.stats.dropped.Add(1)
	}
}

func (nt *notifier) run(ctx context.Context) {
	t := time.NewTicker(nt.every)
	defer t.Stop()
	nt.watch(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-nt.queue:
			st := nt.a.set.Load()
			for _, r := range st.sec.Traps {
				nt.send(ctx, st, r, n)
			}
		case now := <-t.C:
			nt.watch(now)
		}
	}
}

// watch turns changes of the node's state since the last look into
// notifications. The first look only records the state, except for
// certificates, which are checked at once.
func (nt *notifier) watch(now time.Time) {
	s := nt.a.prov.Snapshot()
	first := nt.storeUp == nil
	for _, sv := range s.Services {
		was, seen := nt.services[sv.Name]
		nt.services[sv.Name] = sv.Up
		switch {
		case !seen && !first && !sv.Up, seen && was && !sv.Up:
			nt.a.Notify(Notification{ServiceDown, sv.Name, sv.Name + " down: " + sv.Error})
		case seen && !was && sv.Up:
			nt.a.Notify(Notification{ServiceUp, sv.Name, sv.Name + " up"})
		}
	}
	if !first && *nt.storeUp != s.StoreUp {
		if s.StoreUp {
			nt.a.Notify(Notification{StoreRegained, "store", "store reachable again"})
		} else {
			nt.a.Notify(Notification{StoreLost, "store", "store unreachable"})
		}
	}
	up := s.StoreUp
	nt.storeUp = &up
	if !first && s.HA != nt.ha {
		nt.a.Notify(Notification{HATransition, "ha", "ha " + nt.ha + " -> " + s.HA})
	}
	nt.ha = s.HA
	for name, v := range s.CapacityRefused {
		if prev, ok := nt.capacity[name]; ok && v > prev {
			nt.a.Notify(Notification{CapacityReached, name, name + ": " + strconv.FormatUint(v-prev, 10) + " refused at capacity"})
		}
		nt.capacity[name] = v
	}
	warn := time.Duration(nt.a.set.Load().sec.CertificateWarnDays) * 24 * time.Hour
	for _, c := range s.Certificates {
		if c.NotAfter.Sub(now) > warn || now.Sub(nt.certWarned[c.Name]) < 24*time.Hour {
			continue
		}
		nt.certWarned[c.Name] = now
		nt.a.Notify(Notification{CertificateExpiring, "certs", "certificate " + c.Name + " expires in " +
			strconv.Itoa(daysLeft(c.NotAfter, now)) + " days (" + c.NotAfter.UTC().Format(time.RFC3339) + ")"})
	}
}

// send delivers n to r: a v2c or v3 trap, or an inform retried twice.
// A v3 trap is sent by this engine as the authoritative one (RFC 3414
// §1.5.1): the receiver must know the agent's engine ID for the user.
func (nt *notifier) send(ctx context.Context, st *settings, r Receiver, n Notification) {
	host, port, err := net.SplitHostPort(r.Address)
	if err != nil {
		nt.a.stats.failed.Add(1)
		return
	}
	p, _ := strconv.Atoi(port)
	g := &gosnmp.GoSNMP{Target: host, Port: uint16(p), Transport: "udp", Timeout: 2 * time.Second, Context: ctx, MaxOids: gosnmp.MaxOids}
	if r.Inform {
		g.Retries = 2
	}
	switch r.version() {
	case "v2c":
		g.Version, g.Community = gosnmp.Version2c, r.Community
	case "v3":
		u := st.users[r.User]
		if u == nil {
			nt.a.stats.failed.Add(1)
			return
		}
		sp := &gosnmp.UsmSecurityParameters{UserName: u.name,
			AuthenticationProtocol: u.auth, AuthenticationPassphrase: u.authPass, PrivacyProtocol: gosnmp.NoPriv}
		if !r.Inform {
			// A trap's authoritative engine is this one; an inform's is the
			// receiver's, which gosnmp discovers first (RFC 3414 §4).
			sp.AuthoritativeEngineID = string(nt.a.engineID)
			sp.AuthoritativeEngineBoots, sp.AuthoritativeEngineTime = nt.a.boots.Load(), nt.a.engineTime()
			g.ContextEngineID = string(nt.a.engineID)
		}
		g.MsgFlags = gosnmp.AuthNoPriv
		if u.priv == gosnmp.AES {
			sp.PrivacyProtocol, sp.PrivacyPassphrase = gosnmp.AES, u.privPass
			g.MsgFlags = gosnmp.AuthPriv
		}
		g.Version, g.SecurityModel, g.SecurityParameters = gosnmp.Version3, gosnmp.UserSecurityModel, sp
	}
	if err := g.Connect(); err != nil {
		nt.a.stats.failed.Add(1)
		nt.log.Warn("snmp notification not sent", "receiver", r.Address, "notification", n.Kind.String(), "err", err)
		return
	}
	defer g.Conn.Close()
	trap := gosnmp.SnmpTrap{IsInform: r.Inform, Variables: []gosnmp.SnmpPDU{
		{Name: oidSysUpTime.String(), Type: gosnmp.TimeTicks, Value: ticks(time.Since(nt.a.engineT0))},
		{Name: oidTrapOID.String(), Type: gosnmp.ObjectIdentifier, Value: oidNotifications.child(uint32(n.Kind)).String()},
		{Name: oidEvent.child(1, 0).String(), Type: gosnmp.OctetString, Value: n.Component},
		{Name: oidEvent.child(2, 0).String(), Type: gosnmp.OctetString, Value: n.Message},
		{Name: oidEvent.child(3, 0).String(), Type: gosnmp.OctetString, Value: nt.a.env.Node},
	}}
	if _, err := g.SendTrap(trap); err != nil {
		nt.a.stats.failed.Add(1)
		nt.log.Warn("snmp notification not sent", "receiver", r.Address, "notification", n.Kind.String(), "err", err)
		return
	}
	nt.a.stats.sent.Add(1)
}
