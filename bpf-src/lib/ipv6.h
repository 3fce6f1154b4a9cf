// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* IPv6 on the endpoint paths: parsing, conntrack (mb_ct6), local endpoints by address (mb_lxc6),
 * ipcache and policy lookups, service DNAT (mb_lb6_*; slots and Maglev tables are shared with
 * IPv4, service ids being unique across families) with reverse NAT through mb_lb6_reverse_nat,
 * events (a translated service flow's events carry its service address as orig_daddr). The IPv6
 * L7 redirect (mb_proxy6) is in lib/proxy.h, the endpoint walk in lib/lxc6.h. */
#pragma once

#include "lib/common.h"
#include "lib/conntrack.h"
#include "lib/drop_reasons.h"
#include "lib/ipcache.h"
#include "lib/lb.h"
#include "lib/policy.h"
#include "lib/trace.h"

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6		58
#endif

#define ICMPV6_ECHO_REQUEST	128
#define ICMPV6_ECHO_REPLY	129
#define ICMPV6_ND_FIRST		133	/* router solicitation .. redirect (133..137) */
#define ICMPV6_ND_LAST		137

union mb_v6addr {
	__u8   b[16];
	__u32  w[4];
	__u64  d[2];
};

struct mb_pkt6 {
	__u8   smac[6];
	__u8   dmac[6];
	union mb_v6addr saddr;
	union mb_v6addr daddr;
	__be16 sport;
	__be16 dport;
	__u8   proto;
	__u8   tcp_flags;
	__u16  icmp_type_code;
	__u32  l4_off;
	__u32  len;
	/* ICMPv6 errors (destination unreachable, packet too big, time exceeded, parameter
	 * problem): the packet they are about (inner header without extension headers). */
	__u8   related;
	__u8   in_proto;
	__be16 in_sport;
	__be16 in_dport;
	__u16  pad;
	union mb_v6addr in_saddr;
	union mb_v6addr in_daddr;
};

#define ICMPV6_DEST_UNREACH	1
#define ICMPV6_PARAMPROB	4	/* 1..4 are the error messages */

/* Read the inner packet of an ICMPv6 error: TCP/UDP ports, or an echo's identifier (as
 * mb_parse6 reads it for the echo itself). */
static __always_inline void mb_parse6_related(struct __sk_buff *skb, struct mb_pkt6 *p)
{
	struct {
		struct ipv6hdr ip;
		__be16 l4[4];
	} __attribute__((packed)) in;

	if (bpf_skb_load_bytes(skb, p->l4_off + 8, &in, sizeof(in)) < 0)
		return;
	if (in.ip.version != 6)
		return;
	p->in_proto = in.ip.nexthdr;
	p->in_sport = 0;
	p->in_dport = 0;
	switch (in.ip.nexthdr) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		p->in_sport = in.l4[0];
		p->in_dport = in.l4[1];
		break;
	case IPPROTO_ICMPV6: {
		__u8 type = bpf_ntohs(in.l4[0]) >> 8;

		if (type == ICMPV6_ECHO_REQUEST)
			p->in_sport = in.l4[2];
		else if (type == ICMPV6_ECHO_REPLY)
			p->in_dport = in.l4[2];
		else
			return;
		break;
	}
	default:
		return;
	}
	__builtin_memcpy(&p->in_saddr, &in.ip.saddr, 16);
	__builtin_memcpy(&p->in_daddr, &in.ip.daddr, 16);
	p->related = 1;
}

