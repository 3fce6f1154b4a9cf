// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Node configuration, endpoint records (by veth ifindex and by address, both families),
 * identities, skb marks and the IPv6 address type shared by every datapath object. Every map here is pinned by name (LIBBPF_PIN_BY_NAME) so that endpoint.o and sock.o,
 * loaded with the same pin root, share one copy, and the maps outlive the agent. */
#pragma once

#include "mb_helpers.h"

/* Every datapath object emits events: the ring buffer is defined by lib/events.h. */
#ifndef MB_EVENTS_DEFINE_MAPS
#define MB_EVENTS_DEFINE_MAPS
#endif

/* Reserved identities (Cilium's numbering). */
#define MB_ID_UNKNOWN		0
#define MB_ID_HOST		1
#define MB_ID_WORLD		2
#define MB_ID_UNMANAGED		3
#define MB_ID_HEALTH		4
#define MB_ID_INIT		5
#define MB_ID_REMOTE_NODE	6

/* skb->mark magic (Cilium's layout: magic in bits 8..11, identity in the upper 16 bits).
 * MB_MARK_MAGIC_PROXY marks the L7 proxy's upstream connections (SO_MARK = 0x0A00 | id << 16):
 * the destination's ingress path takes the source identity from it and never redirects it
 * back to the proxy. */
#define MB_MARK_MAGIC_MASK	0x0F00
#define MB_MARK_MAGIC_PROXY	0x0A00
#define MB_MARK_IDENTITY(m)	((m) >> 16)

/* mb_config.flags */
#define MB_CFG_TRACE_NEW	(1 << 0)	/* trace event for the first packet of a connection */
#define MB_CFG_TRACE_ALL	(1 << 1)	/* trace event for every forwarded packet */
#define MB_CFG_VERDICTS		(1 << 2)	/* policy verdict events for new connections */
#define MB_CFG_SOCK_LB_EVENTS	(1 << 3)	/* MB_EVENT_SOCK_LB for socket translations */

/* An IPv6 address, readable as bytes, words (hash input) or two u64 halves (compare). */
union mb_v6addr {
	__u8   b[16];
	__u32  w[4];
	__u64  d[2];
};

static __always_inline bool mb_v6_eq(const union mb_v6addr *a, const __u8 *b)
{
	union mb_v6addr x;

	__builtin_memcpy(&x, b, 16);
	return a->d[0] == x.d[0] && a->d[1] == x.d[1];
}

static __always_inline bool mb_v6_is_zero(const __u8 *a)
{
	union mb_v6addr x;

	__builtin_memcpy(&x, a, 16);
	return (x.d[0] | x.d[1]) == 0;
}

/* One global configuration record (array of 1), written by @membrane/datapath. */
struct mb_config {
	__u32 flags;		/* MB_CFG_* */
	__be32 router_ip4;	/* L7 proxy address (the node's router/host address) */
	__u32 hash_seed;	/* seed of the Maglev flow hash */
	__be32 hairpin_ip4;	/* source of hairpin service flows (not a local address) */
	__u8  router_ip6[16];
	__u32 hash_seed6;	/* seed of the IPv6 Maglev flow hash */
	__be32 local_net4;	/* the node's endpoint CIDR (every mb_lxc4 address is inside); */
	__be32 local_mask4;	/* mask 0: not known, every destination is looked up */
	__u32 tunnel_ifindex;	/* the node's VXLAN device (lib/overlay.h); 0: no overlay */
	__u8  hairpin_ip6[16];	/* source of IPv6 hairpin service flows */
};

/* mb_endpoint.flags */
#define MB_EP_F_ENFORCE_INGRESS	(1 << 0)
#define MB_EP_F_ENFORCE_EGRESS	(1 << 1)

/* One endpoint (workload). Keyed by the ifindex of its host-side veth in mb_endpoints and by
 * its addresses in mb_lxc4 / mb_lxc6 (local delivery: the destination's ingress policy). */
struct mb_endpoint {
	__u32 endpoint_id;	/* 1..65535 */
	__u32 identity;		/* security identity of the workload */
	__u32 ifindex;		/* host-side veth */
	__be32 ip4;
	__u8  ip6[16];
	__u8  mac[6];		/* container side */
	__u8  node_mac[6];	/* host side */
	__u32 flags;		/* MB_EP_F_* */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mb_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);	/* ifindex of the host-side veth */
	__type(value, struct mb_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_endpoints SEC(".maps");

/* The per-packet endpoint lookup: an array indexed by ifindex (an inlined lookup, where a
 * hash lookup costs ~20 ns per packet), for ifindexes below MB_EP_DIRECT_ENTRIES. It mirrors
 * mb_endpoints, which stays the authoritative record: @membrane/datapath writes the hash first
 * and the slot second, clears the slot before deleting, and rewrites every slot from the hash
 * when it opens the pins. A slot whose ifindex does not match is empty. */
#define MB_EP_DIRECT_ENTRIES	65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MB_EP_DIRECT_ENTRIES);
	__type(key, __u32);	/* ifindex of the host-side veth */
	__type(value, struct mb_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_ep_direct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __be32);	/* endpoint IPv4 address */
	__type(value, struct mb_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lxc4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, union mb_v6addr);	/* endpoint IPv6 address */
	__type(value, struct mb_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lxc6 SEC(".maps");

static __always_inline struct mb_config *mb_get_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&mb_config, &zero);
}

/* The endpoint whose host-side veth has this ifindex. */
static __always_inline struct mb_endpoint *mb_lookup_endpoint(__u32 ifindex)
{
	if (ifindex < MB_EP_DIRECT_ENTRIES) {
		struct mb_endpoint *ep = bpf_map_lookup_elem(&mb_ep_direct, &ifindex);

		if (ep && ep->ifindex == ifindex)
			return ep;
	}
	return bpf_map_lookup_elem(&mb_endpoints, &ifindex);
}

/* A local endpoint by IPv4 address (local delivery), skipping the lookup for destinations
 * outside the node's endpoint CIDR when the configuration names it. */
static __always_inline struct mb_endpoint *mb_lookup_lxc4(const struct mb_config *cfg,
							  const __be32 *addr)
{
	if (cfg && (*addr & cfg->local_mask4) != cfg->local_net4)
		return NULL;
	return bpf_map_lookup_elem(&mb_lxc4, addr);
}

/* A local endpoint by IPv6 address (the configuration names no IPv6 endpoint CIDR). */
static __always_inline struct mb_endpoint *mb_lookup_lxc6(const struct mb_config *cfg,
							  const union mb_v6addr *addr)
{
	return bpf_map_lookup_elem(&mb_lxc6, addr);
}
