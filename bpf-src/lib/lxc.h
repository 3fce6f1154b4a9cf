// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The endpoint datapath, both address families, run on the host-side veth of each workload:
 *   from-container (tc ingress of the host veth): the workload's egress. Service DNAT,
 *     conntrack, the sender's egress policy and, when the destination is a local endpoint, the
 *     destination's ingress policy (local delivery), L7 redirect, bandwidth (EDT).
 *   to-container (tc egress of the host veth): the workload's ingress. Conntrack, reverse NAT
 *     of replies, ingress policy for traffic from outside/the host/the L7 proxy.
 * One loaded program serves every endpoint: the endpoint is found by skb->ifindex in
 * mb_ep_direct/mb_endpoints, so attaching a new endpoint needs no new verification.
 *
 * Each direction is one walk for both families (mb_from_container, mb_to_container) over
 * named steps: parse, source check, service translation, related ICMP, conntrack, the new
 * connection's identity + policy + L7 redirect + conntrack entry, reverse NAT, deliver. The
 * packet travels as `void *p` plus `v6`, a constant after inlining; steps that touch addresses
 * dispatch to a per-family version (mb_lb4_translate / mb_lb6_translate, ...), the others are
 * shared. The four entry points (mb_from_container4/6, mb_to_container4/6) only declare the
 * family's packet and tuple records and run the walk. The new-connection step keeps a shape
 * per family: IPv4's is written for the verifier (from_container is the program nearest its
 * budget), IPv6's for the 512-byte stack (no copies of the trace context or the tuple). */
#pragma once

#include "lib/common.h"
#include "lib/conntrack.h"
#include "lib/drop_reasons.h"
#include "lib/ipcache.h"
#include "lib/lb.h"
#include "lib/nat.h"
#include "lib/overlay.h"
#include "lib/parse.h"
#include "lib/policy.h"
#include "lib/proxy.h"
#include "lib/trace.h"
#include "lib/bandwidth_hook.h"
#include "lib/test_hooks.h"

/* ---- Steps shared by both families ---------------------------------------------------- */

/* What a step returns to let the walk go on (any other value is the program's verdict);
 * MB_CONTINUE_OVERLAY: go on, and deliver through the overlay (lib/overlay.h). */
#define MB_CONTINUE	(-1)
#define MB_CONTINUE_OVERLAY	(-2)

/* Trace events are opt-in (mb_config.flags): every packet, or the first of each connection. */
static __always_inline bool mb_want_trace(const struct mb_config *cfg, bool is_new)
{
	if (!cfg)
		return false;
	return (cfg->flags & MB_CFG_TRACE_ALL) || (is_new && (cfg->flags & MB_CFG_TRACE_NEW));
}

/* Policy verdict events are opt-in too: report the verdict `t` describes. */
static __always_inline void mb_verdict(struct __sk_buff *skb, const struct mb_config *cfg,
				       const void *p, bool v6, const struct mb_trace_ctx *t)
{
	if (cfg && (cfg->flags & MB_CFG_VERDICTS))
		mb_policy_verdict(skb, p, v6, t);
}

/* A pure TCP SYN leaving a workload opens a connection: it is never a reply, and whatever an
 * entry under its tuple says (a retransmitted SYN, or a port reused after close), the new
 * connection is checked against the policy of now and its entry written afresh. So it skips
 * both conntrack lookups. Only from-container: the to-container half of a local delivery
 * relies on the entry the sender's program just wrote. */
