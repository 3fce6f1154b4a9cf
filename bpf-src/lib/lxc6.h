// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The endpoint datapath for IPv6 (see lib/lxc.h for IPv4 and lib/ipv6.h for the building
 * blocks). The same walk as IPv4: service DNAT, hairpin, conntrack, the sender's egress policy
 * and a local destination's ingress policy, L7 redirect to (router_ip6, proxy port) with the
 * original destination in mb_proxy6 (lib/proxy.h), reverse NAT of replies, the proxy's
 * upstream connections recognised by their skb mark. */
#pragma once

#include "lib/lxc.h"
#include "lib/ipv6.h"
#include "lib/proxy.h"

static __always_inline void mb_verdict6(struct __sk_buff *skb, const struct mb_config *cfg,
					const struct mb_pkt6 *p, const struct mb_trace_ctx *t)
{
	if (cfg && (cfg->flags & MB_CFG_VERDICTS))
		mb_event6(skb, p, t, MB_EVENT_POLICY_VERDICT, 0);
}

/* Hairpin (the client is its own backend, p->daddr == p->saddr after DNAT): without a source
 * rewrite the server's replies would stay inside the workload and never be reverse-NATed. The
 * source becomes mb_config.hairpin_ip6, so the replies come back through this program; the
 * entry `ht` {client -> service} (the packet's tuple before DNAT) lets the translated replies in
 * on the way back. Returns 1
 * (rewritten), 0 (not a hairpin flow or hairpin off) or a DROP_* code. */
static __always_inline int mb_hairpin6(struct __sk_buff *skb, struct mb_pkt6 *p,
				       const struct mb_endpoint *ep, const struct mb_config *cfg,
				       const struct mb_ct_tuple6 *ht, __u16 rev_nat_index,
				       __u64 now)
{
	int ret;

	if (!cfg || mb_v6_is_zero(cfg->hairpin_ip6) || !mb_v6_eq(&p->daddr, p->saddr.b))
		return 0;
	if (!bpf_map_lookup_elem(&mb_ct6, ht)) {
		struct mb_ct_entry he = {
			.src_identity = ep->identity,
			.endpoint_id = (__u16)ep->endpoint_id,
			.rev_nat_index = rev_nat_index,
		};

		mb_ct_create6(ht, &he, p->tcp_flags, p->len, now);
	}
	ret = mb_nat6(skb, p, false, (const union mb_v6addr *)cfg->hairpin_ip6, p->sport);
	return ret < 0 ? ret : 1;
}

/* The server half of a hairpin flow answers the hairpin address: send it back to the client
 * (itself) from the service address. */
static __always_inline int mb_hairpin6_reply(struct __sk_buff *skb, struct mb_pkt6 *p,
					     const struct mb_ct_entry *ct)
{
	__u32 idx = ct->rev_nat_index;
	struct mb_lb6_revnat *rn = bpf_map_lookup_elem(&mb_lb6_reverse_nat, &idx);
	union mb_v6addr client;
	__be16 client_port = p->dport;
	int ret;

	if (!rn)
		return DROP_NO_SERVICE;
	__builtin_memcpy(&client, &p->saddr, 16);
	ret = mb_nat6(skb, p, false, &rn->address, rn->port);
	if (ret < 0)
		return ret;
	return mb_nat6(skb, p, true, &client, client_port);
}

/* A new connection leaving a workload: egress policy of the sender, ingress policy of a local
 * destination, L7 redirect, conntrack entry. Returns 0 (forward), 1 (redirected to the proxy:
 * forward, counted and traced by the caller) or a DROP_* code, with `t` describing whose
 * verdict dropped (the destination's, for its ingress policy). */
