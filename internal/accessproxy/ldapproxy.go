package accessproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/portico-edge/portico/internal/accessproxy/ldap"
)

// msgReader reads whole LDAP messages from a connection.
type msgReader struct {
	c   net.Conn
	buf []byte
	max int
}

// next returns the next message's bytes (valid until the following call).
func (r *msgReader) next() ([]byte, ldap.Message, error) {
	for {
		if m, err := ldap.Parse(r.buf, r.max); err == nil {
			raw := r.buf[:m.Len]
			return raw, m, nil
		} else if !errors.Is(err, ldap.ErrShort) {
			return nil, ldap.Message{}, err
		}
		if cap(r.buf)-len(r.buf) < 4096 {
			nb := make([]byte, len(r.buf), max(2*cap(r.buf), 8192))
			copy(nb, r.buf)
			r.buf = nb
		}
		n, err := r.c.Read(r.buf[len(r.buf):cap(r.buf)])
		r.buf = r.buf[:len(r.buf)+n]
		if n == 0 && err != nil {
			return nil, ldap.Message{}, err
		}
	}
}

// consume drops the message returned by next.
func (r *msgReader) consume(n int) {
	rest := copy(r.buf, r.buf[n:])
	r.buf = r.buf[:rest]
}

// serveLDAP proxies one LDAP client. When clientTLS is false the client
// must StartTLS first (Portico answers it and terminates TLS itself); no
// other operation is forwarded in the clear.
func (s *Server) serveLDAP(ctx context.Context, st *state, r *route, client net.Conn, clientTLS bool) {
	defer client.Close()
	idle := st.cfg.Timeouts.Idle
	opts := r.LDAP
	cr := &msgReader{c: client, max: opts.MaxMessage}
	if !clientTLS {
		for !clientTLS {
			_ = client.SetReadDeadline(time.Now().Add(st.cfg.Timeouts.Handshake))
			_, m, err := cr.next()
			if err != nil {
				return
			}
			cr.consume(m.Len)
			if m.Op == ldap.UnbindRequest {
				return
			}
			if m.Op == ldap.ExtendedRequest {
				if oid, _ := ldap.ExtendedName(m.Body); oid == ldap.StartTLSOID {
					if _, err := client.Write(ldap.AppendResult(nil, m.ID, ldap.ExtendedResponse, ldap.Success, "", "", ldap.StartTLSOID)); err != nil {
						return
					}
					if len(cr.buf) > 0 { // client sent more before the TLS handshake: protocol violation
						return
					}
					tc := s.tlsServer(client, s.serverTLS(st, r, nil))
					if err := s.handshake(st, tc); err != nil {
						return
					}
					client = tc
					cr = &msgReader{c: tc, max: opts.MaxMessage}
					clientTLS = true
					continue
				}
			}
			if rt := ldap.ResponseTag(m.Op); rt != 0 {
				_, _ = client.Write(ldap.AppendResult(nil, m.ID, rt, ldap.ConfidentialityRequired, "", "StartTLS required", ""))
			}
		}
		_ = client.SetReadDeadline(time.Time{})
	}

	up, err := s.dialLDAPUpstream(ctx, st, r, client)
	if err != nil {
		s.m.rejected.WithLabelValues("upstream_dial").Inc()
		s.log.Warn("ldap upstream unreachable", "route", r.Name, "err", err)
		// Answer the next request so the client sees why, then close.
		_ = client.SetReadDeadline(time.Now().Add(st.cfg.Timeouts.Handshake))
		if _, m, err := cr.next(); err == nil {
			if rt := ldap.ResponseTag(m.Op); rt != 0 {
				_, _ = client.Write(ldap.AppendResult(nil, m.ID, rt, ldap.Unavailable, "", "directory unavailable", ""))
			}
		}
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { client.Close(); up.Close() })
	defer stop()

	var wmu sync.Mutex // serialises writes to the client (replies vs relayed responses)
	writeClient := func(b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := client.Write(b)
		return err
	}
	done := make(chan struct{})
	go func() { // upstream → client, whole messages
		defer close(done)
		ur := &msgReader{c: up, max: 16 << 20}
		for {
			if idle > 0 {
				_ = up.SetReadDeadline(time.Now().Add(idle))
			}
			raw, m, err := ur.next()
			if err != nil {
				client.Close()
				return
			}
			if err := writeClient(raw); err != nil {
				up.Close()
				return
			}
			ur.consume(m.Len)
		}
	}()
	for {
		if idle > 0 {
			_ = client.SetReadDeadline(time.Now().Add(idle))
		}
		raw, m, err := cr.next()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("ldap client read", "err", err)
			}
			break
		}
		if code, diag := ldapPolicy(opts, m); code != ldap.Success {
			s.m.rejected.WithLabelValues("ldap_policy").Inc()
			s.log.Info("ldap operation refused", "route", r.Name, "op", fmt.Sprintf("%#x", m.Op), "from", client.RemoteAddr(), "reason", diag)
			if rt := ldap.ResponseTag(m.Op); rt != 0 {
				if err := writeClient(ldap.AppendResult(nil, m.ID, rt, code, "", diag, "")); err != nil {
					break
				}
			}
			cr.consume(m.Len)
			continue
		}
		if _, err := up.Write(raw); err != nil {
			break
		}
		cr.consume(m.Len)
		if m.Op == ldap.UnbindRequest {
			break
		}
	}
	closeWrite(up)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	up.Close()
	<-done
}

