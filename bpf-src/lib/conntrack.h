// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Connection tracking: one LRU hash shared by every endpoint program. The key is the tuple as
 * the first packet carried it (after service DNAT); a lookup tries the packet's tuple
 * (established) and then the reversed tuple (reply). Entries expire by time: user space
 * (@membrane/datapath CtMap.gc) deletes those whose expires_ns passed; the LRU evicts the
 * rest under pressure. A service selection is stored under the pre-DNAT tuple with
 * MB_CT_TUPLE_F_SERVICE so later packets keep their backend (draining). */
#pragma once

#include "lib/common.h"

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

/* mb_ct_entry.flags */
#define MB_CT_F_REV_NAT		(1 << 0)	/* replies get saddr/sport = rev_nat_addr/port */
#define MB_CT_F_PROXY_REDIRECT	(1 << 1)	/* packets of this flow go to proxy_port */
#define MB_CT_F_TX_CLOSING	(1 << 2)	/* FIN/RST seen from the originator */
#define MB_CT_F_RX_CLOSING	(1 << 3)	/* FIN/RST seen from the replier */
#define MB_CT_F_SEEN_REPLY	(1 << 4)
#define MB_CT_F_SERVICE		(1 << 5)	/* a service selection (backend_id valid) */
#define MB_CT_F_FROM_PROXY	(1 << 6)	/* opened by the L7 proxy (skb mark) */
#define MB_CT_F_HAIRPIN		(1 << 7)	/* service flow whose client is its backend */

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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct mb_ct_tuple4);
	__type(value, struct mb_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_ct4 SEC(".maps");

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

static __always_inline void mb_ct_reverse4(const struct mb_ct_tuple4 *t, struct mb_ct_tuple4 *r)
{
	r->daddr = t->saddr;
	r->saddr = t->daddr;
	r->dport = t->sport;
	r->sport = t->dport;
	r->nexthdr = t->nexthdr;
	r->flags = t->flags;
	r->pad = 0;
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

/* Look a packet's tuple up: ESTABLISHED (forward hit), REPLY (reverse hit) or NEW. */
static __always_inline enum mb_ct_status mb_ct_lookup4(const struct mb_ct_tuple4 *tuple,
						       struct mb_ct_entry **entry)
{
	struct mb_ct_tuple4 rev;
	struct mb_ct_entry *e;

	e = bpf_map_lookup_elem(&mb_ct4, tuple);
	if (e) {
		*entry = e;
		return MB_CT_ESTABLISHED;
	}
	mb_ct_reverse4(tuple, &rev);
	e = bpf_map_lookup_elem(&mb_ct4, &rev);
	if (e) {
		*entry = e;
		return MB_CT_REPLY;
	}
	*entry = NULL;
	return MB_CT_NEW;
}

static __always_inline int mb_ct_create4(const struct mb_ct_tuple4 *tuple, struct mb_ct_entry *e,
					 __u8 tcp_flags, __u32 len, __u64 now)
{
#ifdef MB_CT_CREATE_DISABLED
	/* Benchmark objects measure the new-connection path over and over. */
	return 0;
#endif
	e->created_ns = now;
	e->packets = 1;
	e->bytes = len;
	e->tx_flags_seen = tcp_flags;
	if (tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		e->flags |= MB_CT_F_TX_CLOSING;
	e->expires_ns = now + mb_ct_lifetime(e, tuple->nexthdr);
	return bpf_map_update_elem(&mb_ct4, tuple, e, BPF_ANY);
}
