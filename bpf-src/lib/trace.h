// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Emitting datapath events (lib/events.h records) from a parsed packet: drops, traces and
 * policy verdicts, plus the per-CPU counters of lib/metrics.h. */
#pragma once

#include "lib/common.h"
#include "lib/events.h"
#include "lib/metrics.h"
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
	__be32 orig_daddr;	/* with MB_EVF_NAT */
	__be16 orig_dport;
	__u16  pad;
};

static __always_inline void mb_event_fill4(struct mb_event *ev, struct __sk_buff *skb,
					   const struct mb_pkt4 *p, const struct mb_trace_ctx *t)
{
	ev->direction = t->direction;
	ev->flags = t->flags;
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
	__builtin_memcpy(ev->saddr, &p->saddr, 4);
	__builtin_memcpy(ev->daddr, &p->daddr, 4);
	if (t->flags & MB_EVF_NAT) {
		ev->orig_dport = bpf_ntohs(t->orig_dport);
		__builtin_memcpy(ev->orig_daddr, &t->orig_daddr, 4);
	}
	__builtin_memcpy(ev->smac, p->smac, 6);
	__builtin_memcpy(ev->dmac, p->dmac, 6);
}

/* Count and report a drop; returns TC_ACT_SHOT so callers can `return mb_drop4(...)`. */
static __always_inline int mb_drop4(struct __sk_buff *skb, const struct mb_pkt4 *p,
				    const struct mb_trace_ctx *t, int reason, __u32 ext)
{
	__u8 r = (__u8)(-reason);
	struct mb_event *ev;

	mb_count(r, t->direction, p->len);
	ev = mb_event_reserve();
	if (ev) {
		mb_event_fill4(ev, skb, p, t);
		ev->type = MB_EVENT_DROP;
		ev->subtype = r;
		ev->ext_error = ext;
		bpf_ringbuf_submit(ev, 0);
	}
	return TC_ACT_SHOT;
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

static __always_inline void mb_trace4(struct __sk_buff *skb, const struct mb_pkt4 *p,
				      const struct mb_trace_ctx *t, __u8 obs_point)
{
	struct mb_event *ev = mb_event_reserve();

	if (!ev)
		return;
	mb_event_fill4(ev, skb, p, t);
	ev->type = MB_EVENT_TRACE;
	ev->subtype = obs_point;
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline void mb_policy_verdict4(struct __sk_buff *skb, const struct mb_pkt4 *p,
					       const struct mb_trace_ctx *t)
{
	struct mb_event *ev = mb_event_reserve();

	if (!ev)
		return;
	mb_event_fill4(ev, skb, p, t);
	ev->type = MB_EVENT_POLICY_VERDICT;
	ev->match_type = t->match_type;
	ev->action = t->action;
	bpf_ringbuf_submit(ev, 0);
}
