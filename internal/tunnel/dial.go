package tunnel

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
	"github.com/quic-go/quic-go"
)

// A dial service carries TCP connections whose destination the opening end
// names per flow, such as the H.245 address an inside endpoint announced:
// the DMZ node cannot reach it, so it asks the inside node to connect. The
// delivering end connects only to destinations inside the service's
// Networks, so the opening end cannot make it connect anywhere else.
//
// On the wire a dial flow is a stream whose Header has KindDial, followed
// by its destination (DialTarget: 16 bytes of IPv6 or IPv4-mapped address,
// 2 bytes of port, big endian). The delivering end answers with one status
// byte (dialOK or a refusal) before the connection's bytes.

// Dial status bytes, the first byte the delivering end writes.
const (
	dialOK          = 0
	dialRefused     = 1 // destination outside the service's networks
	dialUnreachable = 2 // the connection to the destination failed
	dialUnknown     = 3 // no dial service of that name here
)

// dialTargetLen is the encoded length of a DialTarget.
const dialTargetLen = 18

// AppendDialTarget appends the encoded destination of a dial flow.
func AppendDialTarget(dst []byte, to netip.AddrPort) []byte {
	a := to.Addr().As16()
	dst = append(dst, a[:]...)
	return binary.BigEndian.AppendUint16(dst, to.Port())
}

// ParseDialTarget decodes the destination of a dial flow from the start of
// b. IPv4 destinations come back unmapped.
func ParseDialTarget(b []byte) (netip.AddrPort, error) {
	if len(b) < dialTargetLen {
		return netip.AddrPort{}, fmt.Errorf("%w: dial destination of %d bytes", ErrHeader, len(b))
	}
	a := netip.AddrFrom16([16]byte(b[:16])).Unmap()
	port := binary.BigEndian.Uint16(b[16:18])
	if port == 0 || a.IsUnspecified() || a.IsMulticast() {
		return netip.AddrPort{}, fmt.Errorf("%w: dial destination %s:%d", ErrHeader, a, port)
	}
	return netip.AddrPortFrom(a, port), nil
}

// checkNetworks validates a dial service's fields.
func checkNetworks(errs *field.Errors, p string, s Service) {
	if s.Proto != "tcp" {
		errs.Add(p+".networks", "a dial service is tcp")
	}
	if s.Listen != "" || s.Target != "" {
		errs.Add(p+".networks", "a dial service has neither listen nor target")
	}
	for i, n := range s.Networks {
		if _, err := netip.ParsePrefix(n); err != nil {
			errs.Add(fmt.Sprintf("%s.networks[%d]", p, i), "%q is not an address prefix (10.0.0.0/8)", n)
		}
	}
}

// allowed reports whether a lies in one of the networks.
func allowed(networks []string, a netip.Addr) bool {
	for _, n := range networks {
		if p, err := netip.ParsePrefix(n); err == nil && p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// DialTo opens a TCP connection to to through the tunnel: the peer, where
// service is a dial service (Service.Networks), connects to it. It fails
// with ErrDialRefused when the peer does not allow the destination and
// ErrDialFailed when it cannot connect. Here the service must be TCP with
// neither Listen nor Target.
func (e *end) DialTo(ctx context.Context, service string, to netip.AddrPort) (net.Conn, error) {
	svc, ok := e.cfg.service(service)
	if !ok || svc.Proto != "tcp" || svc.Listen != "" || svc.Target != "" || len(svc.Networks) > 0 {
		return nil, fmt.Errorf("%w: %q is not a dial service toward the peer", ErrUnknownService, service)
	}
	c, st, err := e.openStream(ctx, KindDial, service, 0, AppendDialTarget(nil, to))
	if err != nil {
		return nil, err
	}
	fail := func(err error) (net.Conn, error) {
		st.CancelRead(codeDialFailed)
		st.CancelWrite(codeDialFailed)
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = st.SetReadDeadline(d)
	} else {
		_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
	var status [1]byte
	_, err = io.ReadFull(st, status[:])
	_ = st.SetReadDeadline(time.Time{})
	switch {
	case err != nil:
		return fail(fmt.Errorf("%w: %s: %w", ErrDialFailed, to, err))
	case status[0] == dialRefused:
		return fail(fmt.Errorf("%w: %s", ErrDialRefused, to))
	case status[0] == dialUnknown:
		return fail(fmt.Errorf("%w: %q at the peer", ErrUnknownService, service))
	case status[0] != dialOK:
		return fail(fmt.Errorf("%w: %s", ErrDialFailed, to))
	}
	return newStreamConn(st, c, e.svc[service]), nil
}

// serveDial delivers one dial flow of the peer: it reads the destination,
// connects to it when the service's networks allow it, answers the status
// and carries the connection.
func (e *end) serveDial(ctx context.Context, conn *quic.Conn, st *quic.Stream, h Header) {
	answer := func(status byte) {
		_, _ = st.Write([]byte{status})
		_ = st.Close()
		st.CancelRead(codeDialFailed)
	}
	svc, ok := e.cfg.service(h.Service)
	if !ok || svc.Proto != "tcp" || len(svc.Networks) == 0 {
		e.droppedUnknown.Add(1)
		answer(dialUnknown)
		return
	}
	stats := e.svc[h.Service]
	var b [dialTargetLen]byte
	_ = st.SetReadDeadline(time.Now().Add(e.cfg.IdleTimeout))
	_, err := io.ReadFull(st, b[:])
	_ = st.SetReadDeadline(time.Time{})
	var to netip.AddrPort
	if err == nil {
		to, err = ParseDialTarget(b[:])
	}
	if err != nil {
		e.badHeaders.Add(1)
		st.CancelRead(codeUnknownService)
		st.CancelWrite(codeUnknownService)
		return
	}
	if !allowed(svc.Networks, to.Addr()) {
		stats.dialsRefused.Add(1)
		e.log.Warn("tunnel dial refused: destination outside the service's networks", "service", h.Service, "to", to.String())
		answer(dialRefused)
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	if svc.Source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(svc.Source)}
	}
	tc, err := d.DialContext(ctx, "tcp", to.String())
	if err != nil {
		e.log.Debug("tunnel dial destination unreachable", "service", h.Service, "to", to.String(), "err", err)
		answer(dialUnreachable)
		return
	}
	if _, err := st.Write([]byte{dialOK}); err != nil {
		_ = tc.Close()
		st.CancelRead(codeDialFailed)
		return
	}
	pump(newStreamConn(st, conn, stats), tc)
}
