// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* L7 redirect, both families: a flow whose policy entry carries a proxy port is DNATed to
 * (mb_config.router_ip4 / router_ip6, proxy port) and enters the host stack; the original
 * destination is recorded in mb_proxy4 / mb_proxy6 under the client's {address, port,
 * protocol} so that the proxy can ask where the client wanted to go (@membrane/datapath
 * lookupProxyOrigin). Replies from the proxy are reverse-NATed through conntrack, so the client
 * sees the original destination. */
#pragma once

#include "lib/conntrack.h"
#include "lib/lb.h"
#include "lib/nat.h"

/* What both families check before redirecting: a proxy address and port, and a protocol the
 * proxy takes. Returns 0 or a DROP_* code. */
static __always_inline int mb_proxy_can_redirect(bool have_router, __u16 proxy_port, __u8 proto)
{
	if (!have_router || !proxy_port)
		return DROP_PROXY_SET_FAILED;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return DROP_PROXY_UNKNOWN_PROTO;
	return 0;
}

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

	ret = mb_proxy_can_redirect(cfg && cfg->router_ip4, proxy_port, p->proto);
	if (ret < 0)
		return ret;
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

/* IPv6: the same redirect towards (mb_config.router_ip6, proxy port). The conntrack entry of
 * the client -> proxy leg has room for an IPv4 reverse-NAT address only, so the proxy's
 * replies take their source from the service's mb_lb6_reverse_nat record (rev_nat_index, a
 * redirected service flow) or from the mb_proxy6 record of the client (every other flow). */
struct mb_proxy6_key {
	__u8   client_ip[16];	/* bytes, not union mb_v6addr: 20 bytes without tail padding */
	__be16 client_port;
	__u8   proto;
	__u8   pad;
};

struct mb_proxy6_value {
	union mb_v6addr orig_daddr;	/* where the client sent the packet (after service DNAT) */
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
	__type(key, struct mb_proxy6_key);
	__type(value, struct mb_proxy6_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_proxy6 SEC(".maps");

/* Record the original destination (when `orig` is given), create the conntrack entry of the
 * client -> proxy leg, and DNAT to the proxy. With `orig`, `tuple` and `e` are the flow's
 * tuple and the entry just written for it: both are reused for the proxy leg (the BPF stack of
 * the endpoint programs has no room for second copies). Later packets of the flow (conntrack
 * MB_CT_F_PROXY_REDIRECT) pass orig NULL: DNAT only. Returns 0 or a DROP_* code. */
static __always_inline int mb_redirect_to_proxy6(struct __sk_buff *skb, struct mb_pkt6 *p,
						 const struct mb_config *cfg, __u16 proxy_port,
						 const struct mb_proxy6_value *orig,
						 struct mb_ct_tuple6 *tuple, struct mb_ct_entry *e,
						 __u64 now)
{
	int ret = mb_proxy_can_redirect(cfg && !mb_v6_is_zero(cfg->router_ip6), proxy_port,
					p->proto);

	if (ret < 0)
		return ret;
	if (orig && tuple && e) {
		struct mb_proxy6_key pk = { .client_port = p->sport, .proto = p->proto };

		__builtin_memcpy(&pk.client_ip, &p->saddr, 16);
		if (bpf_map_update_elem(&mb_proxy6, &pk, orig, BPF_ANY) < 0)
			return DROP_PROXY_SET_FAILED;
		/* {client -> router:proxy port}: the proxy's replies are reverse-NATed. */
		e->flags = MB_CT_F_REV_NAT;
		e->endpoint_id = orig->endpoint_id;
		__builtin_memcpy(&tuple->daddr, cfg->router_ip6, 16);
		tuple->dport = bpf_htons(proxy_port);
		if (mb_ct_create6(tuple, e, p->tcp_flags, p->len, now) < 0)
			return DROP_CT_CREATE_FAILED;
	}
	return mb_nat6(skb, p, true, (const union mb_v6addr *)cfg->router_ip6,
		       bpf_htons(proxy_port));
}

/* The source a reply of the proxy (router_ip6:proxy port -> client) gets back: the service
 * address of a redirected service flow, else the client's original destination. Returns 0,
 * or DROP_PROXY_LOOKUP_FAILED when the record is gone (LRU eviction). */
static __always_inline int mb_proxy6_rev_nat(struct __sk_buff *skb, struct mb_pkt6 *p,
					     const struct mb_ct_entry *ct)
{
	if (ct->rev_nat_index) {
		struct mb_lb6_revnat *rn = mb_lb6_revnat(ct->rev_nat_index);

		if (!rn)
			return DROP_PROXY_LOOKUP_FAILED;
		return mb_nat6(skb, p, false, &rn->address, rn->port);
	}
	struct mb_proxy6_key pk = { .client_port = p->dport, .proto = p->proto };
	struct mb_proxy6_value *v;

	__builtin_memcpy(&pk.client_ip, &p->daddr, 16);
	v = bpf_map_lookup_elem(&mb_proxy6, &pk);
	if (!v)
		return DROP_PROXY_LOOKUP_FAILED;
	return mb_nat6(skb, p, false, &v->orig_daddr, v->orig_dport);
}
