package accessproxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// leakyHeaders are response headers that name inside server software or
// versions; they never leave Portico.
var leakyHeaders = []string{
	"Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version", "X-Runtime",
	"X-Generator", "X-Backend-Server", "X-Served-By", "X-Server", "X-Version", "Via",
	"X-Drupal-Cache", "X-Varnish", "X-Application-Context", "X-Pingback",
}

// leaky is leakyHeaders as a set, for one look-up per response header
// instead of a delete per listed name.
var leaky = func() map[string]bool {
	m := make(map[string]bool, len(leakyHeaders))
	for _, h := range leakyHeaders {
		m[h] = true
	}
	return m
}()

func (s *Server) buildProxy(rt *route, cfg Config) {
	target := upstreamURL(rt.Upstream)
	dialer := &net.Dialer{Timeout: cfg.Timeouts.Dial, KeepAlive: 30 * time.Second}
	rt.transport = &http.Transport{
		DialContext:           dialer.DialContext,
		TLSClientConfig:       rt.upTLS,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeouts.Handshake,
		ResponseHeaderTimeout: cfg.Timeouts.HTTPResponseHeader,
		ExpectContinueTimeout: time.Second,
		// A proxy passes Content-Encoding through; it must not ask for gzip
		// itself and decompress on the client's behalf.
		DisableCompression: true,
	}
	var upstream http.RoundTripper = rt.transport
	if target.Scheme == "http" {
		addr := target.Host
		if target.Port() == "" {
			addr = net.JoinHostPort(target.Hostname(), "80")
		}
		rt.h1 = &h1Transport{fallback: rt.transport, host: target.Host, addr: addr, dial: dialer.DialContext,
			respHeader: cfg.Timeouts.HTTPResponseHeader, idleFor: rt.transport.IdleConnTimeout,
			maxIdle: rt.transport.MaxIdleConnsPerHost, maxHeader: maxResponseHeader}
		upstream = rt.h1
	}
	preserve := rt.PreserveHost
	name := rt.Name
	classC := &rt.classC
	rt.proxy = &httputil.ReverseProxy{
		Transport:  upstream,
		BufferPool: copyBuffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			if preserve {
				pr.Out.Host = pr.In.Host
			}
			// Outside clients' own X-Forwarded-* are untrusted: replace them
			// (a trusted balancer's client address arrives by PROXY protocol).
			client := ""
			if ci, ok := pr.In.Context().Value(connInfoKey{}).(*connInfo); ok && ci.ip != "" {
				client = ci.ip
			} else if ap, err := netip.ParseAddrPort(pr.In.RemoteAddr); err == nil {
				client = ap.Addr().String()
			}
			pr.Out.Header.Set("X-Forwarded-For", client)
			pr.Out.Header.Set("X-Forwarded-Host", pr.In.Host)
			if pr.In.TLS != nil {
				pr.Out.Header.Set("X-Forwarded-Proto", "https")
			} else {
				pr.Out.Header.Set("X-Forwarded-Proto", "http")
			}
			pr.Out.Header.Del("Forwarded")
		},
		ModifyResponse: func(resp *http.Response) error {
			for k := range resp.Header {
				if leaky[textproto.CanonicalMIMEHeaderKey(k)] {
					delete(resp.Header, k)
				}
			}
			if c := resp.StatusCode / 100; c >= 1 && c <= 5 {
				classC[c].Inc()
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			classC[5].Inc()
			if r.Context().Err() == nil {
				s.log.Warn("upstream request failed", "route", name, "err", err)
			}
			status := http.StatusBadGateway
			if ctxErr := context.Cause(r.Context()); ctxErr != nil {
				status = http.StatusGatewayTimeout
			}
			if strings.Contains(err.Error(), "request body too large") {
				status = http.StatusRequestEntityTooLarge
			}
			http.Error(w, http.StatusText(status), status)
		},
		ErrorLog: nil,
	}
}

// copyBuffers lends ReverseProxy its 32 KiB copy buffers; without it every
// request allocates one, and on small responses that garbage dominates.
var copyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == 32<<10 {
		buf = buf[:cap(buf)]
		b.p.Put(&buf)
	}
}

func statusClass(code int) string {
	switch {
	case code < 200:
		return "1xx"
	case code < 300:
		return "2xx"
	case code < 400:
		return "3xx"
	case code < 500:
		return "4xx"
	}
	return "5xx"
}

// ServeHTTP routes a request that arrived on the shared port (after TLS
// termination, or plain HTTP where a route allows it).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// A request with Transfer-Encoding may also have carried a
		// Content-Length (a request-smuggling shape) that net/http has
		// already dropped, so all of them are treated alike: the connection
		// closes after the response (RFC 9112 §6.3), leaving nothing on it
		// that two parsers could frame differently.
		w.Header().Set("Connection", "close")
	}
	st := s.state.Load()
	ci, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	if ci == nil {
		ci = &connInfo{}
	}
	rt := st.matchHTTP(ci, r.Host, r.URL.Path)
	if rt == nil {
		s.m.rejected.WithLabelValues("no_route").Inc()
		if st.hostKnown(r.Host) {
			http.Error(w, "404 not found", http.StatusNotFound)
		} else {
			http.Error(w, "421 misdirected request", http.StatusMisdirectedRequest)
		}
		return
	}
	if !rt.allowed(ci.src.Addr()) {
		s.m.rejected.WithLabelValues("acl").Inc()
		http.Error(w, "403 forbidden", http.StatusForbidden)
		return
	}
	rt.routedC.Inc()
	stripUpgrade(r.Header)
	if max := st.cfg.MaxRequestBody; max > 0 {
		if r.ContentLength > max {
			http.Error(w, "413 request entity too large", http.StatusRequestEntityTooLarge)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
	}
	rt.proxy.ServeHTTP(w, r)
}

// stripUpgrade removes every protocol upgrade but a WebSocket one (RFC
// 6455) from a request: an upgrade to h2c (RFC 7540 §3.2), TLS or anything
// else would turn the connection into a tunnel to the upstream that later
// requests cross unseen, past the route's path_prefix and the
// X-Forwarded-* rewriting. A request offering WebSocket beside another
// protocol loses its upgrade too: the upstream could pick the other one.
func stripUpgrade(h http.Header) {
	up := h.Values("Upgrade")
	if len(up) == 0 && h.Get("HTTP2-Settings") == "" {
		return
	}
	if len(up) == 1 && strings.EqualFold(strings.TrimSpace(up[0]), "websocket") {
		return
	}
	h.Del("Upgrade")
	h.Del("HTTP2-Settings")
	// ReverseProxy removes what Connection names and re-adds Upgrade only
	// when an Upgrade header is left; drop the tokens all the same.
	conn := h.Values("Connection")
	h.Del("Connection")
	for _, v := range conn {
		for _, tok := range strings.Split(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok != "" && !strings.EqualFold(tok, "upgrade") && !strings.EqualFold(tok, "http2-settings") {
				h.Add("Connection", tok)
			}
		}
	}
}