struct mb_ct_tuple6 {
	union mb_v6addr daddr;
	union mb_v6addr saddr;
	__be16 dport;
	__be16 sport;
	__u8   nexthdr;
	__u8   flags;
	__u16  pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mb_ct_tuple6);
	__type(value, struct mb_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_ct6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, union mb_v6addr);	/* endpoint IPv6 address */
	__type(value, struct mb_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lxc6 SEC(".maps");

static __always_inline bool mb_v6_eq(const union mb_v6addr *a, const __u8 *b)
{
	union mb_v6addr x;

	__builtin_memcpy(&x, b, 16);
	return a->d[0] == x.d[0] && a->d[1] == x.d[1];
}

/* Parse an IPv6 packet without extension headers. Returns 0, 1 for neighbour discovery (to be
 * passed without policy), or a DROP_* code. */
static __always_inline int mb_parse6(struct __sk_buff *skb, struct mb_pkt6 *p)
{
	struct {
		struct ethhdr eth;
		struct ipv6hdr ip;
	} __attribute__((packed)) h;

	if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) < 0)
		return DROP_INVALID;
	if (h.ip.version != 6)
		return DROP_INVALID;
	__builtin_memcpy(p->smac, h.eth.h_source, ETH_ALEN);
	__builtin_memcpy(p->dmac, h.eth.h_dest, ETH_ALEN);
	__builtin_memcpy(&p->saddr, &h.ip.saddr, 16);
	__builtin_memcpy(&p->daddr, &h.ip.daddr, 16);
	p->proto = h.ip.nexthdr;
	p->l4_off = ETH_HLEN + sizeof(struct ipv6hdr);
	p->len = skb->len;
	p->sport = 0;
	p->dport = 0;
	p->tcp_flags = 0;
	p->icmp_type_code = 0;
	p->related = 0;

	switch (h.ip.nexthdr) {
	case IPPROTO_TCP: {
		__u8 hdr[14];

		if (bpf_skb_load_bytes(skb, p->l4_off, hdr, sizeof(hdr)) < 0)
			return DROP_CT_INVALID_HDR;
		__builtin_memcpy(&p->sport, &hdr[0], 2);
		__builtin_memcpy(&p->dport, &hdr[2], 2);
		p->tcp_flags = hdr[13];
		return 0;
	}
	case IPPROTO_UDP: {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)) < 0)
			return DROP_CT_INVALID_HDR;
		p->sport = ports[0];
		p->dport = ports[1];
		return 0;
	}
	case IPPROTO_ICMPV6: {
		__u8 hdr[8];

		if (bpf_skb_load_bytes(skb, p->l4_off, hdr, sizeof(hdr)) < 0)
			return DROP_CT_INVALID_HDR;
		p->icmp_type_code = ((__u16)hdr[0] << 8) | hdr[1];
		if (hdr[0] >= ICMPV6_ND_FIRST && hdr[0] <= ICMPV6_ND_LAST)
			return 1;
		if (hdr[0] == ICMPV6_ECHO_REQUEST)
			__builtin_memcpy(&p->sport, &hdr[4], 2);
		else if (hdr[0] == ICMPV6_ECHO_REPLY)
			__builtin_memcpy(&p->dport, &hdr[4], 2);
		else if (hdr[0] >= ICMPV6_DEST_UNREACH && hdr[0] <= ICMPV6_PARAMPROB)
			mb_parse6_related(skb, p);
		return 0;
	}
	default:
		/* Extension headers (hop-by-hop for MLD, fragments, ...) are not followed. */
		return DROP_INVALID_EXTHDR;
	}
}

static __always_inline __be16 mb_policy_port6(const struct mb_pkt6 *p)
{
	if (p->proto == IPPROTO_ICMPV6)
		return bpf_htons(p->icmp_type_code >> 8);
	return p->dport;
}

static __always_inline __u32 mb_ipcache_identity6(const union mb_v6addr *addr)
{
	struct mb_ipcache_key key = {
		.prefixlen = MB_IPCACHE_STATIC_PREFIX + 128,
		.family = MB_IPCACHE_FAMILY_V6,
	};
	struct mb_ipcache_value *v;

	__builtin_memcpy(key.ip, addr, 16);
	v = bpf_map_lookup_elem(&mb_ipcache, &key);
	return v ? v->identity : MB_ID_WORLD;
}

