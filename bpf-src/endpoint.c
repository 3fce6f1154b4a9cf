// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Endpoint programs, attached to the host-side veth of every workload:
 *   from_container: tc ingress of the host veth (packets the workload sends)
 *   to_container:   tc egress of the host veth (packets delivered to the workload)
 * See lib/lxc.h for the packet walk. IPv6 packets continue in from_container6 /
 * to_container6 through a tail call: each program is verified on its own (the verifier's
 * 1M-instruction budget and the 512-byte stack are per program, and IPv4 alone uses most of
 * from_container's).
 *
 * The overlay between nodes (lib/overlay.h) adds two programs: from_overlay, attached at tc
 * ingress of the node's VXLAN device, and to_overlay, which from_container tail-calls for a
 * packet of a flow to another node (its own verifier budget: from_container has little left).
 *
 * Features: ENABLE_BANDWIDTH (EDT shaping and ingress policing, lib/bandwidth_hook.h),
 * ENABLE_IPV6 (the IPv6 programs; without it IPv6 packets are dropped as DROP_UNKNOWN_L3) and
 * ENABLE_OVERLAY (the overlay programs; without it every destination is routed by the stack). */
#define ENABLE_BANDWIDTH 1
#define ENABLE_IPV6 1
#define ENABLE_OVERLAY 1
#include "lib/lxc.h"

#define MB_CALL_FROM6		0
#define MB_CALL_TO6		1
#define MB_CALL_TO_OVERLAY	2

#ifdef ENABLE_IPV6
int from_container6(struct __sk_buff *skb);
int to_container6(struct __sk_buff *skb);
#endif
#ifdef ENABLE_OVERLAY
int to_overlay(struct __sk_buff *skb);
#endif

/* Filled by libbpf at load with this object's own programs; not pinned, so programs of an
 * earlier load keep calling theirs. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__array(values, int (void *));
} mb_calls SEC(".maps") = {
	.values = {
#ifdef ENABLE_IPV6
		[MB_CALL_FROM6] = (void *)&from_container6,
		[MB_CALL_TO6] = (void *)&to_container6,
#endif
#ifdef ENABLE_OVERLAY
		[MB_CALL_TO_OVERLAY] = (void *)&to_overlay,
#endif
	},
};

#ifdef ENABLE_OVERLAY
static __always_inline int mb_endpoint_to_overlay(struct __sk_buff *skb,
						  const struct mb_endpoint *ep,
						  const struct mb_trace_ctx *t)
{
	mb_overlay_cb_store(skb, t);
	bpf_tail_call(skb, &mb_calls, MB_CALL_TO_OVERLAY);
	return mb_drop_raw(skb, MB_DIR_EGRESS, (__u16)ep->endpoint_id, DROP_MISSED_TAIL_CALL);
}
#endif

#ifdef ENABLE_IPV6

/* IPv6 packets continue in this object's IPv6 program of the same direction. */
static __always_inline int mb_endpoint_ipv6(struct __sk_buff *skb, struct mb_endpoint *ep,
					    bool from_container, __u8 dir)
{
	bpf_tail_call(skb, &mb_calls, from_container ? MB_CALL_FROM6 : MB_CALL_TO6);
	return mb_drop_raw(skb, dir, (__u16)ep->endpoint_id, DROP_MISSED_TAIL_CALL);
}
#else
static __always_inline int mb_endpoint_ipv6(struct __sk_buff *skb, struct mb_endpoint *ep,
					    bool from_container, __u8 dir)
{
	return mb_drop_raw(skb, dir, (__u16)ep->endpoint_id, DROP_UNKNOWN_L3);
}
#endif

static __always_inline int mb_endpoint_entry(struct __sk_buff *skb, bool from_container)
{
	__u32 ifindex = skb->ifindex;
	__u8 dir = from_container ? MB_DIR_EGRESS : MB_DIR_INGRESS;
	struct mb_endpoint *ep = mb_lookup_endpoint(ifindex);

	if (!ep)
		return mb_drop_raw(skb, dir, 0, DROP_NO_CONFIG);
	switch (bpf_ntohs(skb->protocol)) {
	case ETH_P_IP:
		return from_container ? mb_from_container4(skb, ep) : mb_to_container4(skb, ep);
	case ETH_P_IPV6:
		return mb_endpoint_ipv6(skb, ep, from_container, dir);
	case ETH_P_ARP:
		return TC_ACT_OK;
	default:
		return mb_drop_raw(skb, dir, (__u16)ep->endpoint_id, DROP_UNKNOWN_L3);
	}
}

#ifdef ENABLE_IPV6
static __always_inline int mb_endpoint_entry6(struct __sk_buff *skb, bool from_container)
{
	__u8 dir = from_container ? MB_DIR_EGRESS : MB_DIR_INGRESS;
	struct mb_endpoint *ep = mb_lookup_endpoint(skb->ifindex);

	if (!ep)
		return mb_drop_raw(skb, dir, 0, DROP_NO_CONFIG);
	return from_container ? mb_from_container6(skb, ep) : mb_to_container6(skb, ep);
}
#endif

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	return mb_endpoint_entry(skb, true);
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	return mb_endpoint_entry(skb, false);
}

#ifdef ENABLE_IPV6
SEC("tc")
int from_container6(struct __sk_buff *skb)
{
	return mb_endpoint_entry6(skb, true);
}

SEC("tc")
int to_container6(struct __sk_buff *skb)
{
	return mb_endpoint_entry6(skb, false);
}
#endif

#ifdef ENABLE_OVERLAY
SEC("tc")
int to_overlay(struct __sk_buff *skb)
{
	switch (bpf_ntohs(skb->protocol)) {
	case ETH_P_IP: {
		struct mb_pkt4 p = {};

		return mb_to_overlay(skb, &p, false);
	}
	case ETH_P_IPV6: {
		struct mb_pkt6 p = {};

		return mb_to_overlay(skb, &p, true);
	}
	default:
		return mb_drop_raw(skb, MB_DIR_EGRESS, 0, DROP_UNKNOWN_L3);
	}
}

SEC("tc")
int from_overlay(struct __sk_buff *skb)
{
	switch (bpf_ntohs(skb->protocol)) {
	case ETH_P_IP: {
		struct mb_pkt4 p = {};
		struct mb_ct_tuple4 tuple = {};

		return mb_from_overlay(skb, &p, &tuple, false);
	}
	case ETH_P_IPV6: {
		struct mb_pkt6 p = {};
		struct mb_ct_tuple6 tuple = {};

		return mb_from_overlay(skb, &p, &tuple, true);
	}
	case ETH_P_ARP:
		return TC_ACT_OK;
	default:
		return mb_drop_raw(skb, MB_DIR_INGRESS, 0, DROP_UNKNOWN_L3);
	}
}
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";