// ldapPolicy decides whether a client operation may reach the directory.
func ldapPolicy(o LDAPOptions, m ldap.Message) (code int, diag string) {
	switch m.Op {
	case ldap.ExtendedRequest:
		oid, err := ldap.ExtendedName(m.Body)
		if err != nil {
			return ldap.ProtocolError, "malformed extended request"
		}
		if oid == ldap.StartTLSOID {
			return ldap.OperationsError, "TLS already established"
		}
		if o.ReadOnly && oid != "1.3.6.1.4.1.4203.1.11.3" { // WhoAmI is read-only
			return ldap.InsufficientAccessRights, "read-only directory proxy: extended operation not allowed"
		}
	case ldap.BindRequest:
		if len(o.BaseDNs) > 0 {
			name, err := ldap.BindName(m.Body)
			if err != nil {
				return ldap.ProtocolError, "malformed bind request"
			}
			if name != "" && !underAny(name, o.BaseDNs) {
				return ldap.InsufficientAccessRights, "bind name outside the allowed base DNs"
			}
		}
	case ldap.SearchRequest:
		if len(o.BaseDNs) > 0 {
			base, err := ldap.SearchBaseDN(m.Body)
			if err != nil {
				return ldap.ProtocolError, "malformed search request"
			}
			if !underAny(base, o.BaseDNs) {
				return ldap.InsufficientAccessRights, "search base outside the allowed base DNs"
			}
		}
	case ldap.UnbindRequest, ldap.AbandonRequest:
	default:
		if o.ReadOnly {
			return ldap.InsufficientAccessRights, "read-only directory proxy: operation not allowed"
		}
	}
	return ldap.Success, ""
}

func underAny(dn string, bases []string) bool {
	for _, b := range bases {
		if ldap.UnderBase(dn, b) {
			return true
		}
	}
	return false
}

// dialLDAPUpstream connects to the directory and secures the leg as configured.
func (s *Server) dialLDAPUpstream(ctx context.Context, st *state, r *route, client net.Conn) (net.Conn, error) {
	up, err := s.dialUpstream(ctx, st, r.Upstream, r.SendProxyProtocol, client)
	if err != nil {
		return nil, err
	}
	switch r.LDAP.Upstream {
	case "none":
		return up, nil
	case "starttls":
		_ = up.SetDeadline(time.Now().Add(st.cfg.Timeouts.Handshake))
		if _, err := up.Write(ldap.AppendExtendedRequest(nil, 1, ldap.StartTLSOID)); err != nil {
			up.Close()
			return nil, err
		}
		mr := &msgReader{c: up, max: 1 << 16}
		_, m, err := mr.next()
		if err != nil {
			up.Close()
			return nil, fmt.Errorf("starttls: %w", err)
		}
		code, err := ldap.ResultCode(m.Body)
		if err != nil || m.Op != ldap.ExtendedResponse || code != ldap.Success {
			up.Close()
			return nil, fmt.Errorf("starttls refused by directory (op %#x, code %d)", m.Op, code)
		}
		if m.Len != len(mr.buf) {
			up.Close()
			return nil, errors.New("starttls: directory sent data before the handshake")
		}
	}
	tc := tls.Client(up, r.upTLS)
	_ = tc.SetDeadline(time.Now().Add(st.cfg.Timeouts.Handshake))
	if err := tc.HandshakeContext(ctx); err != nil {
		up.Close()
		return nil, fmt.Errorf("tls to directory: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}
