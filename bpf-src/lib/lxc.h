// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The endpoint datapath (IPv4), run on the host-side veth of each workload:
 *   from-container (tc ingress of the host veth): the workload's egress. Service DNAT,
 *     conntrack, the sender's egress policy and, when the destination is a local endpoint, the
 *     destination's ingress policy (local delivery), L7 redirect, bandwidth (EDT).
 *   to-container (tc egress of the host veth): the workload's ingress. Conntrack, reverse NAT
 *     of replies, ingress policy for traffic from outside/the host/the L7 proxy.
 * One loaded program serves every endpoint: the endpoint is found by skb->ifindex in
 * mb_ep_direct/mb_endpoints, so attaching a new endpoint needs no new verification. */
#pragma once

#include "lib/common.h"
#include "lib/conntrack.h"
#include "lib/drop_reasons.h"
#include "lib/ipcache.h"
#include "lib/lb.h"
#include "lib/nat.h"
#include "lib/parse.h"
#include "lib/policy.h"
#include "lib/proxy.h"
#include "lib/trace.h"
#include "lib/bandwidth_hook.h"

static __always_inline bool mb_want_trace(const struct mb_config *cfg, bool is_new)
{
	if (!cfg)
		return false;
	return (cfg->flags & MB_CFG_TRACE_ALL) || (is_new && (cfg->flags & MB_CFG_TRACE_NEW));
}

static __always_inline void mb_verdict(struct __sk_buff *skb, const struct mb_config *cfg,
				       const struct mb_pkt4 *p, const struct mb_trace_ctx *t)
{
	if (cfg && (cfg->flags & MB_CFG_VERDICTS))
		mb_policy_verdict4(skb, p, t);
}

/* The port a policy lookup uses: the destination port, or for ICMP the message type (as
 * @membrane/policy writes ICMP rules). */
static __always_inline __be16 mb_policy_port(const struct mb_pkt4 *p)
{
	if (p->proto == IPPROTO_ICMP)
		return bpf_htons(p->icmp_type_code >> 8);
	return p->dport;
}

/* An ICMP error about a tracked connection (its inner packet's tuple, either way round) is
 * related traffic: it passes without a policy lookup, like a reply. Its inner header is not
 * translated back for service flows. */
static __always_inline bool mb_ct_related4(const struct mb_pkt4 *p)
{
	struct mb_ct_tuple4 t = {
		.daddr = p->in_daddr,
		.saddr = p->in_saddr,
		.dport = p->in_dport,
		.sport = p->in_sport,
		.nexthdr = p->in_proto,
	};
	struct mb_ct_tuple4 r;

	if (!p->related)
		return false;
	if (bpf_map_lookup_elem(&mb_ct4, &t))
		return true;
	mb_ct_reverse4(&t, &r);
	return bpf_map_lookup_elem(&mb_ct4, &r) != NULL;
}

/* A pure TCP SYN leaving a workload opens a connection: it is never a reply, and whatever an
 * entry under its tuple says (a retransmitted SYN, or a port reused after close), the new
 * connection is checked against the policy of now and its entry written afresh. So it skips
 * both conntrack lookups. Only from-container: the to-container half of a local delivery
 * relies on the entry the sender's program just wrote. */
