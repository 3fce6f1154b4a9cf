// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Emitting datapath events (lib/events.h records) from a parsed packet of either family:
 * drops, traces and policy verdicts, plus the per-CPU counters of lib/metrics.h. One core fills
 * the record from the family-neutral fields (__mb_event_fill); the addresses are per family. */
#pragma once

#include "lib/common.h"
#include "lib/events.h"
#include "lib/metrics.h"
#include "lib/lb.h"
#include "lib/parse.h"

/* What the endpoint program knows about a packet when it reports it. */
struct mb_trace_ctx {
	__u32 src_identity;
	__u32 dst_identity;
	__u16 endpoint_id;
	__u16 proxy_port;
	__u8  direction;	/* MB_DIR_* */
	__u8  flags;		/* MB_EVF_* */
	__u8  match_type;	/* MB_MATCH_* */
	__u8  action;		/* MB_ACTION_* */
	/* With MB_EVF_NAT, the service the client addressed: IPv4 carries its address here;
	 * IPv6's does not fit, so it carries the service id and the event takes the address
	 * from mb_lb6_reverse_nat (what @membrane/flows matches the service frontend by). */
	__be32 orig_daddr;	/* IPv4 */
	__be16 orig_dport;	/* IPv4 */
	__u16  rev_nat_index;	/* IPv6: service id */
	__u16  rule_set;	/* the policy verdict's mb_policy_entry.rule_set */
};

/* The family-neutral part of an event record. */
static __always_inline void __mb_event_fill(struct mb_event *ev, struct __sk_buff *skb,
					    const struct mb_trace_ctx *t, __u8 proto,
					    __u8 tcp_flags, __u32 len, __be16 sport, __be16 dport,
					    __u16 icmp_type_code, const __u8 *smac,
					    const __u8 *dmac)
{
	ev->direction = t->direction;
	ev->flags = t->flags;
	ev->protocol = proto;
	ev->tcp_flags = tcp_flags;
	ev->endpoint_id = t->endpoint_id;
	ev->proxy_port = t->proxy_port;
	ev->ifindex = skb->ifindex;
	ev->src_identity = t->src_identity;
	ev->dst_identity = t->dst_identity;
	ev->len = len;
	ev->ktime_ns = bpf_ktime_get_ns();
	ev->sport = bpf_ntohs(sport);
	ev->dport = bpf_ntohs(dport);
	ev->icmp_type_code = icmp_type_code;
	ev->rule_set = t->rule_set;
	__builtin_memcpy(ev->smac, smac, 6);
	__builtin_memcpy(ev->dmac, dmac, 6);
}

static __always_inline void mb_event_fill4(struct mb_event *ev, struct __sk_buff *skb,
					   const struct mb_pkt4 *p, const struct mb_trace_ctx *t)
{
	__mb_event_fill(ev, skb, t, p->proto, p->tcp_flags, p->len, p->sport, p->dport,
			p->icmp_type_code, p->smac, p->dmac);
	__builtin_memcpy(ev->saddr, &p->saddr, 4);
	__builtin_memcpy(ev->daddr, &p->daddr, 4);
	if (t->flags & MB_EVF_NAT) {
		ev->orig_dport = bpf_ntohs(t->orig_dport);
		__builtin_memcpy(ev->orig_daddr, &t->orig_daddr, 4);
	}
}

static __always_inline void mb_event_fill6(struct mb_event *ev, struct __sk_buff *skb,
					   const struct mb_pkt6 *p, const struct mb_trace_ctx *t)
{
	__mb_event_fill(ev, skb, t, p->proto, p->tcp_flags, p->len, p->sport, p->dport,
			p->icmp_type_code, p->smac, p->dmac);
	ev->flags |= MB_EVF_IPV6;
	__builtin_memcpy(ev->saddr, &p->saddr, 16);
	__builtin_memcpy(ev->daddr, &p->daddr, 16);
	if ((t->flags & MB_EVF_NAT) && t->rev_nat_index) {
		struct mb_lb6_revnat *rn = mb_lb6_revnat(t->rev_nat_index);

		if (rn) {
			__builtin_memcpy(ev->orig_daddr, &rn->address, 16);
			ev->orig_dport = bpf_ntohs(rn->port);
		}
	}
}

/* The events are reported by global functions: each is verified once, on its own, instead of
 * once for every path of the packet walk that reaches it (from_container is near the
 * verifier's 1M-instruction budget), and reporting is not the hot path (drops are rare, trace
 * and verdict events are opt-in). The kernel hands a global function's pointer arguments over
 * as possibly NULL: each checks them. */
#define MB_EVENT_SUBPROG	__attribute__((noinline))

static __always_inline void __mb_event_emit(struct mb_event *ev, __u8 type, __u8 subtype,
					    const struct mb_trace_ctx *t, __u32 ext)
{
	ev->type = type;
	ev->subtype = subtype;
	ev->ext_error = ext;
	if (type == MB_EVENT_POLICY_VERDICT) {
		ev->match_type = t->match_type;
		ev->action = t->action;
	}
	bpf_ringbuf_submit(ev, 0);
}

