package sipedge

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// histogram returns the sample count and sum of one method's
// portico_sip_transaction_duration_seconds.
func histogram(t *testing.T, s *Server, method sip.RequestMethod) (uint64, float64) {
	t.Helper()
	var m dto.Metric
	if err := s.m.txDuration.WithLabelValues(string(method)).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// TestTransactionDuration: sipp outside registers through Portico to
// Kamailio and calls an inside sipp UAS, twice. Each REGISTER and each
// initial INVITE from outside adds one sample when its final response is
// sent (not on 100 or 180, not on ACK or BYE); a call from inside to a
// registered outside user adds none; a refused REGISTER adds one.
func TestTransactionDuration(t *testing.T) {
	if testing.Short() {
		t.Skip("needs sipp and kamailio")
	}
	inside := startSippUAS(t)
	k := startKamailio(t, 64, `MCU_URI="sip:`+inside+`"`)
	p := startPortico(t, Config{CallServers: kamailioServer(k)})
	dir := sippDir(t)

	r := startSipp(t, dir, "-sf", "reg_call.xml", "-key", "user", "alice", "-s", "1001",
		"-i", outsideIP, "-p", freePort(t), "-mp", freePort(t), "-m", "2", "-d", "200", p.extUDP.String())
	r.wait(t, "reg_call")
	p.hist.waitCalls(t, 2)
	regs, regSum := histogram(t, p.s, sip.REGISTER)
	invites, inviteSum := histogram(t, p.s, sip.INVITE)
	if regs != 2 || invites != 2 {
		t.Errorf("samples: %d REGISTER, %d INVITE; want 2 and 2", regs, invites)
	}
	if regSum <= 0 || inviteSum <= 0 {
		t.Errorf("sums: REGISTER %v s, INVITE %v s; want both above zero", regSum, inviteSum)
	}
	t.Logf("REGISTER mean %.2f ms, INVITE mean %.2f ms", regSum/float64(regs)*1000, inviteSum/float64(invites)*1000)

	// A call from inside: its INVITE arrives on the inside side.
	port := freePort(t)
	if code := registerFrom(t, p.extUDP.String(), "bob", outsideIP+":"+port, 3600); code != 200 {
		t.Fatalf("REGISTER answered %d", code)
	}
	waitRegistered(t, p, "bob")
	bob := startSipp(t, dir, "-sn", "uas", "-i", outsideIP, "-p", port, "-mp", freePort(t), "-m", "1")
	caller := startSipp(t, dir, "-sn", "uac", "-s", "bob", "-i", insideIP, "-p", freePort(t), "-mp", freePort(t),
		"-m", "1", "-d", "200", k.addr.String())
	caller.wait(t, "uac")
	bob.wait(t, "uas")
	p.hist.waitCalls(t, 3)
	if n, _ := histogram(t, p.s, sip.REGISTER); n != 3 {
		t.Errorf("REGISTER samples after bob registered = %d, want 3", n)
	}
	if n, _ := histogram(t, p.s, sip.INVITE); n != 2 {
		t.Errorf("INVITE samples after a call from inside = %d, want still 2", n)
	}

	// A REGISTER the call server refuses still gets one final answer.
	if code := registerFrom(t, p.extUDP.String(), "reject-carol", outsideIP+":"+freePort(t), 3600); code < 400 {
		t.Fatalf("refused REGISTER answered %d", code)
	}
	// The sample is taken once the answer is sent, so the client may
	// hold the answer a moment before the sample exists.
	n, _ := histogram(t, p.s, sip.REGISTER)
	for deadline := time.Now().Add(5 * time.Second); n < 4 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		n, _ = histogram(t, p.s, sip.REGISTER)
	}
	if n != 4 {
		t.Errorf("REGISTER samples after a refused one = %d, want 4", n)
	}
}