static __always_inline int mb_new6_egress(struct __sk_buff *skb, struct mb_pkt6 *p,
					  const struct mb_endpoint *ep, const struct mb_config *cfg,
					  struct mb_trace_ctx *t, struct mb_ct_tuple6 *tuple,
					  __u16 rev_nat_index, bool hairpin, __u64 now)
{
	struct mb_endpoint *dst = bpf_map_lookup_elem(&mb_lxc6, &p->daddr);
	struct mb_policy_result res = {};
	__u16 proxy_port = 0;
	__u8 proxy_dir = MB_POLICY_EGRESS;
	int ret;

	t->dst_identity = dst ? dst->identity : mb_ipcache_identity6(&p->daddr);
	if (ep->flags & MB_EP_F_ENFORCE_EGRESS) {
		ret = mb_policy_check(ep->endpoint_id, ep->identity, t->dst_identity,
				      MB_POLICY_EGRESS, p->proto, mb_policy_port6(p), p->len, &res);
		t->match_type = res.match_type;
		t->action = res.action;
		t->proxy_port = res.proxy_port;
		mb_verdict6(skb, cfg, p, t);
		if (ret < 0)
			return ret;
		proxy_port = res.proxy_port;
	}
	/* Local delivery: the destination's ingress policy is checked here, while the packet
	 * can still be redirected to the proxy on its way into the host stack. */
	if (!proxy_port && dst && (dst->flags & MB_EP_F_ENFORCE_INGRESS)) {
		/* The destination's verdict is reported in its own terms; `t` is switched to
		 * them and back (no copy: the stack is full). */
		__u8 match_type = t->match_type, action = t->action;

		t->direction = MB_DIR_INGRESS;
		t->endpoint_id = (__u16)dst->endpoint_id;
		ret = mb_policy_check(dst->endpoint_id, dst->identity, ep->identity,
				      MB_POLICY_INGRESS, p->proto, mb_policy_port6(p), p->len, &res);
		t->match_type = res.match_type;
		t->action = res.action;
		t->proxy_port = res.proxy_port;
		mb_verdict6(skb, cfg, p, t);
		if (ret < 0)
			return ret;	/* the drop is the destination's */
		t->direction = MB_DIR_EGRESS;
		t->endpoint_id = (__u16)ep->endpoint_id;
		t->match_type = match_type;
		t->action = action;
		proxy_port = res.proxy_port;
		proxy_dir = MB_POLICY_INGRESS;
	}
	/* Declared here, after the policy lookups, so that the compiler can give their stack
	 * slots to it. */
	struct mb_ct_entry e = {
		.src_identity = ep->identity,
		.endpoint_id = (__u16)ep->endpoint_id,
		.rev_nat_index = rev_nat_index,
	};

	if (proxy_port) {
		struct mb_proxy6_value orig = {
			.orig_dport = p->dport,
			.endpoint_id = proxy_dir == MB_POLICY_INGRESS && dst ?
				(__u16)dst->endpoint_id : (__u16)ep->endpoint_id,
			.src_identity = ep->identity,
			.dst_identity = t->dst_identity,
			.direction = proxy_dir,
		};

		if (!cfg || mb_v6_is_zero(cfg->router_ip6))
			return DROP_PROXY_SET_FAILED;
		__builtin_memcpy(&orig.orig_daddr, &p->daddr, 16);
		e.flags |= MB_CT_F_PROXY_REDIRECT;
		e.proxy_port = proxy_port;
		if (mb_ct_create6(tuple, &e, p->tcp_flags, p->len, now) < 0)
			return DROP_CT_CREATE_FAILED;
		t->proxy_port = proxy_port;
		ret = mb_redirect_to_proxy6(skb, p, cfg, proxy_port, &orig, tuple, &e, now);
		return ret < 0 ? ret : 1;
	}
	if (rev_nat_index)
		e.flags |= hairpin ? MB_CT_F_HAIRPIN : MB_CT_F_REV_NAT;
	if (mb_ct_create6(tuple, &e, p->tcp_flags, p->len, now) < 0)
		return DROP_CT_CREATE_FAILED;
	return 0;
}

/* A new connection arriving at a workload: ingress policy (the proxy's upstream connections,
 * recognised by their skb mark, carry the client's identity and pass L7 entries), conntrack
 * entry. Returns 0 or a DROP_* code. */