static __always_inline bool mb_ct_opens4(const struct mb_pkt4 *p)
{
	return p->proto == IPPROTO_TCP &&
	       (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

static __always_inline int mb_from_container4(struct __sk_buff *skb, const struct mb_endpoint *ep)
{
	struct mb_config *cfg = mb_get_config();
	struct mb_trace_ctx t = {
		.src_identity = ep->identity,
		.endpoint_id = (__u16)ep->endpoint_id,
		.direction = MB_DIR_EGRESS,
	};
	struct mb_pkt4 p = {};
	struct mb_ct_tuple4 tuple = {};
	struct mb_ct_entry *ct = NULL;
	struct mb_lb4_service *svc;
	__be32 orig_daddr;
	__be16 orig_dport;
	__u16 rev_nat_index = 0;
	bool svc_nat = false;
	bool hairpin = false;
	__u64 now;
	int ret;

	ret = mb_parse4(skb, &p);
	if (ret < 0)
		return mb_drop4(skb, &p, &t, ret, 0);
	if (p.saddr != ep->ip4)
		return mb_drop4(skb, &p, &t, DROP_INVALID_SIP, 0);
	now = mb_ct_now();
	orig_daddr = p.daddr;
	orig_dport = p.dport;

	/* Service translation (before conntrack: the flow is tracked by its backend). */
	svc = mb_lb4_lookup(p.daddr, p.dport, p.proto);
	if (svc) {
		struct mb_ct_tuple4 st = {
			.daddr = p.daddr,
			.saddr = p.saddr,
			.dport = p.dport,
			.sport = p.sport,
			.nexthdr = p.proto,
			.flags = MB_CT_TUPLE_F_SERVICE,
		};
		struct mb_lb4_backend *be = NULL;
		struct mb_ct_entry *sct = NULL;
		__u32 backend_id = 0;

		/* A connection's first SYN selects afresh: with Maglev a retransmitted SYN maps
		 * to the same backend anyway (random selection looks its choice up, so that a
		 * late SYN-ACK from the first pick still meets the same backend). */
		if (svc->algorithm != MB_LB_ALG_MAGLEV || !mb_ct_opens4(&p))
			sct = bpf_map_lookup_elem(&mb_ct4, &st);
		if (sct) {
			backend_id = sct->backend_id;
			be = mb_lb4_backend(&backend_id);
			if (be)
				mb_ct_touch(sct, p.proto, p.tcp_flags, p.len, false, now);
		}
		if (!be) {
			__u32 seed = cfg ? cfg->hash_seed : 0;

			backend_id = mb_lb4_select(svc, p.saddr, p.sport, p.dport, p.proto, seed);
			be = mb_lb4_backend(&backend_id);
			if (!be)
				return mb_drop4(skb, &p, &t, DROP_NO_SERVICE, 0);
			struct mb_ct_entry se = {
				.src_identity = ep->identity,
				.backend_id = backend_id,
				.rev_nat_addr = p.daddr,
				.rev_nat_port = p.dport,
				.rev_nat_index = svc->rev_nat_index,
				.flags = MB_CT_F_SERVICE,
				.endpoint_id = (__u16)ep->endpoint_id,
			};
			mb_ct_create4(&st, &se, p.tcp_flags, p.len, now);
		}
		ret = mb_dnat4_fast(skb, &p, be->address, be->port);
		if (ret < 0)
			return mb_drop4(skb, &p, &t, ret, 0);
		svc_nat = true;
		rev_nat_index = svc->rev_nat_index;
		t.flags |= MB_EVF_NAT;
		t.orig_daddr = orig_daddr;
		t.orig_dport = orig_dport;
		/* Hairpin: the client is its own backend. Without a source rewrite the server's
		 * replies would stay inside the workload and never be reverse-NATed: the source
		 * becomes the hairpin address (link-local, not an address of the node, which
		 * would make the packet a martian), so replies come back through this program. */
		if (p.daddr == p.saddr && cfg && cfg->hairpin_ip4) {
			struct mb_ct_tuple4 ht = {
				.daddr = orig_daddr,
				.saddr = p.saddr,
				.dport = orig_dport,
				.sport = p.sport,
				.nexthdr = p.proto,
			};

			/* What to_container sees as the reply tuple: {VIP -> client}. */
			if (!bpf_map_lookup_elem(&mb_ct4, &ht)) {
				struct mb_ct_entry he = {
					.src_identity = ep->identity,
					.endpoint_id = (__u16)ep->endpoint_id,
					.rev_nat_index = svc->rev_nat_index,
				};

				mb_ct_create4(&ht, &he, p.tcp_flags, p.len, now);
			}
			ret = mb_snat4(skb, &p, cfg->hairpin_ip4, p.sport);
			if (ret < 0)
				return mb_drop4(skb, &p, &t, ret, 0);
			hairpin = true;
		}
	}

	tuple.daddr = p.daddr;
	tuple.saddr = p.saddr;
	tuple.dport = p.dport;
	tuple.sport = p.sport;
	tuple.nexthdr = p.proto;

	if (unlikely(p.related) && mb_ct_related4(&p)) {
		t.flags |= MB_EVF_REPLY;
		goto forward;
	}

	switch (mb_ct_opens4(&p) ? MB_CT_NEW : mb_ct_lookup4(&tuple, &ct)) {
	case MB_CT_ESTABLISHED:
		mb_ct_touch(ct, p.proto, p.tcp_flags, p.len, false, now);
		t.dst_identity = MB_ID_UNKNOWN;
		if (ct->flags & MB_CT_F_PROXY_REDIRECT) {
			t.proxy_port = ct->proxy_port;
			ret = mb_redirect_to_proxy4(skb, &p, cfg, ct->proxy_port, NULL, 0, 0, 0,
						    false, now);
			if (ret < 0)
				return mb_drop4(skb, &p, &t, ret, 0);
			mb_count(MB_METRIC_FORWARD, MB_DIR_EGRESS, p.len);
			if (mb_want_trace(cfg, false))
				mb_trace4(skb, &p, &t, MB_TRACE_TO_PROXY);
			return TC_ACT_OK;
		}
		break;
	case MB_CT_REPLY:
		/* Replies of allowed connections pass without a policy lookup. */
		mb_ct_touch(ct, p.proto, p.tcp_flags, p.len, true, now);
		t.flags |= MB_EVF_REPLY;
		t.dst_identity = ct->src_identity;
		if (ct->flags & MB_CT_F_HAIRPIN) {
			/* The server half of a hairpin flow answers the router address: send it
			 * back to the client (itself) from the service address. */
			__be32 client = p.saddr;
			__be16 client_port = p.dport;

			ret = mb_snat4(skb, &p, ct->rev_nat_addr, ct->rev_nat_port);
			if (ret == 0)
				ret = mb_dnat4(skb, &p, client, client_port);
			if (ret < 0)
				return mb_drop4(skb, &p, &t, ret, 0);
			t.flags |= MB_EVF_NAT;
		}
		break;
	default: {
		struct mb_endpoint *dst = mb_lookup_lxc4(cfg, &p.daddr);
		struct mb_policy_result res = {};
		struct mb_ct_entry e = {
			.src_identity = ep->identity,
			.endpoint_id = (__u16)ep->endpoint_id,
		};
		__u16 proxy_port = 0;
		__u8 proxy_dir = MB_POLICY_EGRESS;

		t.flags |= MB_EVF_CT_NEW;
		t.dst_identity = dst ? dst->identity : mb_ipcache_identity4(p.daddr);
		if (ep->flags & MB_EP_F_ENFORCE_EGRESS) {
			ret = mb_policy_check(ep->endpoint_id, ep->identity, t.dst_identity,
					      MB_POLICY_EGRESS, p.proto, mb_policy_port(&p), p.len,
					      &res);
			t.match_type = res.match_type;
			t.action = res.action;
			t.proxy_port = res.proxy_port;
			mb_verdict(skb, cfg, &p, &t);
			if (ret < 0)
				return mb_drop4(skb, &p, &t, ret, 0);
			proxy_port = res.proxy_port;
		}
		/* Local delivery: the destination's ingress policy is checked here, while the
		 * packet can still be redirected to the proxy on its way into the host stack. */
		if (!proxy_port && dst && (dst->flags & MB_EP_F_ENFORCE_INGRESS)) {
			struct mb_trace_ctx ti = t;

			ti.direction = MB_DIR_INGRESS;
			ti.endpoint_id = (__u16)dst->endpoint_id;
			ret = mb_policy_check(dst->endpoint_id, dst->identity, ep->identity,
					      MB_POLICY_INGRESS, p.proto, mb_policy_port(&p), p.len,
					      &res);
			ti.match_type = res.match_type;
			ti.action = res.action;
			ti.proxy_port = res.proxy_port;
			mb_verdict(skb, cfg, &p, &ti);
			if (ret < 0)
				return mb_drop4(skb, &p, &ti, ret, 0);
			proxy_port = res.proxy_port;
			proxy_dir = MB_POLICY_INGRESS;
		}
		if (proxy_port) {
			struct mb_proxy4_value orig = {
				.orig_daddr = p.daddr,
				.orig_dport = p.dport,
				.endpoint_id = proxy_dir == MB_POLICY_INGRESS && dst ?
					(__u16)dst->endpoint_id : (__u16)ep->endpoint_id,
				.src_identity = ep->identity,
				.dst_identity = t.dst_identity,
				.direction = proxy_dir,
			};

			e.flags |= MB_CT_F_PROXY_REDIRECT;
			e.proxy_port = proxy_port;
			e.rev_nat_index = rev_nat_index;
			if (mb_ct_create4(&tuple, &e, p.tcp_flags, p.len, now) < 0)
				return mb_drop4(skb, &p, &t, DROP_CT_CREATE_FAILED, 0);
			t.proxy_port = proxy_port;
			ret = mb_redirect_to_proxy4(skb, &p, cfg, proxy_port, &orig,
						    orig_daddr, orig_dport, rev_nat_index, true, now);
			if (ret < 0)
				return mb_drop4(skb, &p, &t, ret, 0);
			mb_count(MB_METRIC_FORWARD, MB_DIR_EGRESS, p.len);
			if (mb_want_trace(cfg, true))
				mb_trace4(skb, &p, &t, MB_TRACE_TO_PROXY);
			return TC_ACT_OK;
		}
		if (svc_nat) {
			e.flags |= hairpin ? MB_CT_F_HAIRPIN : MB_CT_F_REV_NAT;
			e.rev_nat_addr = orig_daddr;
			e.rev_nat_port = orig_dport;
			e.rev_nat_index = rev_nat_index;
		}
		if (mb_ct_create4(&tuple, &e, p.tcp_flags, p.len, now) < 0)
			return mb_drop4(skb, &p, &t, DROP_CT_CREATE_FAILED, 0);
		break;
	}
	}

forward:
	ret = mb_bandwidth_egress(skb, ep->endpoint_id);
	if (ret < 0)
		return mb_drop4(skb, &p, &t, ret, 0);
	mb_count(MB_METRIC_FORWARD, MB_DIR_EGRESS, p.len);
	if (mb_want_trace(cfg, t.flags & MB_EVF_CT_NEW))
		mb_trace4(skb, &p, &t, MB_TRACE_FROM_LXC);
#ifdef MB_BENCH_RESTORE_DNAT
	/* Benchmark objects run one packet many times (BPF_PROG_TEST_RUN repeat): put the
	 * service address back so that every run translates again. */
	if (svc_nat)
		mb_dnat4_fast(skb, &p, orig_daddr, orig_dport);
#endif
	return TC_ACT_OK;
}

static __always_inline int mb_to_container4(struct __sk_buff *skb, const struct mb_endpoint *ep)
{
	struct mb_config *cfg = mb_get_config();
	struct mb_trace_ctx t = {
		.dst_identity = ep->identity,
		.endpoint_id = (__u16)ep->endpoint_id,
		.direction = MB_DIR_INGRESS,
	};
	struct mb_pkt4 p = {};
	struct mb_ct_tuple4 tuple = {};
	struct mb_ct_entry *ct;
	__u64 now;
	int ret;

	ret = mb_parse4(skb, &p);
	if (ret < 0)
		return mb_drop4(skb, &p, &t, ret, 0);
	now = mb_ct_now();
	tuple.daddr = p.daddr;
	tuple.saddr = p.saddr;
	tuple.dport = p.dport;
	tuple.sport = p.sport;
	tuple.nexthdr = p.proto;

	if (unlikely(p.related) && mb_ct_related4(&p)) {
		t.flags |= MB_EVF_REPLY;
		goto forward;
	}

	switch (mb_ct_lookup4(&tuple, &ct)) {
	case MB_CT_ESTABLISHED:
		mb_ct_touch(ct, p.proto, p.tcp_flags, p.len, false, now);
		t.src_identity = ct->src_identity;
		break;
	case MB_CT_REPLY:
		mb_ct_touch(ct, p.proto, p.tcp_flags, p.len, true, now);
		t.flags |= MB_EVF_REPLY;
		if (ct->flags & MB_CT_F_REV_NAT) {
			/* Reply of a service or proxied flow: restore the address the client used. */
			t.flags |= MB_EVF_NAT;
			t.orig_daddr = p.saddr;
			t.orig_dport = p.sport;
			ret = mb_snat4_fast(skb, &p, ct->rev_nat_addr, ct->rev_nat_port);
			if (ret < 0)
				return mb_drop4(skb, &p, &t, ret, 0);
		}
		break;
	default: {
		__u32 mark = skb->mark;
		bool from_proxy = (mark & MB_MARK_MAGIC_MASK) == MB_MARK_MAGIC_PROXY;
		struct mb_ct_entry e = {
			.endpoint_id = (__u16)ep->endpoint_id,
		};
		struct mb_policy_result res = {};

		t.flags |= MB_EVF_CT_NEW;
		if (from_proxy) {
			t.src_identity = MB_MARK_IDENTITY(mark);
			e.flags |= MB_CT_F_FROM_PROXY;
		} else {
			struct mb_endpoint *src = mb_lookup_lxc4(cfg, &p.saddr);

			t.src_identity = src ? src->identity : mb_ipcache_identity4(p.saddr);
		}
		e.src_identity = t.src_identity;
		if (ep->flags & MB_EP_F_ENFORCE_INGRESS) {
			ret = mb_policy_check(ep->endpoint_id, ep->identity, t.src_identity,
					      MB_POLICY_INGRESS, p.proto, mb_policy_port(&p), p.len,
					      &res);
			t.match_type = res.match_type;
			t.action = res.action;
			if (ret == 0 && res.proxy_port && from_proxy)
				t.action = MB_ACTION_ALLOWED;	/* the proxy already enforced L7 */
			t.proxy_port = res.proxy_port;
			mb_verdict(skb, cfg, &p, &t);
			if (ret < 0)
				return mb_drop4(skb, &p, &t, ret, 0);
			/* L7 ingress rules for a source outside this node: the packet is already
			 * leaving towards the workload and cannot be turned to the proxy here, so
			 * it is dropped rather than let through unchecked. */
			if (res.proxy_port && !from_proxy)
				return mb_drop4(skb, &p, &t, DROP_PROXY_SET_FAILED, 1);
		}
		if (mb_ct_create4(&tuple, &e, p.tcp_flags, p.len, now) < 0)
			return mb_drop4(skb, &p, &t, DROP_CT_CREATE_FAILED, 0);
		break;
	}
	}

forward:
	ret = mb_bandwidth_ingress(skb, ep->endpoint_id);
	if (ret < 0)
		return mb_drop4(skb, &p, &t, ret, 0);
	mb_count(MB_METRIC_FORWARD, MB_DIR_INGRESS, p.len);
	if (mb_want_trace(cfg, t.flags & MB_EVF_CT_NEW))
		mb_trace4(skb, &p, &t, MB_TRACE_TO_LXC);
	return TC_ACT_OK;
}
