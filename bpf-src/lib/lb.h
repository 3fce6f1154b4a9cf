// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Service load balancing, both families: services keyed by VIP:port/proto (mb_lb4_services,
 * mb_lb6_services; one service record type), backends by id (mb_lb4_backends,
 * mb_lb6_backends; one id space), and what both families share: backend slots 1..count per
 * service for random selection and one Maglev lookup table per service (a hash map of
 * fixed-size arrays with an array mirror; @membrane/maglev builds the table,
 * @membrane/datapath writes it). Service ids are unique across families. A draining backend is
 * left out of slots and table but stays in the backend maps, so connections that already
 * chose it (conntrack service entries) keep it. The selection is one core (__mb_lb_select)
 * with a per-family flow hash. */
#pragma once

#include "lib/common.h"

#ifndef MB_MAGLEV_TABLE_SIZE
#define MB_MAGLEV_TABLE_SIZE	1021	/* a prime; Cilium's allowed sizes start at 251 */
#endif

#define MB_LB_ALG_RANDOM	1
#define MB_LB_ALG_MAGLEV	2

/* mb_lb_service.flags */
#define MB_SVC_F_SOCK_LB_SKIP	(1 << 0)	/* no socket-level translation for this service */

/* mb_lb4_backend.flags, mb_lb6_backend.flags */
#define MB_BACKEND_F_DRAINING	(1 << 0)

struct mb_lb4_key {
	__be32 address;
	__be16 dport;
	__u8   proto;
	__u8   scope;		/* reserved, 0 */
};

/* A service (the value of mb_lb4_services and mb_lb6_services). */
struct mb_lb_service {
	__u32 count;		/* active backends (slots 1..count) */
	__u16 rev_nat_index;	/* service id, 1..65535 */
	__u8  algorithm;	/* MB_LB_ALG_* */
	__u8  flags;		/* MB_SVC_F_* */
};

struct mb_lb4_backend {
	__be32 address;
	__be16 port;
	__u8   proto;
	__u8   flags;		/* MB_BACKEND_F_* */
};

struct mb_lb6_key {
	union mb_v6addr address;
	__be16 dport;
	__u8   proto;
	__u8   scope;		/* reserved, 0 */
};

struct mb_lb6_backend {
	union mb_v6addr address;
	__be16 port;
	__u8   proto;
	__u8   flags;		/* MB_BACKEND_F_* */
};

/* Reverse NAT of an IPv6 service: what replies' source becomes. IPv4 keeps it in the conntrack
 * entry (rev_nat_addr), which has room for an IPv4 address only. */
struct mb_lb6_revnat {
	union mb_v6addr address;
	__be16 port;
	__u16  pad;
};

struct mb_lb_slot_key {
	__u16 rev_nat_index;
	__u16 slot;		/* 1..count */
};

struct mb_lb_maglev {
	__u32 backend_ids[MB_MAGLEV_TABLE_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mb_lb4_key);
	__type(value, struct mb_lb_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb4_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mb_lb6_key);
	__type(value, struct mb_lb_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb6_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);	/* backend id */
	__type(value, struct mb_lb4_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb4_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);	/* backend id (one id space with mb_lb4_backends) */
	__type(value, struct mb_lb6_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb6_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);	/* rev_nat_index */
	__type(value, struct mb_lb6_revnat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb6_reverse_nat SEC(".maps");

/* What the programs read per new flow: an array slot per backend id below
 * MB_LB_BE_DIRECT_ENTRIES (an inlined lookup instead of a hash lookup), mirroring
 * mb_lb4_backends, which stays the authoritative record. @membrane/datapath writes the hash
 * first and the slot second, clears the slot before deleting, and rewrites the slots from the
 * hash when it opens the pins. A slot with proto 0 is empty. */
#define MB_LB_BE_DIRECT_ENTRIES	65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MB_LB_BE_DIRECT_ENTRIES);
	__type(key, __u32);	/* backend id */
	__type(value, struct mb_lb4_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb4_be_direct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct mb_lb_slot_key);
	__type(value, __u32);	/* backend id */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);	/* rev_nat_index */
	__type(value, struct mb_lb_maglev);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb_maglev SEC(".maps");

/* An IPv4 backend by id (NULL for id 0 or an unknown id). */
static __always_inline struct mb_lb4_backend *mb_lb4_backend(const __u32 *id)
{
	if (*id < MB_LB_BE_DIRECT_ENTRIES) {
		struct mb_lb4_backend *be = bpf_map_lookup_elem(&mb_lb4_be_direct, id);

		if (be && be->proto)
			return be;
	}
	return *id ? bpf_map_lookup_elem(&mb_lb4_backends, id) : NULL;
}

/* An IPv6 backend by id (NULL for id 0 or an unknown id). */
static __always_inline struct mb_lb6_backend *mb_lb6_backend(const __u32 *id)
{
	return *id ? bpf_map_lookup_elem(&mb_lb6_backends, id) : NULL;
}

/* The reverse NAT record of an IPv6 service. */
static __always_inline struct mb_lb6_revnat *mb_lb6_revnat(__u16 rev_nat_index)
{
	__u32 idx = rev_nat_index;

	return bpf_map_lookup_elem(&mb_lb6_reverse_nat, &idx);
}

/* The Maglev tables the programs read: an array slot per service id below its max_entries
 * (MB_LB_MAGLEV_DIRECT_DEFAULT unless @membrane/datapath's maglevDirectTables resizes it
 * before load), mirroring mb_lb_maglev, the authoritative record (same write discipline as
 * mb_lb4_be_direct). An empty slot has backend id 0 in slot 0, which a table never has. */
#define MB_LB_MAGLEV_DIRECT_DEFAULT	4096

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MB_LB_MAGLEV_DIRECT_DEFAULT);
	__type(key, __u32);	/* rev_nat_index */
	__type(value, struct mb_lb_maglev);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_lb_maglev_direct SEC(".maps");