static __always_inline int mb_new6_ingress(struct __sk_buff *skb, struct mb_pkt6 *p,
					   const struct mb_endpoint *ep,
					   const struct mb_config *cfg, struct mb_trace_ctx *t,
					   struct mb_ct_tuple6 *tuple, __u64 now)
{
	__u32 mark = skb->mark;
	bool from_proxy = (mark & MB_MARK_MAGIC_MASK) == MB_MARK_MAGIC_PROXY;
	struct mb_policy_result res = {};
	struct mb_ct_entry e = {
		.endpoint_id = (__u16)ep->endpoint_id,
	};
	int ret;

	if (from_proxy) {
		t->src_identity = MB_MARK_IDENTITY(mark);
		e.flags |= MB_CT_F_FROM_PROXY;
	} else {
		struct mb_endpoint *src = bpf_map_lookup_elem(&mb_lxc6, &p->saddr);

		t->src_identity = src ? src->identity : mb_ipcache_identity6(&p->saddr);
	}
	e.src_identity = t->src_identity;
	if (ep->flags & MB_EP_F_ENFORCE_INGRESS) {
		ret = mb_policy_check(ep->endpoint_id, ep->identity, t->src_identity,
				      MB_POLICY_INGRESS, p->proto, mb_policy_port6(p), p->len, &res);
		t->match_type = res.match_type;
		t->action = res.action;
		if (ret == 0 && res.proxy_port && from_proxy)
			t->action = MB_ACTION_ALLOWED;	/* the proxy already enforced L7 */
		t->proxy_port = res.proxy_port;
		mb_verdict6(skb, cfg, p, t);
		if (ret < 0)
			return ret;
		/* L7 ingress rules for a source outside this node: the packet is already leaving
		 * towards the workload and cannot be turned to the proxy here. */
		if (res.proxy_port && !from_proxy)
			return DROP_PROXY_SET_FAILED;
	}
	if (mb_ct_create6(tuple, &e, p->tcp_flags, p->len, now) < 0)
		return DROP_CT_CREATE_FAILED;
	return 0;
}

