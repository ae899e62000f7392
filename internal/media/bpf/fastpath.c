// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The media relay's in-kernel fast path: a tcx ingress program that
// forwards the RTP of latched streams without waking user space. An entry
// in the flows map, keyed by (relay address:port, peer address:port),
// says which relay address:port the datagram leaves from and where it
// goes. Anything without an entry, and anything on an entry that is not
// RTP (STUN, DTLS, RTCP, keep-alives without RTP), goes up the stack to
// the relay's sockets unchanged.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Debian 12's UAPI headers predate tcx (Linux 6.6).
#ifndef TCX_NEXT
#define TCX_NEXT -1
#define TCX_PASS 0
#endif

struct flow_key {
	__be32 local_addr;  // the relay socket the datagram was sent to
	__be32 peer_addr;   // its source
	__be16 local_port;
	__be16 peer_port;
};

struct flow_value {
	__be32 src_addr;    // the relay socket it leaves from
	__be32 dst_addr;    // the other leg's peer
	__be16 src_port;
	__be16 dst_port;
	__u32 ifindex;      // the interface carrying src_addr

	__u64 packets;
	__u64 bytes;        // UDP payload bytes, as the relay counts them
	__u64 last_ns;      // bpf_ktime_get_ns of the last packet (CLOCK_MONOTONIC)
	__be32 ssrc;        // SSRC and sequence number of the last packet, which
	__be16 seq;         // user space needs to judge a re-latch
	__u16 flags;        // FLOW_LOOPBACK: ifindex is a loopback device
};

#define FLOW_LOOPBACK 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
	__uint(max_entries, 1024); // resized by the loader from the port ranges
} flows SEC(".maps");

// Global counters: [0] redirected by route and neighbour (bpf_redirect_neigh),
// [1] sent again on loopback (bpf_redirect).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} totals SEC(".maps");

#define IP_CSUM_OFF (ETH_HLEN + __builtin_offsetof(struct iphdr, check))

static __always_inline void bump(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&totals, &i);
	if (v)
		*v += 1;
}

SEC("tc")
int relay_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TCX_NEXT;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return TCX_NEXT;
	if (ip->frag_off & bpf_htons(0x3fff)) // fragment or more fragments
		return TCX_NEXT;
	struct udphdr *udp = (void *)(ip + 1);
	__u8 *rtp = (void *)(udp + 1);
	if (rtp + 12 > (__u8 *)end)
		return TCX_NEXT;
	// RTP version 2, not RTCP (payload types 192..223 are RTCP, RFC 5761):
	// everything else stays with user space.
	if ((rtp[0] & 0xc0) != 0x80 || (rtp[1] >= 192 && rtp[1] <= 223))
		return TCX_NEXT;

	struct flow_key k = {
		.local_addr = ip->daddr,
		.peer_addr = ip->saddr,
		.local_port = udp->dest,
		.peer_port = udp->source,
	};
	struct flow_value *v = bpf_map_lookup_elem(&flows, &k);
	if (!v)
		return TCX_NEXT;

	__be32 osrc = ip->saddr, odst = ip->daddr;
	__be16 osport = udp->source, odport = udp->dest;
	__be32 nsrc = v->src_addr, ndst = v->dst_addr;
	__be16 nsport = v->src_port, ndport = v->dst_port;
	__u64 payload = bpf_ntohs(udp->len) - sizeof(struct udphdr);
	int has_csum = udp->check != 0;

	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, payload);
	v->last_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&v->ssrc, rtp + 8, 4);
	__builtin_memcpy(&v->seq, rtp + 2, 2);

	const int l4 = ETH_HLEN + sizeof(struct iphdr);
	const int ucsum = l4 + __builtin_offsetof(struct udphdr, check);
	if (has_csum) {
		__u64 f = BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0;
		bpf_l4_csum_replace(skb, ucsum, osrc, nsrc, f | 4);
		bpf_l4_csum_replace(skb, ucsum, odst, ndst, f | 4);
		bpf_l4_csum_replace(skb, ucsum, osport, nsport, BPF_F_MARK_MANGLED_0 | 2);
		bpf_l4_csum_replace(skb, ucsum, odport, ndport, BPF_F_MARK_MANGLED_0 | 2);
	}
	bpf_l3_csum_replace(skb, IP_CSUM_OFF, osrc, nsrc, 4);
	bpf_l3_csum_replace(skb, IP_CSUM_OFF, odst, ndst, 4);
	bpf_skb_store_bytes(skb, ETH_HLEN + __builtin_offsetof(struct iphdr, saddr), &nsrc, 4, 0);
	bpf_skb_store_bytes(skb, ETH_HLEN + __builtin_offsetof(struct iphdr, daddr), &ndst, 4, 0);
	bpf_skb_store_bytes(skb, l4 + __builtin_offsetof(struct udphdr, source), &nsport, 2, 0);
	bpf_skb_store_bytes(skb, l4 + __builtin_offsetof(struct udphdr, dest), &ndport, 2, 0);

	// From loopback to loopback the rewritten datagram is sent again on
	// lo, so that it passes lo's capture point like any datagram sent
	// there, and comes back up to the socket its new destination names
	// (no entry matches it on the way in); it keeps the route its sender
	// gave it. A datagram that arrived on another interface has no route,
	// and one toward 127.0.0.0/8 without a route is a martian on lo's
	// way in: it leaves by bpf_redirect_neigh as below, which gives it
	// the local route.
	if ((v->flags & FLOW_LOOPBACK) && skb->ifindex == v->ifindex) {
		bump(1);
		return bpf_redirect(v->ifindex, 0);
	}
	// Elsewhere it leaves through the interface that carries the relay
	// address it now comes from, to the next hop the routing table gives
	// (bpf_redirect_neigh does the output route and neighbour look-ups,
	// with no need for IP forwarding).
	bump(0);
	return bpf_redirect_neigh(v->ifindex, 0, 0, 0);
}

char __license[] SEC("license") = "Dual BSD/GPL";
