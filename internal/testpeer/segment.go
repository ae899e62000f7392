package testpeer

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
)

// Segment is an Ethernet segment in network namespaces a test creates: a
// namespace holding the bridge br0 and one namespace per host, each
// joined to the bridge by a veth pair (eth0 in the host, p<host> on the
// bridge). Cleanup deletes the namespaces. The caller holds LockNetwork.
type Segment struct {
	t    testing.TB
	name string
}

// NewSegment creates the segment; hosts maps each host's name to its
// eth0 address with prefix length ("192.0.2.1/24"). The namespaces are
// named prefix, six random hex digits and the host's name ("br" for the
// bridge's).
func NewSegment(t testing.TB, prefix string, hosts map[string]string) *Segment {
	t.Helper()
	var r [3]byte
	rand.Read(r[:])
	s := &Segment{t: t, name: prefix + hex.EncodeToString(r[:])}
	br := s.NS("br")
	s.IP("netns", "add", br)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", br).Run() })
	s.IP("-n", br, "link", "add", "br0", "type", "bridge")
	s.IP("-n", br, "link", "set", "br0", "up")
	for h, addr := range hosts {
		ns := s.NS(h)
		s.IP("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		s.IP("-n", ns, "link", "set", "lo", "up")
		s.IP("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p"+h, "netns", br)
		s.IP("-n", ns, "addr", "add", addr, "dev", "eth0")
		s.IP("-n", ns, "link", "set", "eth0", "up")
		s.IP("-n", br, "link", "set", "p"+h, "master", "br0", "up")
	}
	return s
}

// NS is host h's namespace.
func (s *Segment) NS(h string) string { return s.name + h }

// IP runs ip with args and returns its output; a failure fails the test.
func (s *Segment) IP(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