/* Reverse NAT of an IPv6 service: what replies' source becomes. */
struct mb_lb6_revnat {
	union mb_v6addr address;
	__be16 port;
	__u16  pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);	/* rev_nat_index */
	__type(value, struct mb_lb6_revnat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb6_reverse_nat SEC(".maps");

static __always_inline void mb_event_fill6(struct mb_event *ev, struct __sk_buff *skb,
					   const struct mb_pkt6 *p, const struct mb_trace_ctx *t)
{
	ev->direction = t->direction;
	ev->flags = t->flags | MB_EVF_IPV6;
	ev->protocol = p->proto;
	ev->tcp_flags = p->tcp_flags;
	ev->endpoint_id = t->endpoint_id;
	ev->proxy_port = t->proxy_port;
	ev->ifindex = skb->ifindex;
	ev->src_identity = t->src_identity;
	ev->dst_identity = t->dst_identity;
	ev->len = p->len;
	ev->ktime_ns = bpf_ktime_get_ns();
	ev->sport = bpf_ntohs(p->sport);
	ev->dport = bpf_ntohs(p->dport);
	ev->icmp_type_code = p->icmp_type_code;
	__builtin_memcpy(ev->saddr, &p->saddr, 16);
	__builtin_memcpy(ev->daddr, &p->daddr, 16);
	__builtin_memcpy(ev->smac, p->smac, 6);
	__builtin_memcpy(ev->dmac, p->dmac, 6);
	/* A translated service flow: the trace context has room for an IPv4 address only, so
	 * for IPv6 its orig_daddr carries the service id and the service address comes from
	 * mb_lb6_reverse_nat (what @membrane/flows matches the service frontend by). */
	if ((t->flags & MB_EVF_NAT) && t->orig_daddr) {
		__u32 idx = t->orig_daddr;
		struct mb_lb6_revnat *rn = bpf_map_lookup_elem(&mb_lb6_reverse_nat, &idx);

		if (rn) {
			__builtin_memcpy(ev->orig_daddr, &rn->address, 16);
			ev->orig_dport = bpf_ntohs(rn->port);
		}
	}
}

static __always_inline int mb_drop6(struct __sk_buff *skb, const struct mb_pkt6 *p,
				    const struct mb_trace_ctx *t, int reason)
{
	__u8 r = (__u8)(-reason);
	struct mb_event *ev;

	mb_count(r, t->direction, p->len);
	ev = mb_event_reserve();
	if (ev) {
		mb_event_fill6(ev, skb, p, t);
		ev->type = MB_EVENT_DROP;
		ev->subtype = r;
		bpf_ringbuf_submit(ev, 0);
	}
	return TC_ACT_SHOT;
}

static __always_inline void mb_event6(struct __sk_buff *skb, const struct mb_pkt6 *p,
				      const struct mb_trace_ctx *t, __u8 type, __u8 subtype)
{
	struct mb_event *ev = mb_event_reserve();

	if (!ev)
		return;
	mb_event_fill6(ev, skb, p, t);
	ev->type = type;
	ev->subtype = subtype;
	ev->match_type = t->match_type;
	ev->action = t->action;
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline enum mb_ct_status mb_ct_lookup6(const struct mb_pkt6 *p,
						       struct mb_ct_tuple6 *tuple,
						       struct mb_ct_entry **entry)
{
	struct mb_ct_tuple6 rev = {};
	struct mb_ct_entry *e;

	__builtin_memcpy(&tuple->daddr, &p->daddr, 16);
	__builtin_memcpy(&tuple->saddr, &p->saddr, 16);
	tuple->dport = p->dport;
	tuple->sport = p->sport;
	tuple->nexthdr = p->proto;
	e = bpf_map_lookup_elem(&mb_ct6, tuple);
	if (e) {
		*entry = e;
		return MB_CT_ESTABLISHED;
	}
	__builtin_memcpy(&rev.daddr, &p->saddr, 16);
	__builtin_memcpy(&rev.saddr, &p->daddr, 16);
	rev.dport = p->sport;
	rev.sport = p->dport;
	rev.nexthdr = p->proto;
	e = bpf_map_lookup_elem(&mb_ct6, &rev);
	*entry = e;
	return e ? MB_CT_REPLY : MB_CT_NEW;
}

/* An ICMPv6 error about a tracked connection (its inner packet's tuple, either way round) is
 * related traffic: it passes without a policy lookup, like a reply (Packet Too Big must reach
 * the sender for path MTU discovery). Its inner header is not translated back for service
 * flows. */
static __always_inline bool mb_ct_related6(const struct mb_pkt6 *p)
{
	struct mb_ct_tuple6 t = {};

	if (!p->related)
		return false;
	__builtin_memcpy(&t.daddr, &p->in_daddr, 16);
	__builtin_memcpy(&t.saddr, &p->in_saddr, 16);
	t.dport = p->in_dport;
	t.sport = p->in_sport;
	t.nexthdr = p->in_proto;
	if (bpf_map_lookup_elem(&mb_ct6, &t))
		return true;
	__builtin_memcpy(&t.daddr, &p->in_saddr, 16);
	__builtin_memcpy(&t.saddr, &p->in_daddr, 16);
	t.dport = p->in_sport;
	t.sport = p->in_dport;
	return bpf_map_lookup_elem(&mb_ct6, &t) != NULL;
}

static __always_inline int mb_ct_create6(const struct mb_ct_tuple6 *tuple, struct mb_ct_entry *e,
					 __u8 tcp_flags, __u32 len, __u64 now)
{
#ifdef MB_CT_CREATE_DISABLED
	return 0;
#endif
	e->created_ns = now;
	e->packets = 1;
	e->bytes = len;
	e->tx_flags_seen = tcp_flags;
	if (tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		e->flags |= MB_CT_F_TX_CLOSING;
	e->expires_ns = now + mb_ct_lifetime(e, tuple->nexthdr);
	return bpf_map_update_elem(&mb_ct6, tuple, e, BPF_ANY);
}

struct mb_lb6_key {
	union mb_v6addr address;
	__be16 dport;
	__u8   proto;
	__u8   scope;		/* reserved, 0 */
};

struct mb_lb6_backend {
	union mb_v6addr address;
	__be16 port;
	__u8   proto;
	__u8   flags;		/* MB_BACKEND_F_* */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mb_lb6_key);
	__type(value, struct mb_lb4_service);	/* same record as IPv4 */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb6_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);	/* backend id (one id space with mb_lb4_backends) */
	__type(value, struct mb_lb6_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb6_backends SEC(".maps");

/* Cilium's hash_from_tuple_v6; the TS twin is @membrane/maglev flowHash on an IPv6 source. */
static __always_inline __u32 mb_lb6_flow_hash(const union mb_v6addr *saddr, __be16 sport,
					      __be16 dport, __u8 proto, __u32 seed)
{
	__u32 a = saddr->w[0], b = saddr->w[1], c = saddr->w[2];

	mb_jhash_mix(a, b, c);
	a += saddr->w[3];
	b += ((__u32)dport << 16) | sport;
	c += proto;
	mb_jhash_mix(a, b, c);
	a += seed;
	mb_jhash_final(a, b, c);
	return c;
}

static __always_inline __u32 mb_lb6_select(const struct mb_lb4_service *svc,
					   const union mb_v6addr *saddr, __be16 sport,
					   __be16 dport, __u8 proto, __u32 seed)
{
	if (svc->count == 0)
		return 0;
	if (svc->algorithm == MB_LB_ALG_MAGLEV) {
		__u32 key = svc->rev_nat_index;
		struct mb_lb_maglev *t = bpf_map_lookup_elem(&mb_lb_maglev, &key);

		if (t) {
			__u32 idx = mb_lb6_flow_hash(saddr, sport, dport, proto, seed) %
				    MB_MAGLEV_TABLE_SIZE;

			asm volatile("" : "+r"(idx));
			if (idx < MB_MAGLEV_TABLE_SIZE)
				return t->backend_ids[idx];
		}
	}
	struct mb_lb_slot_key sk = {
		.rev_nat_index = svc->rev_nat_index,
		.slot = (bpf_get_prandom_u32() % svc->count) + 1,
	};
	__u32 *id = bpf_map_lookup_elem(&mb_lb_slots, &sk);

	return id ? *id : 0;
}

#define MB_IP6_SADDR_OFF	(ETH_HLEN + 8)
#define MB_IP6_DADDR_OFF	(ETH_HLEN + 24)

/* Rewrite the destination (dst) or source address and port of a TCP/UDP packet. IPv6 has no
 * header checksum; the L4 checksum gets the address difference as a pseudo-header change. */
static __always_inline int mb_nat6(struct __sk_buff *skb, struct mb_pkt6 *p, bool dst,
				   const union mb_v6addr *new_addr, __be16 new_port)
{
	union mb_v6addr old, neu;
	__be16 old_port = dst ? p->dport : p->sport;
	__u32 csum_off;
	__u64 mangled = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__s64 diff;

	if (p->proto == IPPROTO_TCP)
		csum_off = p->l4_off + 16;
	else if (p->proto == IPPROTO_UDP)
		csum_off = p->l4_off + 6;
	else
		return DROP_UNSUPP_SERVICE_PROTO;
	__builtin_memcpy(&old, dst ? &p->daddr : &p->saddr, 16);
	__builtin_memcpy(&neu, new_addr, 16);
	diff = bpf_csum_diff((__be32 *)&old, 16, (__be32 *)&neu, 16, 0);
	if (diff < 0)
		return DROP_CSUM_L4;
	if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | mangled) < 0)
		return DROP_CSUM_L4;
	if (bpf_skb_store_bytes(skb, dst ? MB_IP6_DADDR_OFF : MB_IP6_SADDR_OFF, &neu, 16, 0) < 0)
		return DROP_WRITE_ERROR;
	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port,
					mangled | sizeof(new_port)) < 0)
			return DROP_CSUM_L4;
		if (bpf_skb_store_bytes(skb, p->l4_off + (dst ? 2 : 0), &new_port,
					sizeof(new_port), 0) < 0)
			return DROP_WRITE_ERROR;
	}
	if (dst) {
		__builtin_memcpy(&p->daddr, &neu, 16);
		p->dport = new_port;
	} else {
		__builtin_memcpy(&p->saddr, &neu, 16);
		p->sport = new_port;
	}
	return 0;
}