static __always_inline bool mb_ct_opens(__u8 proto, __u8 tcp_flags)
{
	return proto == IPPROTO_TCP && (tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

/* The L7 proxy's upstream connections carry the client's identity in their skb mark. */
static __always_inline bool mb_from_proxy_mark(__u32 mark)
{
	return (mark & MB_MARK_MAGIC_MASK) == MB_MARK_MAGIC_PROXY;
}

/* One policy lookup and its report: the verdict goes into `t` (match type, action, proxy
 * port) and out as a verdict event. Returns 0 (allowed; res->proxy_port: redirect) or a DROP_*
 * code. */
static __always_inline int mb_policy_step(struct __sk_buff *skb, const struct mb_config *cfg,
					  const void *p, bool v6, const struct mb_endpoint *local,
					  __u32 remote_identity, __u8 direction, __u8 proto,
					  __be16 port, __u32 len, struct mb_trace_ctx *t,
					  struct mb_policy_result *res)
{
	int ret = mb_policy_check(local->endpoint_id, local->identity, remote_identity, direction,
				  proto, port, len, res);

	t->match_type = res->match_type;
	t->action = res->action;
	t->proxy_port = res->proxy_port;
	t->rule_set = res->rule_set;
	t->flags = res->audit ? t->flags | MB_EVF_AUDIT : t->flags & ~MB_EVF_AUDIT;
	mb_verdict(skb, cfg, p, v6, t);
	return ret;
}

/* Policy of a new incoming connection (t->src_identity known). The proxy's upstream
 * connections pass L7 entries (the proxy enforced them); L7 ingress rules for a source outside
 * this node are a drop: the packet is already leaving towards the workload and cannot be
 * turned to the proxy here, and letting it through would skip the L7 check. Returns 0 or a
 * DROP_* code. */
static __always_inline int mb_ingress_policy(struct __sk_buff *skb, const struct mb_config *cfg,
					     const void *p, bool v6, __u8 proto, __be16 port,
					     __u32 len, const struct mb_endpoint *ep,
					     struct mb_trace_ctx *t, bool from_proxy)
{
	struct mb_policy_result res = {};
	int ret;

	if (!(ep->flags & MB_EP_F_ENFORCE_INGRESS))
		return 0;
	ret = mb_policy_check(ep->endpoint_id, ep->identity, t->src_identity, MB_POLICY_INGRESS,
			      proto, port, len, &res);
	t->match_type = res.match_type;
	t->action = res.action;
	t->rule_set = res.rule_set;
	t->flags = res.audit ? t->flags | MB_EVF_AUDIT : t->flags & ~MB_EVF_AUDIT;
	if (ret == 0 && res.proxy_port && from_proxy)
		t->action = MB_ACTION_ALLOWED;	/* the proxy already enforced L7 */
	t->proxy_port = res.proxy_port;
	mb_verdict(skb, cfg, p, v6, t);
	if (ret < 0)
		return ret;
	if (res.proxy_port && !from_proxy)
		return DROP_PROXY_SET_FAILED;
	return 0;
}

/* Deliver a packet that passed: bandwidth (EDT on the workload's egress, policing on its
 * ingress), the forward counter and the trace event. */
static __always_inline int mb_deliver(struct __sk_buff *skb, const struct mb_config *cfg,
				      const void *p, bool v6, __u32 len,
				      const struct mb_endpoint *ep, const struct mb_trace_ctx *t,
				      bool from_container)
{
	int ret = from_container ? mb_bandwidth_egress(skb, ep->endpoint_id) :
				   mb_bandwidth_ingress(skb, ep->endpoint_id);

	if (ret < 0)
		return mb_drop(skb, p, v6, len, t, ret, 0);
	mb_count(MB_METRIC_FORWARD, t->direction, len);
	if (mb_want_trace(cfg, t->flags & MB_EVF_CT_NEW))
		mb_trace(skb, p, v6, t, from_container ? MB_TRACE_FROM_LXC : MB_TRACE_TO_LXC);
	return TC_ACT_OK;
}

/* A packet redirected to the L7 proxy enters the host stack: counted and traced, not shaped
 * (the proxy's own upstream connection is). */
static __always_inline int mb_deliver_to_proxy(struct __sk_buff *skb, const struct mb_config *cfg,
					       const void *p, bool v6, __u32 len,
					       const struct mb_trace_ctx *t)
{
	mb_count(MB_METRIC_FORWARD, t->direction, len);
	if (mb_want_trace(cfg, t->flags & MB_EVF_CT_NEW))
		mb_trace(skb, p, v6, t, MB_TRACE_TO_PROXY);
	return TC_ACT_OK;
}

/* ---- IPv4 steps ------------------------------------------------------------------------ */

/* Hairpin (the client is its own backend, p->daddr == p->saddr after DNAT): without a source
 * rewrite the server's replies would stay inside the workload and never be reverse-NATed. The
 * source becomes mb_config.hairpin_ip4 (link-local, not an address of the node, which would
 * make the packet a martian), so replies come back through this program; the entry
 * {client -> service} lets the translated replies in on the way back. Returns 1 (rewritten),
 * 0 (not a hairpin flow, or hairpin off) or a DROP_* code. */
static __always_inline int mb_hairpin4(struct __sk_buff *skb, struct mb_pkt4 *p,
				       const struct mb_endpoint *ep, const struct mb_config *cfg,
				       const struct mb_trace_ctx *t, __u16 rev_nat_index, __u64 now)
{
	int ret;

	if (p->daddr != p->saddr || !cfg || !cfg->hairpin_ip4)
		return 0;
	struct mb_ct_tuple4 ht = {
		.daddr = t->orig_daddr,
		.saddr = p->saddr,
		.dport = t->orig_dport,
		.sport = p->sport,
		.nexthdr = p->proto,
	};

	/* What to_container sees as the reply tuple: {VIP -> client}. */
	if (!bpf_map_lookup_elem(&mb_ct4, &ht)) {
		struct mb_ct_entry he = {
			.src_identity = ep->identity,
			.endpoint_id = (__u16)ep->endpoint_id,
			.rev_nat_index = rev_nat_index,
		};

		mb_ct_create4(&ht, &he, p->tcp_flags, p->len, now);
	}
	ret = mb_snat4(skb, p, cfg->hairpin_ip4, p->sport);
	return ret < 0 ? ret : 1;
}

/* Service translation (before conntrack: the flow is tracked by its backend). The backend a
 * flow chose is kept in a conntrack entry under the pre-DNAT tuple (MB_CT_TUPLE_F_SERVICE), so
 * later packets keep it while it drains. t->orig_daddr/orig_dport hold the packet's destination
 * on entry. Returns 0 or a DROP_* code; *rev_nat_index is the service id when translated (0
 * otherwise), *hairpin whether the source was rewritten too. */
static __always_inline int mb_lb4_translate(struct __sk_buff *skb, struct mb_pkt4 *p,
					    const struct mb_endpoint *ep,
					    const struct mb_config *cfg, struct mb_trace_ctx *t,
					    __u16 *rev_nat_index, bool *hairpin, __u64 now)
{
	struct mb_lb_service *svc = mb_lb4_lookup(p->daddr, p->dport, p->proto);
	struct mb_lb4_backend *be = NULL;
	struct mb_ct_entry *sct = NULL;
	__u32 backend_id = 0;
	int ret;

	if (!svc)
		return 0;
	struct mb_ct_tuple4 st = {
		.daddr = p->daddr,
		.saddr = p->saddr,
		.dport = p->dport,
		.sport = p->sport,
		.nexthdr = p->proto,
		.flags = MB_CT_TUPLE_F_SERVICE,
	};

	/* A connection's first SYN selects afresh: with Maglev a retransmitted SYN maps to the
	 * same backend anyway (random selection looks its choice up, so that a late SYN-ACK
	 * from the first pick still meets the same backend). */
	if (svc->algorithm != MB_LB_ALG_MAGLEV || !mb_ct_opens(p->proto, p->tcp_flags))
		sct = bpf_map_lookup_elem(&mb_ct4, &st);
	if (sct) {
		backend_id = sct->backend_id;
		be = mb_lb4_backend(&backend_id);
		if (be)
			mb_ct_touch(sct, p->proto, p->tcp_flags, p->len, false, now);
	}
	if (!be) {
		backend_id = mb_lb4_select(svc, p->saddr, p->sport, p->dport, p->proto,
					   cfg ? cfg->hash_seed : 0);
		be = mb_lb4_backend(&backend_id);
		if (!be)
			return DROP_NO_SERVICE;
		struct mb_ct_entry se = {
			.src_identity = ep->identity,
			.backend_id = backend_id,
			.rev_nat_addr = p->daddr,
			.rev_nat_port = p->dport,
			.rev_nat_index = svc->rev_nat_index,
			.flags = MB_CT_F_SERVICE,
			.endpoint_id = (__u16)ep->endpoint_id,
		};
		mb_ct_create4(&st, &se, p->tcp_flags, p->len, now);
	}
	ret = mb_dnat4_fast(skb, p, be->address, be->port);
	if (ret < 0)
		return ret;
	t->flags |= MB_EVF_NAT;
	*rev_nat_index = svc->rev_nat_index;
	ret = mb_hairpin4(skb, p, ep, cfg, t, svc->rev_nat_index, now);
	if (ret < 0)
		return ret;
	*hairpin = ret == 1;
	return 0;
}

/* The server half of a hairpin flow answers the hairpin address: send it back to the client
 * (itself) from the service address. */
static __always_inline int mb_hairpin4_reply(struct __sk_buff *skb, struct mb_pkt4 *p,
					     const struct mb_ct_entry *ct)
{
	__be32 client = p->saddr;
	__be16 client_port = p->dport;
	int ret;

	ret = mb_snat4(skb, p, ct->rev_nat_addr, ct->rev_nat_port);
	if (ret < 0)
		return ret;
	return mb_dnat4(skb, p, client, client_port);
}

/* L7 redirect of a new IPv4 connection whose policy entry names a proxy port: its entry is
 * written with MB_CT_F_PROXY_REDIRECT (later packets follow it), the original destination is
 * recorded for the proxy, and the packet is DNATed to the proxy. Returns the verdict. */
static __always_inline int mb_l7_redirect4(struct __sk_buff *skb, struct mb_pkt4 *p,
					   const struct mb_endpoint *ep,
					   const struct mb_endpoint *dst,
					   const struct mb_config *cfg, struct mb_trace_ctx *t,
					   const struct mb_ct_tuple4 *tuple, struct mb_ct_entry *e,
					   __u16 proxy_port, __u8 proxy_dir, __u16 rev_nat_index,
					   __u64 now)
{
	struct mb_proxy4_value orig = {
		.orig_daddr = p->daddr,
		.orig_dport = p->dport,
		.endpoint_id = proxy_dir == MB_POLICY_INGRESS && dst ?
			(__u16)dst->endpoint_id : (__u16)ep->endpoint_id,
		.src_identity = ep->identity,
		.dst_identity = t->dst_identity,
		.direction = proxy_dir,
	};
	int ret;

	e->flags |= MB_CT_F_PROXY_REDIRECT;
	e->proxy_port = proxy_port;
	e->rev_nat_index = rev_nat_index;
	if (mb_ct_create4(tuple, e, p->tcp_flags, p->len, now) < 0)
		return mb_drop4(skb, p, t, DROP_CT_CREATE_FAILED, 0);
	t->proxy_port = proxy_port;
	ret = mb_redirect_to_proxy4(skb, p, cfg, proxy_port, &orig, t->orig_daddr, t->orig_dport,
				    rev_nat_index, true, now);
	if (ret < 0)
		return mb_drop4(skb, p, t, ret, 0);
	return mb_deliver_to_proxy(skb, cfg, p, false, p->len, t);
}

/* A new connection leaving a workload: the sender's egress policy and, for a local
 * destination, the destination's ingress policy (checked here, while the packet can still be
 * redirected to the proxy on its way into the host stack), L7 redirect, conntrack entry.
 * Returns MB_CONTINUE (deliver) or the verdict (redirected to the proxy, or dropped). */
static __always_inline int mb_new4_egress(struct __sk_buff *skb, struct mb_pkt4 *p,
					  const struct mb_endpoint *ep, const struct mb_config *cfg,
					  struct mb_trace_ctx *t, const struct mb_ct_tuple4 *tuple,
					  __u16 rev_nat_index, bool hairpin, __u64 now)
{
	struct mb_endpoint *dst = mb_lookup_lxc4(cfg, &p->daddr);
	struct mb_ipcache_value *remote = dst ? NULL : mb_ipcache_lookup4(p->daddr);
	/* Taken now, so the entry's pointer is dead before the policy lookups (a live one keeps
	 * the verifier's states apart). */
	__u16 overlay = mb_overlay_flag(cfg, remote);
	struct mb_policy_result res = {};
	struct mb_ct_entry e = {
		.src_identity = ep->identity,
		.endpoint_id = (__u16)ep->endpoint_id,
	};
	__u16 proxy_port = 0;
	__u8 proxy_dir = MB_POLICY_EGRESS;
	int ret;

	t->dst_identity = dst ? dst->identity : remote ? remote->identity : MB_ID_WORLD;
	if (ep->flags & MB_EP_F_ENFORCE_EGRESS) {
		ret = mb_policy_step(skb, cfg, p, false, ep, t->dst_identity, MB_POLICY_EGRESS,
				     p->proto, mb_policy_port4(p), p->len, t, &res);
		if (ret < 0)
			return mb_drop4(skb, p, t, ret, 0);
		proxy_port = res.proxy_port;
	}
	if (!proxy_port && dst && (dst->flags & MB_EP_F_ENFORCE_INGRESS)) {
		/* Reported in the destination's terms (a copy: IPv4 has the stack for it). */
		struct mb_trace_ctx ti = *t;

		ti.direction = MB_DIR_INGRESS;
		ti.endpoint_id = (__u16)dst->endpoint_id;
		ret = mb_policy_step(skb, cfg, p, false, dst, ep->identity, MB_POLICY_INGRESS,
				     p->proto, mb_policy_port4(p), p->len, &ti, &res);
		if (ret < 0)
			return mb_drop4(skb, p, &ti, ret, 0);
		proxy_port = res.proxy_port;
		proxy_dir = MB_POLICY_INGRESS;
	}
	if (proxy_port)
		return mb_l7_redirect4(skb, p, ep, dst, cfg, t, tuple, &e, proxy_port, proxy_dir,
				       rev_nat_index, now);
	if (rev_nat_index) {
		e.flags |= hairpin ? MB_CT_F_HAIRPIN : MB_CT_F_REV_NAT;
		e.rev_nat_addr = t->orig_daddr;
		e.rev_nat_port = t->orig_dport;
		e.rev_nat_index = rev_nat_index;
	}
	e.flags |= overlay;
	if (mb_ct_create4(tuple, &e, p->tcp_flags, p->len, now) < 0)
		return mb_drop4(skb, p, t, DROP_CT_CREATE_FAILED, 0);
	return (e.flags & MB_CT_F_OVERLAY) ? MB_CONTINUE_OVERLAY : MB_CONTINUE;
}

/* ---- IPv6 steps ------------------------------------------------------------------------ */

/* Hairpin, as mb_hairpin4, with mb_config.hairpin_ip6. `ht` is the packet's tuple before DNAT
 * ({client -> service}). */
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

/* Service translation, as mb_lb4_translate. `st` is the packet's tuple before DNAT (flags 0):
 * the service selection is looked up and stored under it with MB_CT_TUPLE_F_SERVICE, and it is
 * left as it came (the caller reuses it; the IPv6 program's stack has no room for a copy). The
 * service entry has no room for an IPv6 reverse-NAT address: replies take it from
 * mb_lb6_reverse_nat. */
static __always_inline int mb_lb6_translate(struct __sk_buff *skb, struct mb_pkt6 *p,
					    const struct mb_endpoint *ep,
					    const struct mb_config *cfg, struct mb_trace_ctx *t,
					    struct mb_ct_tuple6 *st, __u16 *rev_nat_index,
					    bool *hairpin, __u64 now)
{
	struct mb_lb_service *svc = mb_lb6_lookup(&p->daddr, p->dport, p->proto);
	struct mb_lb6_backend *be = NULL;
	struct mb_ct_entry *sct = NULL;
	__u32 backend_id = 0;
	int ret;

	if (!svc)
		return 0;
	st->flags = MB_CT_TUPLE_F_SERVICE;
	/* As IPv4: a first SYN to a Maglev service selects afresh. */
	if (svc->algorithm != MB_LB_ALG_MAGLEV || !mb_ct_opens(p->proto, p->tcp_flags))
		sct = bpf_map_lookup_elem(&mb_ct6, st);
	if (sct) {
		backend_id = sct->backend_id;
		be = mb_lb6_backend(&backend_id);
		if (be)
			mb_ct_touch(sct, p->proto, p->tcp_flags, p->len, false, now);
	}
	if (!be) {
		backend_id = mb_lb6_select(svc, &p->saddr, p->sport, p->dport, p->proto,
					   cfg ? cfg->hash_seed6 : 0);
		be = mb_lb6_backend(&backend_id);
		if (!be) {
			st->flags = 0;
			return DROP_NO_SERVICE;
		}
		struct mb_ct_entry se = {
			.src_identity = ep->identity,
			.backend_id = backend_id,
			.rev_nat_index = svc->rev_nat_index,
			.flags = MB_CT_F_SERVICE,
			.endpoint_id = (__u16)ep->endpoint_id,
		};
		mb_ct_create6(st, &se, p->tcp_flags, p->len, now);
	}
	st->flags = 0;
	ret = mb_nat6(skb, p, true, &be->address, be->port);
	if (ret < 0)
		return ret;
	t->flags |= MB_EVF_NAT;
	t->rev_nat_index = svc->rev_nat_index;
	*rev_nat_index = svc->rev_nat_index;
	ret = mb_hairpin6(skb, p, ep, cfg, st, svc->rev_nat_index, now);
	if (ret < 0)
		return ret;
	*hairpin = ret == 1;
	return 0;
}

/* The server half of a hairpin flow, as mb_hairpin4_reply (the service address from
 * mb_lb6_reverse_nat). */
static __always_inline int mb_hairpin6_reply(struct __sk_buff *skb, struct mb_pkt6 *p,
					     const struct mb_ct_entry *ct)
{
	struct mb_lb6_revnat *rn = mb_lb6_revnat(ct->rev_nat_index);
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

/* Reverse NAT of a reply to a service or proxied flow: restore the address the client used
 * (a proxied flow's from the proxy records, a service flow's from mb_lb6_reverse_nat).
 * Returns 1 (rewritten), 0 or a DROP_* code. */
static __always_inline int mb_rev_nat6(struct __sk_buff *skb, struct mb_pkt6 *p,
				       const struct mb_ct_entry *ct)
{
	struct mb_lb6_revnat *rn;
	int ret;

	if (ct->proxy_port) {
		ret = mb_proxy6_rev_nat(skb, p, ct);
		return ret < 0 ? ret : 1;
	}
	rn = mb_lb6_revnat(ct->rev_nat_index);
	if (!rn)
		return 0;
	ret = mb_nat6(skb, p, false, &rn->address, rn->port);
	return ret < 0 ? ret : 1;
}

/* A new connection leaving a workload, as mb_new4_egress, returning 0 (deliver), 2 (deliver
 * through the overlay), 1 (redirected to the proxy) or a DROP_* code with `t` in the terms of whoever dropped: the
 * destination's ingress verdict switches `t` in place and back, and `tuple` and the entry are
 * reused for the proxy leg (the IPv6 program's stack has no room for copies). */
static __always_inline int mb_new6_egress(struct __sk_buff *skb, struct mb_pkt6 *p,
					  const struct mb_endpoint *ep, const struct mb_config *cfg,
					  struct mb_trace_ctx *t, struct mb_ct_tuple6 *tuple,
					  __u16 rev_nat_index, bool hairpin, __u64 now)
{
	struct mb_endpoint *dst = mb_lookup_lxc6(cfg, &p->daddr);
	struct mb_ipcache_value *remote = dst ? NULL : mb_ipcache_lookup6(&p->daddr);
	__u16 overlay = mb_overlay_flag(cfg, remote);	/* as in mb_new4_egress */
	struct mb_policy_result res = {};
	__u16 proxy_port = 0;
	__u8 proxy_dir = MB_POLICY_EGRESS;
	int ret;

	t->dst_identity = dst ? dst->identity : remote ? remote->identity : MB_ID_WORLD;
	if (ep->flags & MB_EP_F_ENFORCE_EGRESS) {
		ret = mb_policy_step(skb, cfg, p, true, ep, t->dst_identity, MB_POLICY_EGRESS,
				     p->proto, mb_policy_port6(p), p->len, t, &res);
		if (ret < 0)
			return ret;
		proxy_port = res.proxy_port;
	}
	if (!proxy_port && dst && (dst->flags & MB_EP_F_ENFORCE_INGRESS)) {
		__u8 match_type = t->match_type, action = t->action;

		t->direction = MB_DIR_INGRESS;
		t->endpoint_id = (__u16)dst->endpoint_id;
		ret = mb_policy_step(skb, cfg, p, true, dst, ep->identity, MB_POLICY_INGRESS,
				     p->proto, mb_policy_port6(p), p->len, t, &res);
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
	e.flags |= overlay;
	if (mb_ct_create6(tuple, &e, p->tcp_flags, p->len, now) < 0)
		return DROP_CT_CREATE_FAILED;
	return (e.flags & MB_CT_F_OVERLAY) ? 2 : 0;
}

/* ---- The walks: one per direction, both families --------------------------------------- */

/* A family-neutral field of a packet summary (p: struct mb_pkt4 or mb_pkt6, as v6 says). */
#define MB_PKT(p, v6, field)	\
	((v6) ? ((const struct mb_pkt6 *)(p))->field : ((const struct mb_pkt4 *)(p))->field)

/* Parse step. Neighbour discovery (IPv6) passes as it is: it keeps the link working and
 * carries no workload data. Returns MB_CONTINUE or the verdict. */
static __always_inline int mb_parse_step(struct __sk_buff *skb, void *p, bool v6,
					 const struct mb_trace_ctx *t)
{
	int ret = v6 ? mb_parse6(skb, p) : mb_parse4(skb, p);

	if (ret < 0)
		return mb_drop(skb, p, v6, MB_PKT(p, v6, len), t, ret, 0);
	if (ret == 1) {
		mb_count(MB_METRIC_FORWARD, t->direction, MB_PKT(p, v6, len));
		return TC_ACT_OK;
	}
	return MB_CONTINUE;
}

/* Source check step: a workload sends from its own address only. */
static __always_inline bool mb_source_ok(const void *p, bool v6, const struct mb_endpoint *ep)
{
	if (v6)
		return mb_v6_eq(&((const struct mb_pkt6 *)p)->saddr, ep->ip6);
	return ((const struct mb_pkt4 *)p)->saddr == ep->ip4;
}

/* Service translation step (per family: mb_lb4_translate, mb_lb6_translate). `tuple` is the
 * packet's tuple before DNAT on entry (IPv6 keys its service entry by it) and the translated
 * packet's on return. */
static __always_inline int mb_service_step(struct __sk_buff *skb, void *p, bool v6,
					   const struct mb_endpoint *ep,
					   const struct mb_config *cfg, struct mb_trace_ctx *t,
					   void *tuple, __u16 *rev_nat_index, bool *hairpin,
					   __u64 now)
{
	int ret;

	if (v6) {
		mb_ct_tuple6_of(p, tuple);
		ret = mb_lb6_translate(skb, p, ep, cfg, t, tuple, rev_nat_index, hairpin, now);
		if (*rev_nat_index)
			mb_ct_tuple6_of(p, tuple);
		return ret;
	}
	/* The destination the client addressed (reported with MB_EVF_NAT once translated). */
	t->orig_daddr = ((struct mb_pkt4 *)p)->daddr;
	t->orig_dport = ((struct mb_pkt4 *)p)->dport;
	ret = mb_lb4_translate(skb, p, ep, cfg, t, rev_nat_index, hairpin, now);
	mb_ct_tuple4_of(p, tuple);
	return ret;
}

/* The packet's conntrack tuple, per family. */
static __always_inline void mb_tuple_step(const void *p, bool v6, void *tuple)
{
	if (v6)
		mb_ct_tuple6_of(p, tuple);
	else
		mb_ct_tuple4_of(p, tuple);
}

/* Conntrack step: the packet's entry (ESTABLISHED, REPLY) or none (NEW). */
static __always_inline enum mb_ct_status mb_ct_step(void *tuple, bool v6,
						    struct mb_ct_entry **ct)
{
	return v6 ? mb_ct_lookup6(tuple, ct) : mb_ct_lookup4(tuple, ct);
}

/* Related step: an ICMP error about a tracked connection passes like a reply. */
static __always_inline bool mb_related_step(const void *p, bool v6)
{
	if (likely(!MB_PKT(p, v6, related)))
		return false;
	return v6 ? mb_ct_related6(p) : mb_ct_related4(p);
}

/* L7 redirect step of an established flow that goes to the proxy: DNAT only (the original
 * destination was recorded by its first packet). */
static __always_inline int mb_proxy_step(struct __sk_buff *skb, void *p, bool v6,
					 const struct mb_config *cfg, __u16 proxy_port, __u64 now)
{
	if (v6)
		return mb_redirect_to_proxy6(skb, p, cfg, proxy_port, NULL, NULL, NULL, now);
	return mb_redirect_to_proxy4(skb, p, cfg, proxy_port, NULL, 0, 0, 0, false, now);
}

/* New outgoing connection step (identity, egress policy, local ingress policy, L7 redirect,
 * conntrack entry). Returns MB_CONTINUE (deliver), MB_CONTINUE_OVERLAY (deliver through the
 * overlay) or the verdict. */
static __always_inline int mb_new_egress_step(struct __sk_buff *skb, void *p, bool v6,
					      const struct mb_endpoint *ep,
					      const struct mb_config *cfg, struct mb_trace_ctx *t,
					      void *tuple, __u16 rev_nat_index, bool hairpin,
					      __u64 now)
{
	int ret;

	if (!v6)
		return mb_new4_egress(skb, p, ep, cfg, t, tuple, rev_nat_index, hairpin, now);
	ret = mb_new6_egress(skb, p, ep, cfg, t, tuple, rev_nat_index, hairpin, now);
	if (ret < 0)
		return mb_drop6(skb, p, t, ret, 0);
	if (ret == 1)
		return mb_deliver_to_proxy(skb, cfg, p, true, MB_PKT(p, v6, len), t);
	return ret == 2 ? MB_CONTINUE_OVERLAY : MB_CONTINUE;
}

/* Reverse NAT step of a reply to a service or proxied flow (to-container): the source the
 * client addressed comes back. Returns 1 (rewritten), 0 or a DROP_* code. */
static __always_inline int mb_rev_nat_step(struct __sk_buff *skb, void *p, bool v6,
					   struct mb_trace_ctx *t, const struct mb_ct_entry *ct)
{
	struct mb_pkt4 *p4 = p;
	int ret;

	if (v6)
		return mb_rev_nat6(skb, p, ct);
	t->orig_daddr = p4->saddr;
	t->orig_dport = p4->sport;
	ret = mb_snat4_fast(skb, p4, ct->rev_nat_addr, ct->rev_nat_port);
	return ret < 0 ? ret : 1;
}

/* Identity step of a new incoming connection's source: the proxy's mark (the proxy's
 * upstream connections carry the client's identity), else a local endpoint's, else the
 * ipcache's. */
static __always_inline __u32 mb_src_identity_step(struct __sk_buff *skb, const void *p, bool v6,
						  const struct mb_config *cfg, bool from_proxy)
{
	struct mb_endpoint *src;

	if (from_proxy)
		return MB_MARK_IDENTITY(skb->mark);
	if (v6) {
		const union mb_v6addr *saddr = &((const struct mb_pkt6 *)p)->saddr;

		src = mb_lookup_lxc6(cfg, saddr);
		return src ? src->identity : mb_ipcache_identity6(saddr);
	}
	src = mb_lookup_lxc4(cfg, &((const struct mb_pkt4 *)p)->saddr);
	return src ? src->identity : mb_ipcache_identity4(((const struct mb_pkt4 *)p)->saddr);
}

/* Admission of a new incoming connection whose source identity is known (t->src_identity):
 * ingress policy, conntrack entry with `ct_flags`. Returns 0 or a DROP_* code. */
static __always_inline int mb_admit_step(struct __sk_buff *skb, const void *p, bool v6,
					 const struct mb_endpoint *ep, const struct mb_config *cfg,
					 struct mb_trace_ctx *t, const void *tuple, bool from_proxy,
					 __u16 ct_flags, __u64 now)
{
	__u8 proto = MB_PKT(p, v6, proto), tcp_flags = MB_PKT(p, v6, tcp_flags);
	__u32 len = MB_PKT(p, v6, len);
	struct mb_ct_entry e = {
		.src_identity = t->src_identity,
		.endpoint_id = (__u16)ep->endpoint_id,
		.flags = ct_flags,
	};
	int ret;

	ret = mb_ingress_policy(skb, cfg, p, v6, proto,
				v6 ? mb_policy_port6(p) : mb_policy_port4(p), len, ep, t,
				from_proxy);
	if (ret < 0)
		return ret;
	ret = v6 ? mb_ct_create6(tuple, &e, tcp_flags, len, now) :
		   mb_ct_create4(tuple, &e, tcp_flags, len, now);
	return ret < 0 ? DROP_CT_CREATE_FAILED : 0;
}

/* New incoming connection step: source identity, then admission. Returns 0 or a DROP_* code. */
static __always_inline int mb_new_ingress_step(struct __sk_buff *skb, const void *p, bool v6,
					       const struct mb_endpoint *ep,
					       const struct mb_config *cfg, struct mb_trace_ctx *t,
					       const void *tuple, __u64 now)
{
	bool from_proxy = mb_from_proxy_mark(skb->mark);

	t->src_identity = mb_src_identity_step(skb, p, v6, cfg, from_proxy);
	return mb_admit_step(skb, p, v6, ep, cfg, t, tuple, from_proxy,
			     from_proxy ? MB_CT_F_FROM_PROXY : 0, now);
}

/* A packet of an overlay flow leaves the walk here, before delivery: the program that
 * encapsulates it delivers it (bandwidth, counters, trace), so the walk's paths do not join
 * again with a flag to carry (which doubled the IPv6 program's verifier work). The walk's trace
 * context travels in skb->cb (mb_overlay_cb_store / mb_overlay_cb_load). */
#ifdef ENABLE_OVERLAY
/* The including file's tail call (endpoint.c: to_overlay). */
static __always_inline int mb_endpoint_to_overlay(struct __sk_buff *skb,
						  const struct mb_endpoint *ep,
						  const struct mb_trace_ctx *t);

static __always_inline void mb_overlay_cb_store(struct __sk_buff *skb,
						const struct mb_trace_ctx *t)
{
	skb->cb[0] = t->flags;
	skb->cb[1] = t->orig_daddr;
	skb->cb[2] = t->orig_dport;
}

static __always_inline void mb_overlay_cb_load(struct __sk_buff *skb, struct mb_trace_ctx *t)
{
	t->flags = (__u8)skb->cb[0];
	t->orig_daddr = skb->cb[1];
	t->orig_dport = (__be16)skb->cb[2];
}
#else
static __always_inline int mb_endpoint_to_overlay(struct __sk_buff *skb,
						  const struct mb_endpoint *ep,
						  const struct mb_trace_ctx *t)
{
	return TC_ACT_SHOT;	/* never: no flow is marked without the overlay */
}
#endif

/* The workload's egress (from-container), over the caller's packet and tuple records. */
static __always_inline int mb_from_container(struct __sk_buff *skb, const struct mb_endpoint *ep,
					     void *p, void *tuple, bool v6)
{
	struct mb_config *cfg = mb_get_config();
	struct mb_trace_ctx t = {
		.src_identity = ep->identity,
		.endpoint_id = (__u16)ep->endpoint_id,
		.direction = MB_DIR_EGRESS,
	};
	struct mb_ct_entry *ct = NULL;
	__u16 rev_nat_index = 0;
	bool hairpin = false;
	__u64 now;
	int ret;

	ret = mb_parse_step(skb, p, v6, &t);
	if (ret != MB_CONTINUE)
		return ret;
	if (!mb_source_ok(p, v6, ep))
		return mb_drop(skb, p, v6, MB_PKT(p, v6, len), &t, DROP_INVALID_SIP, 0);
	now = mb_ct_now();
	ret = mb_service_step(skb, p, v6, ep, cfg, &t, tuple, &rev_nat_index, &hairpin, now);
	if (ret < 0)
		return mb_drop(skb, p, v6, MB_PKT(p, v6, len), &t, ret, 0);

	if (mb_related_step(p, v6)) {
		t.flags |= MB_EVF_REPLY;
		goto deliver;
	}
	switch (mb_ct_opens(MB_PKT(p, v6, proto), MB_PKT(p, v6, tcp_flags)) ?
		MB_CT_NEW : mb_ct_step(tuple, v6, &ct)) {
	case MB_CT_ESTABLISHED:
		mb_ct_touch(ct, MB_PKT(p, v6, proto), MB_PKT(p, v6, tcp_flags), MB_PKT(p, v6, len),
			    false, now);
		if (ct->flags & MB_CT_F_PROXY_REDIRECT) {
			t.proxy_port = ct->proxy_port;
			ret = mb_proxy_step(skb, p, v6, cfg, ct->proxy_port, now);
			if (ret < 0)
				return mb_drop(skb, p, v6, MB_PKT(p, v6, len), &t, ret, 0);
			return mb_deliver_to_proxy(skb, cfg, p, v6, MB_PKT(p, v6, len), &t);
		}
		if (mb_overlay_flow(ct))
			return mb_endpoint_to_overlay(skb, ep, &t);
		break;
	case MB_CT_REPLY:
		/* Replies of allowed connections pass without a policy lookup. */
		mb_ct_touch(ct, MB_PKT(p, v6, proto), MB_PKT(p, v6, tcp_flags), MB_PKT(p, v6, len),
			    true, now);
		t.flags |= MB_EVF_REPLY;
		t.dst_identity = ct->src_identity;
		if (ct->flags & MB_CT_F_HAIRPIN) {
			ret = v6 ? mb_hairpin6_reply(skb, p, ct) : mb_hairpin4_reply(skb, p, ct);
			if (ret < 0)
				return mb_drop(skb, p, v6, MB_PKT(p, v6, len), &t, ret, 0);
			t.flags |= MB_EVF_NAT;
		}
		if (mb_overlay_flow(ct))
			return mb_endpoint_to_overlay(skb, ep, &t);
		break;
	default:
		t.flags |= MB_EVF_CT_NEW;
		ret = mb_new_egress_step(skb, p, v6, ep, cfg, &t, tuple, rev_nat_index, hairpin,
					 now);
		if (ret == MB_CONTINUE_OVERLAY)
			return mb_endpoint_to_overlay(skb, ep, &t);
		if (ret != MB_CONTINUE)
			return ret;
		break;
	}

deliver:
	ret = mb_deliver(skb, cfg, p, v6, MB_PKT(p, v6, len), ep, &t, true);
	if (!v6 && rev_nat_index && ret == TC_ACT_OK)
		MB_TEST_FORWARDED_SVC4(skb, p, t.orig_daddr, t.orig_dport);
	return ret;
}

/* The workload's ingress (to-container), over the caller's packet and tuple records. */
static __always_inline int mb_to_container(struct __sk_buff *skb, const struct mb_endpoint *ep,
					   void *p, void *tuple, bool v6)
{
	struct mb_config *cfg = mb_get_config();
	struct mb_trace_ctx t = {
		.dst_identity = ep->identity,
		.endpoint_id = (__u16)ep->endpoint_id,
		.direction = MB_DIR_INGRESS,
	};
	struct mb_ct_entry *ct;
	__u64 now;
	int ret;

	ret = mb_parse_step(skb, p, v6, &t);
	if (ret != MB_CONTINUE)
		return ret;
	now = mb_ct_now();
	mb_tuple_step(p, v6, tuple);

	if (mb_related_step(p, v6)) {
		t.flags |= MB_EVF_REPLY;
		goto deliver;
	}
	switch (mb_ct_step(tuple, v6, &ct)) {
	case MB_CT_ESTABLISHED:
		mb_ct_touch(ct, MB_PKT(p, v6, proto), MB_PKT(p, v6, tcp_flags), MB_PKT(p, v6, len),
			    false, now);
		t.src_identity = ct->src_identity;
		break;
	case MB_CT_REPLY:
		mb_ct_touch(ct, MB_PKT(p, v6, proto), MB_PKT(p, v6, tcp_flags), MB_PKT(p, v6, len),
			    true, now);
		t.flags |= MB_EVF_REPLY;
		if (ct->flags & MB_CT_F_REV_NAT) {
			ret = mb_rev_nat_step(skb, p, v6, &t, ct);
			if (ret < 0)
				return mb_drop(skb, p, v6, MB_PKT(p, v6, len), &t, ret, 0);
			if (ret == 1)
				t.flags |= MB_EVF_NAT;
		}
		break;
	default:
		t.flags |= MB_EVF_CT_NEW;
		ret = mb_new_ingress_step(skb, p, v6, ep, cfg, &t, tuple, now);
		if (ret < 0)
			return mb_drop(skb, p, v6, MB_PKT(p, v6, len), &t, ret,
				       ret == DROP_PROXY_SET_FAILED);
		break;
	}

deliver:
	return mb_deliver(skb, cfg, p, v6, MB_PKT(p, v6, len), ep, &t, false);
}

/* ---- The overlay: to and from other nodes (lib/overlay.h) ------------------------------ */

#ifdef ENABLE_OVERLAY
/* The sending half (program to_overlay, tail-called by from_container's walk for a packet of
 * an overlay flow that passed): delivery as the walk's (bandwidth, counters, trace), then the
 * destination's tunnel endpoint from the ipcache, the tunnel key with the sender's identity as
 * the VNI and the redirect to the VXLAN device. */
static __always_inline int mb_to_overlay(struct __sk_buff *skb, void *p, bool v6)
{
	struct mb_config *cfg = mb_get_config();
	struct mb_endpoint *ep = mb_lookup_endpoint(skb->ifindex);
	struct mb_ipcache_value *remote;
	struct mb_trace_ctx t = { .direction = MB_DIR_EGRESS };
	int ret;

	if (!ep)
		return mb_drop_raw(skb, MB_DIR_EGRESS, 0, DROP_NO_CONFIG);
	mb_overlay_cb_load(skb, &t);
	t.src_identity = ep->identity;
	t.endpoint_id = (__u16)ep->endpoint_id;
	ret = v6 ? mb_parse6(skb, p) : mb_parse4(skb, p);
	if (ret < 0)
		return mb_drop(skb, p, v6, skb->len, &t, ret, 0);
	remote = v6 ? mb_ipcache_lookup6(&((struct mb_pkt6 *)p)->daddr) :
		      mb_ipcache_lookup4(((struct mb_pkt4 *)p)->daddr);
	if (!remote)
		return mb_drop(skb, p, v6, MB_PKT(p, v6, len), &t, DROP_NO_TUNNEL_ENDPOINT, 0);
	t.dst_identity = remote->identity;
	ret = mb_deliver(skb, cfg, p, v6, MB_PKT(p, v6, len), ep, &t, true);
	if (ret != TC_ACT_OK)
		return ret;
	ret = mb_overlay_encap(skb, cfg, remote->tunnel_endpoint, ep->identity);
	if (ret < 0)
		return mb_drop(skb, p, v6, MB_PKT(p, v6, len), &t, ret, 0);
	if (mb_want_trace(cfg, t.flags & MB_EVF_CT_NEW))
		mb_trace(skb, p, v6, &t, MB_TRACE_TO_OVERLAY);
	return ret;
}

/* The receiving half (program from_overlay, tc ingress of the VXLAN device): the source
 * identity is the VNI; a new connection to a local endpoint meets that endpoint's ingress policy
 * here (an L7 entry is a drop, DROP_PROXY_SET_FAILED, as for any source outside the node) and
 * gets a conntrack entry marked MB_CT_F_OVERLAY, so the endpoint's replies go back through the
 * overlay. The frame is then redirected to the endpoint's host-side veth, whose to_container
 * finds the entry (and reverse-NATs replies to service flows) as for local delivery. Packets
 * for no local endpoint go on to the stack. */
static __always_inline int mb_from_overlay(struct __sk_buff *skb, void *p, void *tuple, bool v6)
{
	struct mb_config *cfg = mb_get_config();
	struct mb_trace_ctx t = { .direction = MB_DIR_INGRESS };
	struct mb_endpoint *ep;
	struct mb_ct_entry *ct;
	int ret;

	ret = mb_overlay_identity(skb, &t.src_identity);
	if (ret < 0)
		return mb_drop_raw(skb, MB_DIR_INGRESS, 0, ret);
	ret = mb_parse_step(skb, p, v6, &t);
	if (ret != MB_CONTINUE)
		return ret;
	ep = v6 ? mb_lookup_lxc6(cfg, &((struct mb_pkt6 *)p)->daddr) :
		  mb_lookup_lxc4(cfg, &((struct mb_pkt4 *)p)->daddr);
	if (!ep)
		return TC_ACT_OK;
	t.dst_identity = ep->identity;
	t.endpoint_id = (__u16)ep->endpoint_id;
	mb_tuple_step(p, v6, tuple);

	/* Known flows are only looked up: to_container touches their entry. */
	if (mb_related_step(p, v6)) {
		t.flags |= MB_EVF_REPLY;
	} else {
		switch (mb_ct_step(tuple, v6, &ct)) {
		case MB_CT_ESTABLISHED:
			break;
		case MB_CT_REPLY:
			t.flags |= MB_EVF_REPLY;
			break;
		default:
			t.flags |= MB_EVF_CT_NEW;
			ret = mb_admit_step(skb, p, v6, ep, cfg, &t, tuple, false, MB_CT_F_OVERLAY,
					    mb_ct_now());
			if (ret < 0)
				return mb_drop(skb, p, v6, MB_PKT(p, v6, len), &t, ret,
					       ret == DROP_PROXY_SET_FAILED);
			break;
		}
	}
	ret = mb_overlay_set_macs(skb, ep);
	if (ret < 0)
		return mb_drop(skb, p, v6, MB_PKT(p, v6, len), &t, ret, 0);
	if (mb_want_trace(cfg, t.flags & MB_EVF_CT_NEW))
		mb_trace(skb, p, v6, &t, MB_TRACE_FROM_OVERLAY);
	return bpf_redirect(ep->ifindex, 0);
}
#endif /* ENABLE_OVERLAY */

/* ---- Entry points: the per-family records, then the walk ------------------------------- */

static __always_inline int mb_from_container4(struct __sk_buff *skb, const struct mb_endpoint *ep)
{
	struct mb_pkt4 p = {};
	struct mb_ct_tuple4 tuple = {};

	return mb_from_container(skb, ep, &p, &tuple, false);
}

static __always_inline int mb_to_container4(struct __sk_buff *skb, const struct mb_endpoint *ep)
{
	struct mb_pkt4 p = {};
	struct mb_ct_tuple4 tuple = {};

	return mb_to_container(skb, ep, &p, &tuple, false);
}

static __always_inline int mb_from_container6(struct __sk_buff *skb, const struct mb_endpoint *ep)
{
	struct mb_pkt6 p = {};
	struct mb_ct_tuple6 tuple = {};

	return mb_from_container(skb, ep, &p, &tuple, true);
}

static __always_inline int mb_to_container6(struct __sk_buff *skb, const struct mb_endpoint *ep)
{
	struct mb_pkt6 p = {};
	struct mb_ct_tuple6 tuple = {};

	return mb_to_container(skb, ep, &p, &tuple, true);
}
