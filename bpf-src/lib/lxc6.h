// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The endpoint datapath for IPv6 (see lib/lxc.h for IPv4 and lib/ipv6.h for the building
 * blocks). */
#pragma once

#include "lib/lxc.h"
#include "lib/ipv6.h"

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
	now = bpf_ktime_get_ns();
	if (from_container) {
		ret = mb_lb6_translate(skb, &p, ep, cfg, &rev_nat_index, now);
		if (ret < 0)
			return mb_drop6(skb, &p, &t, ret);
		if (rev_nat_index)
			t.flags |= MB_EVF_NAT;
	}

	switch (mb_ct_lookup6(&p, &tuple, &ct)) {
	case MB_CT_ESTABLISHED:
		mb_ct_touch(ct, p.proto, p.tcp_flags, p.len, false, now);
		break;
	case MB_CT_REPLY:
		mb_ct_touch(ct, p.proto, p.tcp_flags, p.len, true, now);
		t.flags |= MB_EVF_REPLY;
		if (!from_container && (ct->flags & MB_CT_F_REV_NAT)) {
			__u32 idx = ct->rev_nat_index;
			struct mb_lb6_revnat *rn = bpf_map_lookup_elem(&mb_lb6_reverse_nat, &idx);

			if (rn) {
				ret = mb_nat6(skb, &p, false, &rn->address, rn->port);
				if (ret < 0)
					return mb_drop6(skb, &p, &t, ret);
				t.flags |= MB_EVF_NAT;
			}
		}
		break;
	default: {
		struct mb_ct_entry e = {
			.endpoint_id = (__u16)ep->endpoint_id,
			.rev_nat_index = rev_nat_index,
			.flags = rev_nat_index ? MB_CT_F_REV_NAT : 0,
		};
		struct mb_policy_result res = {};

		t.flags |= MB_EVF_CT_NEW;
		if (from_container) {
			struct mb_endpoint *dst = bpf_map_lookup_elem(&mb_lxc6, &p.daddr);

			t.dst_identity = dst ? dst->identity : mb_ipcache_identity6(&p.daddr);
			if (ep->flags & MB_EP_F_ENFORCE_EGRESS) {
				ret = mb_policy_check(ep->endpoint_id, ep->identity, t.dst_identity,
						      MB_POLICY_EGRESS, p.proto, mb_policy_port6(&p),
						      p.len, &res);
				t.match_type = res.match_type;
				t.action = res.action;
				if (cfg && (cfg->flags & MB_CFG_VERDICTS))
					mb_event6(skb, &p, &t, MB_EVENT_POLICY_VERDICT, 0);
				if (ret < 0)
					return mb_drop6(skb, &p, &t, ret);
				if (res.proxy_port)
					return mb_drop6(skb, &p, &t, DROP_PROXY_UNKNOWN_PROTO);
			}
			if (dst && (dst->flags & MB_EP_F_ENFORCE_INGRESS)) {
				struct mb_trace_ctx ti = t;

				ti.direction = MB_DIR_INGRESS;
				ti.endpoint_id = (__u16)dst->endpoint_id;
				ret = mb_policy_check(dst->endpoint_id, dst->identity, ep->identity,
						      MB_POLICY_INGRESS, p.proto, mb_policy_port6(&p),
						      p.len, &res);
				ti.match_type = res.match_type;
				ti.action = res.action;
				if (cfg && (cfg->flags & MB_CFG_VERDICTS))
					mb_event6(skb, &p, &ti, MB_EVENT_POLICY_VERDICT, 0);
				if (ret < 0)
					return mb_drop6(skb, &p, &ti, ret);
				if (res.proxy_port)
					return mb_drop6(skb, &p, &ti, DROP_PROXY_UNKNOWN_PROTO);
			}
			e.src_identity = ep->identity;
		} else {
			struct mb_endpoint *src = bpf_map_lookup_elem(&mb_lxc6, &p.saddr);
			__u32 mark = skb->mark;

			if ((mark & MB_MARK_MAGIC_MASK) == MB_MARK_MAGIC_PROXY)
				t.src_identity = MB_MARK_IDENTITY(mark);
			else
				t.src_identity = src ? src->identity : mb_ipcache_identity6(&p.saddr);
			if (ep->flags & MB_EP_F_ENFORCE_INGRESS) {
				ret = mb_policy_check(ep->endpoint_id, ep->identity, t.src_identity,
						      MB_POLICY_INGRESS, p.proto, mb_policy_port6(&p),
						      p.len, &res);
				t.match_type = res.match_type;
				t.action = res.action;
				if (cfg && (cfg->flags & MB_CFG_VERDICTS))
					mb_event6(skb, &p, &t, MB_EVENT_POLICY_VERDICT, 0);
				if (ret < 0)
					return mb_drop6(skb, &p, &t, ret);
				if (res.proxy_port &&
				    (mark & MB_MARK_MAGIC_MASK) != MB_MARK_MAGIC_PROXY)
					return mb_drop6(skb, &p, &t, DROP_PROXY_SET_FAILED);
			}
			e.src_identity = t.src_identity;
		}
		if (mb_ct_create6(&tuple, &e, p.tcp_flags, p.len, now) < 0)
			return mb_drop6(skb, &p, &t, DROP_CT_CREATE_FAILED);
		break;
	}
	}

	ret = from_container ? mb_bandwidth_egress(skb, ep->endpoint_id) :
			       mb_bandwidth_ingress(skb, ep->endpoint_id);
	if (ret < 0)
		return mb_drop6(skb, &p, &t, ret);
	mb_count(MB_METRIC_FORWARD, t.direction, p.len);
	if (mb_want_trace(cfg, t.flags & MB_EVF_CT_NEW))
		mb_event6(skb, &p, &t, MB_EVENT_TRACE,
			  from_container ? MB_TRACE_FROM_LXC : MB_TRACE_TO_LXC);
	return TC_ACT_OK;
}