/* Service translation of a workload's IPv6 packet. `st` is the packet's tuple before DNAT
 * (flags 0): the service selection is looked up and stored under it with
 * MB_CT_TUPLE_F_SERVICE, and it is left as it came (the caller reuses it; the endpoint
 * programs' stack has no room for a copy). Returns 0 (no service: *rev_nat_index 0), 0 with
 * *rev_nat_index set (translated), or a DROP_* code. */
static __always_inline int mb_lb6_translate(struct __sk_buff *skb, struct mb_pkt6 *p,
					    const struct mb_endpoint *ep,
					    const struct mb_config *cfg, struct mb_ct_tuple6 *st,
					    __u16 *rev_nat_index, __u64 now)
{
	struct mb_lb6_key key = { .dport = p->dport, .proto = p->proto };
	struct mb_lb4_service *svc;
	struct mb_lb6_backend *be = NULL;
	struct mb_ct_entry *sct;
	__u32 backend_id = 0;

	__builtin_memcpy(&key.address, &p->daddr, 16);
	svc = bpf_map_lookup_elem(&mb_lb6_services, &key);
	if (!svc)
		return 0;
	st->flags = MB_CT_TUPLE_F_SERVICE;
	sct = bpf_map_lookup_elem(&mb_ct6, st);
	if (sct) {
		backend_id = sct->backend_id;
		be = bpf_map_lookup_elem(&mb_lb6_backends, &backend_id);
		if (be)
			mb_ct_touch(sct, p->proto, p->tcp_flags, p->len, false, now);
	}
	if (!be) {
		backend_id = mb_lb6_select(svc, &p->saddr, p->sport, p->dport, p->proto,
					   cfg ? cfg->hash_seed6 : 0);
		be = backend_id ? bpf_map_lookup_elem(&mb_lb6_backends, &backend_id) : NULL;
		if (!be) {
			st->flags = 0;
			return DROP_NO_SERVICE;
		}
		struct mb_ct_entry se = {
			.src_identity = ep->identity,
			.backend_id = backend_id,
			.rev_nat_index = svc->rev_nat_index,
			.flags = MB_CT_F_SERVICE,
			.endpoint_id = (__u16)ep->endpoint_id,
		};
		mb_ct_create6(st, &se, p->tcp_flags, p->len, now);
	}
	st->flags = 0;
	*rev_nat_index = svc->rev_nat_index;
	return mb_nat6(skb, p, true, &be->address, be->port);
}
