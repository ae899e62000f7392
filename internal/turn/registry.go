package turn

import (
	"encoding/binary"
	"net"
	"slices"
	"sort"
	"sync"
	"time"
)

// AllocationInfo describes one live allocation, for the API
// (GET /api/v1/turn/allocations). Counters are read live.
type AllocationInfo struct {
	// User is the authenticated user: the long-term username, or the user
	// part of REST credentials.
	User string `json:"user"`
	// Client is the client's transport address as seen by Portico.
	Client string `json:"client"`
	// Server is the Portico listener address the client reached.
	Server string `json:"server"`
	// Transport is the client transport: udp, tcp, tls or dtls.
	Transport string `json:"transport"`
	// Relay is the relayed transport address handed to the client.
	Relay string `json:"relay"`
	// RelayTransport is udp, or tcp for RFC 6062 allocations.
	RelayTransport string `json:"relay_transport"`
	// Created and Expires (as of the last Allocate/Refresh response).
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Permissions lists the peer IPs the client installed permissions for.
	Permissions []string `json:"permissions"`
	// Channels maps channel numbers to peer addresses.
	Channels map[uint16]string `json:"channels,omitempty"`
	// Bytes and packets relayed, counted as they pass.
	BytesToPeer     uint64 `json:"bytes_to_peer"`
	PacketsToPeer   uint64 `json:"packets_to_peer"`
	BytesFromPeer   uint64 `json:"bytes_from_peer"`
	PacketsFromPeer uint64 `json:"packets_from_peer"`
}

type allocEntry struct {
	info   AllocationInfo // Permissions and Channels kept in the maps below
	perms  map[string]int
	chans  map[uint16]string
	relay  *relayHandle
	maxAge *time.Timer
	// username is the USERNAME the allocation was authenticated with.
	username string
}

// registry tracks allocations from pion's lifecycle events.
type registry struct {
	mu      sync.Mutex
	entries map[string]*allocEntry // by fiveTupleKey
	kinds   sync.Map               // fiveTupleKey -> client transport of stream conns
}

func newRegistry() *registry { return &registry{entries: map[string]*allocEntry{}} }

// fiveTupleKey identifies a client's 5-tuple the way pion reports it.
func fiveTupleKey(src, dst net.Addr) string {
	if src == nil || dst == nil {
		return ""
	}
	return src.Network() + "|" + src.String() + "|" + dst.String()
}

func (r *registry) add(key string, e *allocEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.entries[key]; old != nil && old.maxAge != nil {
		old.maxAge.Stop()
	}
	r.entries[key] = e
}

func (r *registry) remove(key string) *allocEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[key]
	delete(r.entries, key)
	if e != nil && e.maxAge != nil {
		e.maxAge.Stop()
	}
	return e
}

func (r *registry) removeAll() []*allocEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*allocEntry, 0, len(r.entries))
	for k, e := range r.entries {
		if e.maxAge != nil {
			e.maxAge.Stop()
		}
		out = append(out, e)
		delete(r.entries, k)
	}
	return out
}

func (r *registry) with(key string, f func(*allocEntry)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.entries[key]; e != nil {
		f(e)
	}
}

func (r *registry) list() []AllocationInfo {
	r.mu.Lock()
	out := make([]AllocationInfo, 0, len(r.entries))
	for _, e := range r.entries {
		info := e.info
		info.Permissions = make([]string, 0, len(e.perms))
		for p := range e.perms {
			info.Permissions = append(info.Permissions, p)
		}
		slices.Sort(info.Permissions)
		if len(e.chans) > 0 {
			info.Channels = make(map[uint16]string, len(e.chans))
			for n, p := range e.chans {
				info.Channels[n] = p
			}
		}
		if h := e.relay; h != nil {
			info.BytesToPeer = h.toPeerBytes.Load()
			info.PacketsToPeer = h.toPeerPkts.Load()
			info.BytesFromPeer = h.fromPeerBytes.Load()
			info.PacketsFromPeer = h.fromPeerPkts.Load()
		}
		out = append(out, info)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Relay < out[j].Relay
	})
	return out
}

// STUN constants needed to read the LIFETIME of the server's own responses.
const (
	stunHeaderLen     = 20
	stunMagicCookie   = 0x2112A442
	typeAllocateOK    = 0x0103
	typeRefreshOK     = 0x0104
	attrLifetime      = 0x000D
	maxAttrsInspected = 32
)

// responseLifetime returns the LIFETIME of an Allocate or Refresh success
// response the server is sending, if b is one. It reads only what the
// server itself built, but still never trusts a length.
func responseLifetime(b []byte) (time.Duration, bool) {
	if len(b) < stunHeaderLen || b[0] != 0x01 || (b[1] != 0x03 && b[1] != 0x04) {
		return 0, false
	}
	v, ok := findAttr(b, attrLifetime)
	if !ok || len(v) != 4 {
		return 0, false
	}
	return time.Duration(binary.BigEndian.Uint32(v)) * time.Second, true
}
