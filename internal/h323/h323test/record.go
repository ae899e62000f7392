package h323test

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h323test/capture"
)

// Recorder writes what the simulator components send into one pcap file,
// and remembers which ports carry RAS, call signalling (TPKT), separate
// H.245 and RTP so that Dissect can tell tshark how to decode them. One
// Recorder may be shared by several components (it is safe for concurrent
// use); each component writes only what it sends, so a shared Recorder
// holds both directions.
//
// A nil *Recorder records nothing.
type Recorder struct {
	mu    sync.Mutex
	w     *capture.PcapWriter
	path  string
	ports map[int]string // port -> decode-as protocol
	n     int
}

// NewRecorder creates a pcap file in t's temporary directory; it is
// closed when the test ends.
func NewRecorder(t testing.TB) *Recorder {
	t.Helper()
	path := filepath.Join(t.TempDir(), "h323.pcap")
	w, err := capture.NewPcap(path)
	if err != nil {
		t.Fatalf("h323test: recorder: %v", err)
	}
	r := &Recorder{w: w, path: path, ports: map[int]string{}}
	t.Cleanup(func() { r.close() })
	return r
}

// Path returns the pcap file's path.
func (r *Recorder) Path() string { return r.path }

// Packets returns how many packets were written.
func (r *Recorder) Packets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *Recorder) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil {
		r.w.Close()
		r.w = nil
	}
}

// Port marks port as carrying proto ("h225" for RAS on UDP, "tpkt" for
// call signalling, "h245" for a separate H.245 connection, "rtp"), for
// Dissect's decode-as rules.
func (r *Recorder) Port(port int, proto string) {
	if r == nil || port == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ports[port] = proto
}

// DecodeAs returns tshark -d arguments for the marked ports: RAS as
// h225, separate H.245 as h245 and RTP; call-signalling ports need none.
func (r *Recorder) DecodeAs() []string {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ports := make([]int, 0, len(r.ports))
	for p := range r.ports {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	var args []string
	for _, p := range ports {
		switch proto := r.ports[p]; proto {
		case "tpkt":
			// tshark finds Q.931 over TPKT by its heuristic; forcing
			// "tcp.port==N,tpkt" leaves the payload undissected (4.0)
		case "h225", "rtp":
			args = append(args, "-d", fmt.Sprintf("udp.port==%d,%s", p, proto))
		default:
			args = append(args, "-d", fmt.Sprintf("tcp.port==%d,%s", p, proto))
		}
	}
	return args
}

// UDP records a datagram sent from src to dst.
func (r *Recorder) UDP(src, dst netip.AddrPort, payload []byte) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil || !src.Addr().Unmap().Is4() || !dst.Addr().Unmap().Is4() {
		return
	}
	if r.w.UDP(unmap(src), unmap(dst), payload) == nil {
		r.n++
	}
}

// TCP records bytes sent on c (from its local to its remote address).
func (r *Recorder) TCP(c net.Conn, payload []byte) {
	if r == nil {
		return
	}
	src, dst := addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil || !src.Addr().Is4() || !dst.Addr().Is4() {
		return
	}
	if r.w.TCP(src, dst, payload) == nil {
		r.n++
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// addrPort returns a net.Addr's address and port (zero when it is not IP).
func addrPort(a net.Addr) netip.AddrPort {
	switch x := a.(type) {
	case *net.TCPAddr:
		return unmap(x.AddrPort())
	case *net.UDPAddr:
		return unmap(x.AddrPort())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return unmap(ap)
}
