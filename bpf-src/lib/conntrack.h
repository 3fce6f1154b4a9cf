// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Connection tracking: one LRU hash per address family (mb_ct4, mb_ct6) shared by every
 * endpoint program, with one entry type and one set of lifetimes. The lookup, the related-ICMP
 * check and the insert are family-generic cores taking the map and a tuple pointer (both tuple
 * layouts are {daddr, saddr, dport, sport, nexthdr, flags}, addresses of MB_CT_ALEN4/6 bytes);
 * the per-family functions are thin wrappers. The key is the tuple as
 * the first packet carried it (after service DNAT); a lookup tries the packet's tuple
 * (established) and then the reversed tuple (reply). Entries expire by time: user space
 * (@membrane/datapath CtMap.gc) deletes those whose expires_ns passed; the LRU evicts the
 * rest under pressure. A service selection is stored under the pre-DNAT tuple with
 * MB_CT_TUPLE_F_SERVICE so later packets keep their backend (draining). */
#pragma once

#include "lib/common.h"
#include "lib/parse.h"
#include "lib/test_hooks.h"

#define MB_CT_TUPLE_F_SERVICE	(1 << 0)

struct mb_ct_tuple4 {
	__be32 daddr;
	__be32 saddr;
	__be16 dport;
	__be16 sport;
	__u8   nexthdr;
	__u8   flags;		/* MB_CT_TUPLE_F_* */
	__u16  pad;
};

struct mb_ct_tuple6 {
	union mb_v6addr daddr;
	union mb_v6addr saddr;
	__be16 dport;
	__be16 sport;
	__u8   nexthdr;
	__u8   flags;		/* MB_CT_TUPLE_F_* */
	__u16  pad;
};

#define MB_CT_ALEN4	4
#define MB_CT_ALEN6	16

/* mb_ct_entry.flags */
#define MB_CT_F_REV_NAT		(1 << 0)	/* replies get saddr/sport = rev_nat_addr/port */
#define MB_CT_F_PROXY_REDIRECT	(1 << 1)	/* packets of this flow go to proxy_port */
#define MB_CT_F_TX_CLOSING	(1 << 2)	/* FIN/RST seen from the originator */
#define MB_CT_F_RX_CLOSING	(1 << 3)	/* FIN/RST seen from the replier */
#define MB_CT_F_SEEN_REPLY	(1 << 4)
#define MB_CT_F_SERVICE		(1 << 5)	/* a service selection (backend_id valid) */
#define MB_CT_F_FROM_PROXY	(1 << 6)	/* opened by the L7 proxy (skb mark) */
#define MB_CT_F_HAIRPIN		(1 << 7)	/* service flow whose client is its backend */
#define MB_CT_F_OVERLAY		(1 << 8)	/* the peer is behind another node's tunnel endpoint */

struct mb_ct_entry {
	__u64  expires_ns;	/* mb_ct_now() deadline (CLOCK_MONOTONIC, coarse) */
	__u64  packets;		/* both directions */
	__u64  bytes;
	__u32  src_identity;	/* identity of the originator */
	__u32  backend_id;	/* MB_CT_F_SERVICE: the selected backend */
	__be32 rev_nat_addr;	/* MB_CT_F_REV_NAT: source address replies get */
	__be16 rev_nat_port;
	__u16  rev_nat_index;	/* service id (0: none) */
	__u16  flags;		/* MB_CT_F_* */
	__u16  proxy_port;	/* MB_CT_F_PROXY_REDIRECT */
	__u16  endpoint_id;	/* endpoint whose program created the entry */
	__u8   tx_flags_seen;	/* TCP flags seen from the originator */
	__u8   rx_flags_seen;	/* TCP flags seen from the replier */
	__u64  created_ns;
};

/* Lifetimes (Cilium's defaults). */
#define MB_CT_SYN_TIMEOUT	(60ULL * NSEC_PER_SEC)
#define MB_CT_TCP_TIMEOUT	(21600ULL * NSEC_PER_SEC)
#define MB_CT_NONTCP_TIMEOUT	(60ULL * NSEC_PER_SEC)
#define MB_CT_CLOSE_TIMEOUT	(10ULL * NSEC_PER_SEC)
#define MB_CT_SERVICE_TIMEOUT	MB_CT_TCP_TIMEOUT

