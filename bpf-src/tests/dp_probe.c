// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Micro-benchmark entries: one building block of the endpoint program each. */
#include "lib/lxc.h"

SEC("tc")
int probe_parse(struct __sk_buff *skb)
{
	struct mb_pkt4 p = {};

	return mb_parse4(skb, &p) ? 2 : 0;
}

SEC("tc")
int probe_ipcache(struct __sk_buff *skb)
{
	struct mb_pkt4 p = {};

	mb_parse4(skb, &p);
	return mb_ipcache_identity4(p.daddr) == 2 ? 1 : 0;
}

SEC("tc")
int probe_policy(struct __sk_buff *skb)
{
	struct mb_pkt4 p = {};
	struct mb_policy_result res = {};

	mb_parse4(skb, &p);
	return mb_policy_check(10, 1000, 2000, MB_POLICY_EGRESS, p.proto, p.dport, p.len, &res) ? 2 : 0;
}

SEC("tc")
int probe_ct(struct __sk_buff *skb)
{
	struct mb_pkt4 p = {};
	struct mb_ct_tuple4 t = {};
	struct mb_ct_entry *e;

	mb_parse4(skb, &p);
	t.daddr = p.daddr;
	t.saddr = p.saddr;
	t.dport = p.dport;
	t.sport = p.sport;
	t.nexthdr = p.proto;
	return mb_ct_lookup4(&t, &e);
}

SEC("tc")
int probe_lxc(struct __sk_buff *skb)
{
	struct mb_pkt4 p = {};

	mb_parse4(skb, &p);
	return bpf_map_lookup_elem(&mb_lxc4, &p.daddr) ? 1 : 0;
}



SEC("tc")
int probe_lpm1(struct __sk_buff *skb)
{
	struct mb_policy_key key = {
		.prefixlen = MB_POLICY_FULL_PREFIX,
		.endpoint_id = 10,
		.identity = 2000,
		.direction = MB_POLICY_EGRESS,
		.protocol = IPPROTO_TCP,
		.dport = bpf_htons(80),
	};

	return bpf_map_lookup_elem(&mb_policy, &key) ? 1 : 0;
}

SEC("tc")
int probe_lpm1_atomic(struct __sk_buff *skb)
{
	struct mb_policy_key key = {
		.prefixlen = MB_POLICY_FULL_PREFIX,
		.endpoint_id = 10,
		.identity = 2000,
		.direction = MB_POLICY_EGRESS,
		.protocol = IPPROTO_TCP,
		.dport = bpf_htons(80),
	};
	struct mb_policy_entry *e = bpf_map_lookup_elem(&mb_policy, &key);

	if (e) {
		__sync_fetch_and_add(&e->packets, 1);
		__sync_fetch_and_add(&e->bytes, 100);
	}
	return e ? 1 : 0;
}
/* Two DNAT rewrites (there and back): what the benchmark build's DNAT undo costs. */
SEC("tc")
int probe_dnat_twice(struct __sk_buff *skb)
{
	struct mb_pkt4 p = {};
	__be32 daddr;
	__be16 dport;

	if (mb_parse4(skb, &p))
		return 2;
	daddr = p.daddr;
	dport = p.dport;
	mb_dnat4_fast(skb, &p, bpf_htonl(0x0a000301), bpf_htons(8080));
	mb_dnat4_fast(skb, &p, daddr, dport);
	return 0;
}

/* One conntrack insert (LRU update of the same key: a new node each time). */
SEC("tc")
int probe_ct_insert(struct __sk_buff *skb)
{
	struct mb_pkt4 p = {};
	struct mb_ct_tuple4 t = {};
	struct mb_ct_entry e = {};

	if (mb_parse4(skb, &p))
		return 2;
	t.daddr = p.daddr;
	t.saddr = p.saddr;
	t.dport = p.dport;
	t.sport = p.sport;
	t.nexthdr = p.proto;
	return mb_ct_create4(&t, &e, p.tcp_flags, p.len, bpf_ktime_get_ns()) ? 2 : 0;
}

/* Service lookup, Maglev selection and the backend lookup of a parsed packet. */
SEC("tc")
int probe_svc_select(struct __sk_buff *skb)
{
	struct mb_pkt4 p = {};
	struct mb_lb_service *svc;
	__u32 id;

	if (mb_parse4(skb, &p))
		return 2;
	svc = mb_lb4_lookup(p.daddr, p.dport, p.proto);
	if (!svc)
		return 3;
	id = mb_lb4_select(svc, p.saddr, p.sport, p.dport, p.proto, 0);
	return mb_lb4_backend(&id) ? 0 : 4;
}

/* Only the service lookup. */
SEC("tc")
int probe_svc(struct __sk_buff *skb)
{
	struct mb_pkt4 p = {};

	if (mb_parse4(skb, &p))
		return 2;
	return mb_lb4_lookup(p.daddr, p.dport, p.proto) ? 0 : 3;
}

/* The ipcache lookup of a backend address (a /16 match in the benchmark). */
SEC("tc")
int probe_ipcache_backend(struct __sk_buff *skb)
{
	return mb_ipcache_identity4(bpf_htonl(0x0a000301)) == 2 ? 1 : 0;
}

/* Only the program's fixed cost. */
SEC("tc")
int probe_nop(struct __sk_buff *skb)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
