package sipedge

import (
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// benchRegister is a REGISTER as sipp and most endpoints send it, parsed.
func benchRegister(b *testing.B) *sip.Request {
	b.Helper()
	msg := []byte("REGISTER sip:portico.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n" +
		"Max-Forwards: 70\r\nTo: <sip:alice@portico.test>\r\nFrom: <sip:alice@portico.test>;tag=1928301774\r\n" +
		"Call-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 314159 REGISTER\r\nContact: <sip:alice@192.0.2.10:5060>\r\n" +
		"Expires: 600\r\nUser-Agent: Linphone/5.1\r\nContent-Length: 0\r\n\r\n")
	m, err := sip.ParseMessage(msg)
	if err != nil {
		b.Fatal(err)
	}
	return m.(*sip.Request)
}

// BenchmarkCopyHeaders measures copying a REGISTER's crossing headers to
// the request relayed inside (the names handleRegister copies).
func BenchmarkCopyHeaders(b *testing.B) {
	req := benchRegister(b)
	b.ReportAllocs()
	for b.Loop() {
		out := sip.NewRequest(sip.REGISTER, req.Recipient)
		copyHeaders(out, req, "From", "To", "Call-ID", "CSeq", "Authorization", "Proxy-Authorization",
			"Expires", "Supported", "Require", "Allow", "Accept", "Content-Type", "Event", "User-Agent")
	}
}

// BenchmarkSweep measures one expiry tick of the registrar holding
// 100,000 bindings of which none is due (the usual second).
func BenchmarkSweep(b *testing.B) {
	r := unservedServer(b).regs
	now := time.Now()
	r.mu.Lock()
	for i := range 100000 {
		aor := "sip:u" + strconv.Itoa(i) + "@portico.test"
		info := RegistrationInfo{AOR: aor, Contact: "sip:u" + strconv.Itoa(i) + "@192.0.2.1:5060", Expires: now.Add(time.Hour)}
		r.put(bindingKey(info.AOR, info.Contact), &binding{RegistrationInfo: info})
	}
	r.mu.Unlock()
	b.ReportAllocs()
	for b.Loop() {
		r.sweep(now)
	}
}