static __always_inline struct mb_lb_maglev *mb_lb_maglev_table(const __u32 *id)
{
	struct mb_lb_maglev *t = bpf_map_lookup_elem(&mb_lb_maglev_direct, id);

	if (t && t->backend_ids[0])
		return t;
	return bpf_map_lookup_elem(&mb_lb_maglev, id);
}

static __always_inline struct mb_lb_service *mb_lb4_lookup(__be32 addr, __be16 port, __u8 proto)
{
	struct mb_lb4_key key = { .address = addr, .dport = port, .proto = proto };

	return bpf_map_lookup_elem(&mb_lb4_services, &key);
}

static __always_inline struct mb_lb_service *mb_lb6_lookup(const union mb_v6addr *addr,
							   __be16 port, __u8 proto)
{
	struct mb_lb6_key key = { .dport = port, .proto = proto };

	__builtin_memcpy(&key.address, addr, 16);
	return bpf_map_lookup_elem(&mb_lb6_services, &key);
}

/* Maglev's flow hash (Cilium's hash_from_tuple_v4): jhash of source address, both ports and
 * the protocol; the destination is the service itself. The TS twin is flowHash4(). */
static __always_inline __u32 mb_lb4_flow_hash(__be32 saddr, __be16 sport, __be16 dport,
					      __u8 proto, __u32 seed)
{
	return mb_jhash_3words(saddr, ((__u32)dport << 16) | sport, proto, seed);
}

/* Cilium's hash_from_tuple_v6; the TS twin is @membrane/maglev flowHash on an IPv6 source. */
static __always_inline __u32 mb_lb6_flow_hash(const union mb_v6addr *saddr, __be16 sport,
					      __be16 dport, __u8 proto, __u32 seed)
{
	__u32 a = saddr->w[0], b = saddr->w[1], c = saddr->w[2];

	mb_jhash_mix(a, b, c);
	a += saddr->w[3];
	b += ((__u32)dport << 16) | sport;
	c += proto;
	mb_jhash_mix(a, b, c);
	a += seed;
	mb_jhash_final(a, b, c);
	return c;
}

/* A random backend of the service (svc->count > 0): what random selection does, what Maglev
 * falls back to without a table, and what socket LB always does (no 5-tuple exists yet at
 * connect time). 0 when the slot is missing. */
static __always_inline __u32 mb_lb_random(const struct mb_lb_service *svc)
{
	struct mb_lb_slot_key sk = {
		.rev_nat_index = svc->rev_nat_index,
		.slot = (bpf_get_prandom_u32() % svc->count) + 1,
	};
	__u32 *id = bpf_map_lookup_elem(&mb_lb_slots, &sk);

	return id ? *id : 0;
}

/* Choose a backend id for a new flow, 0 when the service has none. Both families: `saddr`
 * points to an IPv4 (__be32) or IPv6 (union mb_v6addr) source, `v6` says which. */
static __always_inline __u32 __mb_lb_select(const struct mb_lb_service *svc, bool v6,
					    const void *saddr, __be16 sport, __be16 dport,
					    __u8 proto, __u32 seed)
{
	if (svc->count == 0)
		return 0;
	if (svc->algorithm == MB_LB_ALG_MAGLEV) {
		__u32 key = svc->rev_nat_index;
		struct mb_lb_maglev *t = mb_lb_maglev_table(&key);

		if (t) {
			__u32 hash = v6 ? mb_lb6_flow_hash(saddr, sport, dport, proto, seed) :
					  mb_lb4_flow_hash(*(const __be32 *)saddr, sport, dport,
							   proto, seed);
			__u32 idx = hash % MB_MAGLEV_TABLE_SIZE;

			/* Keep the bounds check: the verifier does not follow the modulo. */
			asm volatile("" : "+r"(idx));
			if (idx < MB_MAGLEV_TABLE_SIZE)
				return t->backend_ids[idx];
		}
		/* No table (yet): fall back to random over the slots. */
	}
	return mb_lb_random(svc);
}

static __always_inline __u32 mb_lb4_select(const struct mb_lb_service *svc, __be32 saddr,
					   __be16 sport, __be16 dport, __u8 proto, __u32 seed)
{
	return __mb_lb_select(svc, false, &saddr, sport, dport, proto, seed);
}

static __always_inline __u32 mb_lb6_select(const struct mb_lb_service *svc,
					   const union mb_v6addr *saddr, __be16 sport,
					   __be16 dport, __u8 proto, __u32 seed)
{
	return __mb_lb_select(svc, true, saddr, sport, dport, proto, seed);
}