/* Fill an event from a packet of either family (p: struct mb_pkt4 or mb_pkt6, as v6 says). */
static __always_inline void mb_event_fill(struct mb_event *ev, struct __sk_buff *skb,
					  const void *p, bool v6, const struct mb_trace_ctx *t)
{
	if (v6)
		mb_event_fill6(ev, skb, p, t);
	else
		mb_event_fill4(ev, skb, p, t);
}

/* Reserve, fill and submit one event about a packet of either family. */
static __always_inline int __mb_event_report(struct __sk_buff *skb, const void *p, bool v6,
					     const struct mb_trace_ctx *t, __u32 type_subtype,
					     __u32 ext)
{
	struct mb_event *ev;

	if (!p || !t)
		return 0;
	ev = mb_event_reserve();
	if (!ev)
		return 0;
	mb_event_fill(ev, skb, p, v6, t);
	__mb_event_emit(ev, type_subtype >> 8, type_subtype & 0xff, t, ext);
	return 0;
}

/* One event about an IPv4 packet (type_subtype: type << 8 | drop reason, trace point or 0). */
MB_EVENT_SUBPROG int mb_event4(struct __sk_buff *skb, const struct mb_pkt4 *p,
			       const struct mb_trace_ctx *t, __u32 type_subtype, __u32 ext)
{
	return __mb_event_report(skb, p, false, t, type_subtype, ext);
}

/* The same about an IPv6 packet (a global function takes typed pointers: one per family). */
MB_EVENT_SUBPROG int mb_event6(struct __sk_buff *skb, const struct mb_pkt6 *p,
			       const struct mb_trace_ctx *t, __u32 type_subtype, __u32 ext)
{
	return __mb_event_report(skb, p, true, t, type_subtype, ext);
}

/* An event about a packet of either family (p: struct mb_pkt4 or mb_pkt6, as v6 says). */
static __always_inline void mb_event(struct __sk_buff *skb, const void *p, bool v6,
				     const struct mb_trace_ctx *t, __u8 type, __u8 subtype,
				     __u32 ext)
{
	__u32 ts = ((__u32)type << 8) | subtype;

	if (v6)
		mb_event6(skb, p, t, ts, ext);
	else
		mb_event4(skb, p, t, ts, ext);
}

/* Count and report a drop; returns TC_ACT_SHOT so callers can `return mb_drop(...)`. */
static __always_inline int mb_drop(struct __sk_buff *skb, const void *p, bool v6, __u32 len,
				   const struct mb_trace_ctx *t, int reason, __u32 ext)
{
	__u8 r = (__u8)(-reason);

	mb_count(r, t->direction, len);
	mb_event(skb, p, v6, t, MB_EVENT_DROP, r, ext);
	return TC_ACT_SHOT;
}

static __always_inline int mb_drop4(struct __sk_buff *skb, const struct mb_pkt4 *p,
				    const struct mb_trace_ctx *t, int reason, __u32 ext)
{
	return mb_drop(skb, p, false, p->len, t, reason, ext);
}

static __always_inline int mb_drop6(struct __sk_buff *skb, const struct mb_pkt6 *p,
				    const struct mb_trace_ctx *t, int reason, __u32 ext)
{
	return mb_drop(skb, p, true, p->len, t, reason, ext);
}

/* Drop before the packet could be parsed: counters and a bare event. */
static __always_inline int mb_drop_raw(struct __sk_buff *skb, __u8 direction, __u16 ep_id,
				       int reason)
{
	__u8 r = (__u8)(-reason);
	struct mb_event *ev;

	mb_count(r, direction, skb->len);
	ev = mb_event_reserve();
	if (ev) {
		ev->type = MB_EVENT_DROP;
		ev->subtype = r;
		ev->direction = direction;
		ev->endpoint_id = ep_id;
		ev->ifindex = skb->ifindex;
		ev->len = skb->len;
		ev->ktime_ns = bpf_ktime_get_ns();
		bpf_ringbuf_submit(ev, 0);
	}
	return TC_ACT_SHOT;
}

/* A trace event (obs_point: MB_TRACE_*) for a packet of either family. */
static __always_inline void mb_trace(struct __sk_buff *skb, const void *p, bool v6,
				     const struct mb_trace_ctx *t, __u8 obs_point)
{
	mb_event(skb, p, v6, t, MB_EVENT_TRACE, obs_point, 0);
}

/* A policy verdict event (t->match_type, t->action) for a packet of either family. */
static __always_inline void mb_policy_verdict(struct __sk_buff *skb, const void *p, bool v6,
					      const struct mb_trace_ctx *t)
{
	mb_event(skb, p, v6, t, MB_EVENT_POLICY_VERDICT, 0, 0);
}
