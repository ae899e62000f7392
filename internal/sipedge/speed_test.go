package sipedge

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"
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

// BenchmarkRegister relays b.N REGISTERs, each of a user never seen
// before, from a UDP client through a served edge (UDP listeners on
// loopback, no history) to a registrar that answers each with 200 and the
// Contact, 32 at a time. The client and the registrar write SIP text into
// buffers of their own and allocate nothing, so allocs/op and B/op are
// the edge's per REGISTER; cpu-µs/op is the process's CPU time (user and
// system) per REGISTER, the two peers' reads and writes included.
func BenchmarkRegister(b *testing.B) {
	cs := listenUDP(b, kamIP)
	b.Cleanup(func() { cs.Close() })
	_, to := serveUDP(b, Config{CallServers: []CallServer{{Address: cs.LocalAddr().String()}}, Domain: "portico.test", ProbeInterval: -1,
		NATBindingExpiry: time.Hour, Limits: Limits{MaxRegistrations: 1 << 30}},
		Deps{Media: nopMedia{}, Logger: slog.New(slog.DiscardHandler)})
	go benchRegistrar(cs)

	ua := listenUDP(b, outsideIP)
	b.Cleanup(func() { ua.Close() })
	dest := net.UDPAddrFromAddrPort(to)
	const window = 32
	credit := make(chan struct{}, window)
	answered := make(chan error, 1)
	go func() {
		buf := make([]byte, 65535)
		for n := 0; n < b.N; {
			ua.SetReadDeadline(time.Now().Add(10 * time.Second))
			k, _, err := ua.ReadFrom(buf)
			if err != nil {
				answered <- fmt.Errorf("after %d answers: %w", n, err)
				return
			}
			if !bytes.HasPrefix(buf[:k], []byte("SIP/2.0 ")) {
				continue
			}
			if !bytes.HasPrefix(buf[:k], []byte("SIP/2.0 200 ")) {
				answered <- fmt.Errorf("answer %d: %s", n, buf[:k])
				return
			}
			n++
			credit <- struct{}{}
		}
		answered <- nil
	}()
	for range window {
		credit <- struct{}{}
	}
	local := ua.LocalAddr().String()
	msg := make([]byte, 0, 1024)
	b.ReportAllocs()
	c0 := processCPU()
	b.ResetTimer()
	for i := range b.N {
		<-credit
		msg = appendRegister(msg[:0], local, i)
		if _, err := ua.WriteTo(msg, dest); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-answered; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-c0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// appendRegister appends REGISTER number i from the client at local, for
// user u<i>, to dst.
func appendRegister(dst []byte, local string, i int) []byte {
	dst = append(dst, "REGISTER sip:portico.test SIP/2.0\r\nVia: SIP/2.0/UDP "...)
	dst = append(dst, local...)
	dst = append(dst, ";branch=z9hG4bK-b"...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, ";rport\r\nMax-Forwards: 70\r\nFrom: <sip:u"...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, "@portico.test>;tag=t"...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, "\r\nTo: <sip:u"...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, "@portico.test>\r\nCall-ID: reg-"...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, "\r\nCSeq: 1 REGISTER\r\nContact: <sip:u"...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, '@')
	dst = append(dst, local...)
	return append(dst, ">\r\nExpires: 3600\r\nUser-Agent: bench\r\nContent-Length: 0\r\n\r\n"...)
}

// benchRegistrar answers every REGISTER read from c with 200, its Via,
// From, To (with a tag), Call-ID and CSeq, and its Contact with
// expires=3600, until c is closed. It allocates nothing per request.
func benchRegistrar(c net.PacketConn) {
	buf, out := make([]byte, 65535), make([]byte, 0, 4096)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		req := buf[:n]
		if !bytes.HasPrefix(req, []byte("REGISTER ")) {
			continue
		}
		out = append(out[:0], "SIP/2.0 200 OK\r\n"...)
		for rest := req; len(rest) > 0; {
			line := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				line, rest = rest[:i+1], rest[i+1:]
			} else {
				rest = nil
			}
			line = bytes.TrimRight(line, "\r\n")
			switch {
			case len(line) == 0:
				rest = nil
			case hasName(line, "Via"), hasName(line, "From"), hasName(line, "Call-ID"), hasName(line, "CSeq"):
				out = append(append(out, line...), "\r\n"...)
			case hasName(line, "To"):
				out = append(append(out, line...), ";tag=reg\r\n"...)
			case hasName(line, "Contact"):
				out = append(append(out, line...), ";expires=3600\r\n"...)
			}
		}
		out = append(out, "Content-Length: 0\r\n\r\n"...)
		c.WriteTo(out, from)
	}
}

// hasName reports whether a header line is of the header name.
func hasName(line []byte, name string) bool {
	return len(line) > len(name) && line[len(name)] == ':' && strings.EqualFold(string(line[:len(name)]), name)
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
