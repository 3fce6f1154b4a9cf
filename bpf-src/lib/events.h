// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Datapath events: one fixed-size record per event in the `mb_events` ring buffer.
 *
 * The layout is the contract between bpf-src, @membrane/datapath (decodeEvent) and
 * @membrane/flows. Rules: all integers are little-endian host order (ports converted with
 * bpf_ntohs); addresses are the raw network-order bytes, IPv4 in the first 4 bytes of the 16.
 * Reservation failures are counted per CPU in `mb_events_lost` (flows reports them as lost). */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* Event types use Cilium's monitor message type numbers (Hubble's event_type.type). */
#define MB_EVENT_DROP		1
#define MB_EVENT_TRACE		4
#define MB_EVENT_POLICY_VERDICT	5
#define MB_EVENT_SOCK_LB	7	/* socket-level translation at connect/sendmsg */

/* Trace observation points (subtype of MB_EVENT_TRACE), Cilium's TRACE_* numbers. */
#define MB_TRACE_TO_LXC		0
#define MB_TRACE_TO_PROXY	1
#define MB_TRACE_TO_HOST	2
#define MB_TRACE_TO_STACK	3
#define MB_TRACE_TO_OVERLAY	4
#define MB_TRACE_FROM_LXC	5
#define MB_TRACE_FROM_PROXY	6
#define MB_TRACE_FROM_HOST	7
#define MB_TRACE_FROM_STACK	8
#define MB_TRACE_FROM_OVERLAY	9
#define MB_TRACE_FROM_NETWORK	10
#define MB_TRACE_TO_NETWORK	11

/* Traffic direction, Hubble's TrafficDirection numbers. */
#define MB_DIR_UNKNOWN	0
#define MB_DIR_INGRESS	1
#define MB_DIR_EGRESS	2

/* Policy match type (MB_EVENT_POLICY_VERDICT), Cilium's POLICY_MATCH_* numbers. */
#define MB_MATCH_NONE		0
#define MB_MATCH_L3_L4		1
#define MB_MATCH_L3_ONLY	2
#define MB_MATCH_L4_ONLY	3
#define MB_MATCH_ALL		4
#define MB_MATCH_L3_PROTO	5
#define MB_MATCH_PROTO_ONLY	6

/* Policy verdict action (MB_EVENT_POLICY_VERDICT). */
#define MB_ACTION_ALLOWED	1
#define MB_ACTION_DENIED	2
#define MB_ACTION_REDIRECTED	3	/* allowed, sent to the L7 proxy */

/* flags */
#define MB_EVF_IPV6		(1 << 0)
#define MB_EVF_REPLY		(1 << 1)	/* packet of a reply (conntrack) */
#define MB_EVF_NAT		(1 << 2)	/* orig_daddr/orig_dport hold the pre-DNAT target */
#define MB_EVF_AUDIT		(1 << 3)	/* policy verdict in audit mode */
#define MB_EVF_CT_NEW		(1 << 4)	/* first packet of a connection */

struct mb_event {
	__u8  type;		/* MB_EVENT_* */
	__u8  subtype;		/* drop: reason (positive, 133 ...); trace: MB_TRACE_*; sock lb: hook */
	__u8  direction;	/* MB_DIR_* */
	__u8  flags;		/* MB_EVF_* */
	__u8  match_type;	/* MB_MATCH_* (policy verdict) */
	__u8  action;		/* MB_ACTION_* (policy verdict) */
	__u8  protocol;		/* IPPROTO_* of L4, 0 when none */
	__u8  tcp_flags;	/* FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128 */
	__u16 endpoint_id;	/* endpoint whose program emitted the event */
	__u16 proxy_port;	/* L7 proxy port when redirected, else 0 */
	__u32 ifindex;		/* interface the program runs on */
	__u32 src_identity;
	__u32 dst_identity;
	__u32 len;		/* packet length on the wire */
	__u32 ext_error;	/* drop: extra detail (e.g. a helper's errno), else 0 */
	__u64 ktime_ns;		/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 sock_cookie;	/* socket cookie for MB_EVENT_SOCK_LB, else 0 */
	__u16 sport;
	__u16 dport;
	__u16 orig_dport;	/* with MB_EVF_NAT: service port before DNAT */
	__u16 icmp_type_code;	/* ICMP: type << 8 | code */
	__u8  saddr[16];
	__u8  daddr[16];
	__u8  orig_daddr[16];	/* with MB_EVF_NAT: service address before DNAT */
	__u8  smac[6];
	__u8  dmac[6];
	__u16 rule_set;		/* policy verdict / policy drop: id of the policies that decided it
				 * (mb_policy_entry.rule_set), 0 = none matched */
	__u16 _pad;		/* zero */
};

_Static_assert(sizeof(struct mb_event) == 120, "struct mb_event must stay 120 bytes");

#ifdef MB_EVENTS_DEFINE_MAPS
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} mb_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} mb_events_lost SEC(".maps");

/* Reserve an event record, or count the loss and return NULL. */
static __always_inline struct mb_event *mb_event_reserve(void)
{
	struct mb_event *ev = bpf_ringbuf_reserve(&mb_events, sizeof(*ev), 0);

	if (!ev) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&mb_events_lost, &zero);

		if (lost)
			__sync_fetch_and_add(lost, 1);
		return NULL;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	return ev;
}
#endif
