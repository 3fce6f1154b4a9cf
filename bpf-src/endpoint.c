// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Endpoint programs, attached to the host-side veth of every workload:
 *   from_container: tc ingress of the host veth (packets the workload sends)
 *   to_container:   tc egress of the host veth (packets delivered to the workload)
 * See lib/lxc.h for the packet walk. */
#define ENABLE_BANDWIDTH 1
#include "lib/lxc.h"
#include "lib/lxc6.h"

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
		return mb_endpoint6(skb, ep, from_container);
	case ETH_P_ARP:
		return TC_ACT_OK;
	default:
		return mb_drop_raw(skb, dir, (__u16)ep->endpoint_id, DROP_UNKNOWN_L3);
	}
}

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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