/* Both families get the same capacity: a dual-stack workload opens as many connections over
 * one as over the other. */
#define MB_CT_MAP_SIZE		131072

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MB_CT_MAP_SIZE);
	__type(key, struct mb_ct_tuple4);
	__type(value, struct mb_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_ct4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MB_CT_MAP_SIZE);
	__type(key, struct mb_ct_tuple6);
	__type(value, struct mb_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_ct6 SEC(".maps");

/* Conntrack's clock: CLOCK_MONOTONIC at tick resolution. Lifetimes are seconds, and the coarse
 * read skips the clocksource access a precise one costs on every packet. User space compares
 * expires_ns with its own CLOCK_MONOTONIC (which is at most a tick ahead). */
static __always_inline __u64 mb_ct_now(void)
{
	return bpf_ktime_get_coarse_ns();
}

enum mb_ct_status {
	MB_CT_NEW = 0,
	MB_CT_ESTABLISHED = 1,
	MB_CT_REPLY = 2,
};

/* Swap a tuple's addresses and ports in place (alen: MB_CT_ALEN4 or MB_CT_ALEN6). */
static __always_inline void __mb_ct_reverse(void *tuple, __u32 alen)
{
	__u8 *t = tuple;
	__u8 tmp[16];
	__be16 port;

	__builtin_memcpy(tmp, t, alen);
	__builtin_memcpy(t, t + alen, alen);
	__builtin_memcpy(t + alen, tmp, alen);
	__builtin_memcpy(&port, t + 2 * alen, 2);
	__builtin_memcpy(t + 2 * alen, t + 2 * alen + 2, 2);
	__builtin_memcpy(t + 2 * alen + 2, &port, 2);
}

static __always_inline __u64 mb_ct_lifetime(const struct mb_ct_entry *e, __u8 proto)
{
	if (proto != IPPROTO_TCP)
		return MB_CT_NONTCP_TIMEOUT;
	if ((e->flags & (MB_CT_F_TX_CLOSING | MB_CT_F_RX_CLOSING)) ==
	    (MB_CT_F_TX_CLOSING | MB_CT_F_RX_CLOSING) ||
	    ((e->tx_flags_seen | e->rx_flags_seen) & TCP_FLAG_RST))
		return MB_CT_CLOSE_TIMEOUT;
	if (!(e->flags & MB_CT_F_SEEN_REPLY))
		return MB_CT_SYN_TIMEOUT;
	return MB_CT_TCP_TIMEOUT;
}

/* Account one packet on an entry and refresh its deadline. `reply` is the packet direction
 * relative to the originator. */
static __always_inline void mb_ct_touch(struct mb_ct_entry *e, __u8 proto, __u8 tcp_flags,
					__u32 len, bool reply, __u64 now)
{
	__u16 flags = e->flags;

	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, len);
	if (reply) {
		flags |= MB_CT_F_SEEN_REPLY;
		if (tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
			flags |= MB_CT_F_RX_CLOSING;
		if ((e->rx_flags_seen | tcp_flags) != e->rx_flags_seen)
			e->rx_flags_seen |= tcp_flags;
	} else {
		if (tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
			flags |= MB_CT_F_TX_CLOSING;
		if ((e->tx_flags_seen | tcp_flags) != e->tx_flags_seen)
			e->tx_flags_seen |= tcp_flags;
	}
	/* A new SYN on a closing entry reopens it (port reuse). */
	if (!reply && (tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN &&
	    (flags & (MB_CT_F_TX_CLOSING | MB_CT_F_RX_CLOSING))) {
		flags &= ~(MB_CT_F_TX_CLOSING | MB_CT_F_RX_CLOSING | MB_CT_F_SEEN_REPLY);
		e->tx_flags_seen = tcp_flags;
		e->rx_flags_seen = 0;
	}
	if (flags != e->flags)
		e->flags = flags;
	e->expires_ns = now + mb_ct_lifetime(e, proto);
}

/* Look a packet's tuple up: ESTABLISHED (forward hit), REPLY (reverse hit) or NEW. The tuple
 * is reversed for the second lookup and put back before returning. */
static __always_inline enum mb_ct_status __mb_ct_lookup(void *map, void *tuple, __u32 alen,
							struct mb_ct_entry **entry)
{
	struct mb_ct_entry *e;

	e = bpf_map_lookup_elem(map, tuple);
	if (e) {
		*entry = e;
		return MB_CT_ESTABLISHED;
	}
	__mb_ct_reverse(tuple, alen);
	e = bpf_map_lookup_elem(map, tuple);
	__mb_ct_reverse(tuple, alen);
	*entry = e;
	return e ? MB_CT_REPLY : MB_CT_NEW;
}

static __always_inline enum mb_ct_status mb_ct_lookup4(struct mb_ct_tuple4 *tuple,
						       struct mb_ct_entry **entry)
{
	return __mb_ct_lookup(&mb_ct4, tuple, MB_CT_ALEN4, entry);
}

static __always_inline enum mb_ct_status mb_ct_lookup6(struct mb_ct_tuple6 *tuple,
						       struct mb_ct_entry **entry)
{
	return __mb_ct_lookup(&mb_ct6, tuple, MB_CT_ALEN6, entry);
}

/* Insert a new entry for `tuple` (its first packet: tcp_flags, len). */
static __always_inline int __mb_ct_create(void *map, const void *tuple, __u8 nexthdr,
					  struct mb_ct_entry *e, __u8 tcp_flags, __u32 len,
					  __u64 now)
{
	if (MB_TEST_CT_CREATE_SKIP())
		return 0;
	e->created_ns = now;
	e->packets = 1;
	e->bytes = len;
	e->tx_flags_seen = tcp_flags;
	if (tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		e->flags |= MB_CT_F_TX_CLOSING;
	e->expires_ns = now + mb_ct_lifetime(e, nexthdr);
	return bpf_map_update_elem(map, tuple, e, BPF_ANY);
}

static __always_inline int mb_ct_create4(const struct mb_ct_tuple4 *tuple, struct mb_ct_entry *e,
					 __u8 tcp_flags, __u32 len, __u64 now)
{
	return __mb_ct_create(&mb_ct4, tuple, tuple->nexthdr, e, tcp_flags, len, now);
}

static __always_inline int mb_ct_create6(const struct mb_ct_tuple6 *tuple, struct mb_ct_entry *e,
					 __u8 tcp_flags, __u32 len, __u64 now)
{
	return __mb_ct_create(&mb_ct6, tuple, tuple->nexthdr, e, tcp_flags, len, now);
}

/* The tuple of a parsed packet (flags 0). */
static __always_inline void mb_ct_tuple4_of(const struct mb_pkt4 *p, struct mb_ct_tuple4 *t)
{
	t->daddr = p->daddr;
	t->saddr = p->saddr;
	t->dport = p->dport;
	t->sport = p->sport;
	t->nexthdr = p->proto;
}

static __always_inline void mb_ct_tuple6_of(const struct mb_pkt6 *p, struct mb_ct_tuple6 *t)
{
	__builtin_memcpy(&t->daddr, &p->daddr, 16);
	__builtin_memcpy(&t->saddr, &p->saddr, 16);
	t->dport = p->dport;
	t->sport = p->sport;
	t->nexthdr = p->proto;
}

/* An ICMP error about a tracked connection (its inner packet's tuple, either way round) is
 * related traffic: it passes without a policy lookup, like a reply (IPv6's Packet Too Big must
 * reach the sender for path MTU discovery). Its inner header is not translated back for service
 * flows. */
static __always_inline bool mb_ct_related4(const struct mb_pkt4 *p)
{
	struct mb_ct_tuple4 t = {
		.daddr = p->in_daddr,
		.saddr = p->in_saddr,
		.dport = p->in_dport,
		.sport = p->in_sport,
		.nexthdr = p->in_proto,
	};
	struct mb_ct_entry *e;

	return p->related && __mb_ct_lookup(&mb_ct4, &t, MB_CT_ALEN4, &e) != MB_CT_NEW;
}

static __always_inline bool mb_ct_related6(const struct mb_pkt6 *p)
{
	struct mb_ct_tuple6 t = {
		.dport = p->in_dport,
		.sport = p->in_sport,
		.nexthdr = p->in_proto,
	};
	struct mb_ct_entry *e;

	if (!p->related)
		return false;
	__builtin_memcpy(&t.daddr, &p->in_daddr, 16);
	__builtin_memcpy(&t.saddr, &p->in_saddr, 16);
	return __mb_ct_lookup(&mb_ct6, &t, MB_CT_ALEN6, &e) != MB_CT_NEW;
}
