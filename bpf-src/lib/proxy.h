// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* L7 redirect: a flow whose policy entry carries a proxy port is DNATed to
 * (mb_config.router_ip4, proxy port) and enters the host stack; the original destination is
 * recorded in mb_proxy4 under the client's {address, port, protocol} so that the proxy can
 * ask where the client wanted to go (@membrane/datapath lookupProxyOrigin). Replies from the
 * proxy are reverse-NATed through conntrack, so the client sees the original destination. */
#pragma once

#include "lib/conntrack.h"
#include "lib/nat.h"

struct mb_proxy4_key {
	__be32 client_ip;
	__be16 client_port;
	__u8   proto;
	__u8   pad;
};

struct mb_proxy4_value {
	__be32 orig_daddr;	/* where the client sent the packet (after service DNAT) */
	__be16 orig_dport;
	__u16  endpoint_id;	/* endpoint whose policy redirected */
	__u32  src_identity;
	__u32  dst_identity;
	__u8   direction;	/* MB_POLICY_INGRESS / MB_POLICY_EGRESS: whose policy redirected */
	__u8   pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mb_proxy4_key);
	__type(value, struct mb_proxy4_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_proxy4 SEC(".maps");

/* Record the original destination, DNAT to the proxy and create the conntrack entry that
 * reverse-NATs the proxy's replies to rev_addr:rev_port. Returns 0 or a DROP_* code. */
static __always_inline int mb_redirect_to_proxy4(struct __sk_buff *skb, struct mb_pkt4 *p,
						 const struct mb_config *cfg, __u16 proxy_port,
						 const struct mb_proxy4_value *orig,
						 __be32 rev_addr, __be16 rev_port, __u16 rev_nat_index,
						 bool record, __u64 now)
{
	struct mb_proxy4_key pk = {
		.client_ip = p->saddr,
		.client_port = p->sport,
		.proto = p->proto,
	};
	int ret;

	if (!cfg || !cfg->router_ip4 || !proxy_port)
		return DROP_PROXY_SET_FAILED;
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return DROP_PROXY_UNKNOWN_PROTO;
	if (record) {
		struct mb_ct_entry e = {
			.src_identity = orig->src_identity,
			.rev_nat_addr = rev_addr,
			.rev_nat_port = rev_port,
			.rev_nat_index = rev_nat_index,
			.flags = MB_CT_F_REV_NAT,
			.proxy_port = proxy_port,
			.endpoint_id = orig->endpoint_id,
		};
		struct mb_ct_tuple4 t = {
			.daddr = cfg->router_ip4,
			.saddr = p->saddr,
			.dport = bpf_htons(proxy_port),
			.sport = p->sport,
			.nexthdr = p->proto,
		};

		if (bpf_map_update_elem(&mb_proxy4, &pk, orig, BPF_ANY) < 0)
			return DROP_PROXY_SET_FAILED;
		if (mb_ct_create4(&t, &e, p->tcp_flags, p->len, now) < 0)
			return DROP_CT_CREATE_FAILED;
	}
	ret = mb_dnat4(skb, p, cfg->router_ip4, bpf_htons(proxy_port));
	return ret < 0 ? ret : 0;
}