/* One IPv6 packet through an endpoint program: `from_container` is the workload's egress. */
static __always_inline int mb_endpoint6(struct __sk_buff *skb, const struct mb_endpoint *ep,
					bool from_container)
{
	struct mb_config *cfg = mb_get_config();
	struct mb_trace_ctx t = {
		.endpoint_id = (__u16)ep->endpoint_id,
		.direction = from_container ? MB_DIR_EGRESS : MB_DIR_INGRESS,
	};
	struct mb_pkt6 p = {};
	struct mb_ct_tuple6 tuple = {};
	struct mb_ct_entry *ct;
	__u16 rev_nat_index = 0;
	__u8 obs = from_container ? MB_TRACE_FROM_LXC : MB_TRACE_TO_LXC;
	bool hairpin = false;
	__u64 now;
	int ret;

	if (from_container)
		t.src_identity = ep->identity;
	else
		t.dst_identity = ep->identity;
	ret = mb_parse6(skb, &p);
	if (ret < 0)
		return mb_drop6(skb, &p, &t, ret);
	if (ret == 1) {
		/* Neighbour discovery keeps the link working; it carries no workload data. */
		mb_count(MB_METRIC_FORWARD, t.direction, p.len);
		return TC_ACT_OK;
	}
	if (from_container && !mb_v6_eq(&p.saddr, ep->ip6))
		return mb_drop6(skb, &p, &t, DROP_INVALID_SIP);
	now = mb_ct_now();
	if (from_container) {
		/* The tuple before service DNAT (the service selection's key, and a hairpin
		 * flow's entry for its replies); the conntrack lookup below rewrites it. */
		__builtin_memcpy(&tuple.daddr, &p.daddr, 16);
		__builtin_memcpy(&tuple.saddr, &p.saddr, 16);
		tuple.dport = p.dport;
		tuple.sport = p.sport;
		tuple.nexthdr = p.proto;
		ret = mb_lb6_translate(skb, &p, ep, cfg, &tuple, &rev_nat_index, now);
		if (ret < 0)
			return mb_drop6(skb, &p, &t, ret);
		if (rev_nat_index) {
			t.flags |= MB_EVF_NAT;
			t.orig_daddr = rev_nat_index;	/* IPv6: the service id (mb_event_fill6) */
			ret = mb_hairpin6(skb, &p, ep, cfg, &tuple, rev_nat_index, now);
			if (ret < 0)
				return mb_drop6(skb, &p, &t, ret);
			hairpin = ret == 1;
		}
	}

	if (unlikely(p.related) && mb_ct_related6(&p)) {
		t.flags |= MB_EVF_REPLY;
		goto forward;
	}

	switch (mb_ct_lookup6(&p, &tuple, &ct)) {
	case MB_CT_ESTABLISHED:
		mb_ct_touch(ct, p.proto, p.tcp_flags, p.len, false, now);
		if (!from_container)
			t.src_identity = ct->src_identity;
		if (from_container && (ct->flags & MB_CT_F_PROXY_REDIRECT)) {
			t.proxy_port = ct->proxy_port;
			ret = mb_redirect_to_proxy6(skb, &p, cfg, ct->proxy_port, NULL, NULL, NULL,
						    now);
			if (ret < 0)
				return mb_drop6(skb, &p, &t, ret);
			obs = MB_TRACE_TO_PROXY;
			goto count;
		}
		break;
	case MB_CT_REPLY:
		mb_ct_touch(ct, p.proto, p.tcp_flags, p.len, true, now);
		t.flags |= MB_EVF_REPLY;
		if (from_container) {
			t.dst_identity = ct->src_identity;
			if (ct->flags & MB_CT_F_HAIRPIN) {
				ret = mb_hairpin6_reply(skb, &p, ct);
				if (ret < 0)
					return mb_drop6(skb, &p, &t, ret);
				t.flags |= MB_EVF_NAT;
			}
		} else if (ct->flags & MB_CT_F_REV_NAT) {
			/* Reply of a service or proxied flow: restore the address the client used. */
			if (ct->proxy_port) {
				ret = mb_proxy6_rev_nat(skb, &p, ct);
				if (ret < 0)
					return mb_drop6(skb, &p, &t, ret);
				t.flags |= MB_EVF_NAT;
			} else {
				__u32 idx = ct->rev_nat_index;
				struct mb_lb6_revnat *rn =
					bpf_map_lookup_elem(&mb_lb6_reverse_nat, &idx);

				if (rn) {
					ret = mb_nat6(skb, &p, false, &rn->address, rn->port);
					if (ret < 0)
						return mb_drop6(skb, &p, &t, ret);
					t.flags |= MB_EVF_NAT;
				}
			}
		}
		break;
	default:
		t.flags |= MB_EVF_CT_NEW;
		if (from_container) {
			ret = mb_new6_egress(skb, &p, ep, cfg, &t, &tuple, rev_nat_index, hairpin,
					     now);
			if (ret < 0)
				return mb_drop6(skb, &p, &t, ret);
			if (ret == 1) {
				obs = MB_TRACE_TO_PROXY;
				goto count;
			}
		} else {
			ret = mb_new6_ingress(skb, &p, ep, cfg, &t, &tuple, now);
			if (ret < 0)
				return mb_drop6(skb, &p, &t, ret);
		}
		break;
	}

forward:
	ret = from_container ? mb_bandwidth_egress(skb, ep->endpoint_id) :
			       mb_bandwidth_ingress(skb, ep->endpoint_id);
	if (ret < 0)
		return mb_drop6(skb, &p, &t, ret);
count:
	mb_count(MB_METRIC_FORWARD, t.direction, p.len);
	if (mb_want_trace(cfg, t.flags & MB_EVF_CT_NEW))
		mb_event6(skb, &p, &t, MB_EVENT_TRACE, obs);
	return TC_ACT_OK;
}
