// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The ipcache: IP prefix -> security identity, an LPM trie keyed like Cilium's
 * (a 32-bit static prefix of pad + cluster id + family, then the address). */
#pragma once

#include "lib/common.h"

#define MB_IPCACHE_FAMILY_V4	1
#define MB_IPCACHE_FAMILY_V6	2
#define MB_IPCACHE_STATIC_PREFIX	32	/* pad1 + cluster_id + family */

struct mb_ipcache_key {
	__u32 prefixlen;	/* MB_IPCACHE_STATIC_PREFIX + address prefix length */
	__u16 pad1;
	__u8  cluster_id;
	__u8  family;		/* MB_IPCACHE_FAMILY_* */
	__u8  ip[16];		/* network order; IPv4 in the first 4 bytes */
};

struct mb_ipcache_value {
	__u32  identity;
	__be32 tunnel_endpoint;	/* node address behind which the prefix lives (0: local/none) */
	__u8   flags;
	__u8   pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144);
	__type(key, struct mb_ipcache_key);
	__type(value, struct mb_ipcache_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_ipcache SEC(".maps");

/* The ipcache's longest match for an address (alen bytes, family MB_IPCACHE_FAMILY_*). */
static __always_inline struct mb_ipcache_value *__mb_ipcache_lookup(const void *addr, __u32 alen,
								     __u8 family)
{
	struct mb_ipcache_key key = {
		.prefixlen = MB_IPCACHE_STATIC_PREFIX + alen * 8,
		.family = family,
	};

	__builtin_memcpy(key.ip, addr, alen);
	return bpf_map_lookup_elem(&mb_ipcache, &key);
}

static __always_inline struct mb_ipcache_value *mb_ipcache_lookup4(__be32 addr)
{
	return __mb_ipcache_lookup(&addr, 4, MB_IPCACHE_FAMILY_V4);
}

static __always_inline struct mb_ipcache_value *mb_ipcache_lookup6(const union mb_v6addr *addr)
{
	return __mb_ipcache_lookup(addr, 16, MB_IPCACHE_FAMILY_V6);
}

/* Identity of an address: the ipcache's longest match, else reserved:world. */
static __always_inline __u32 __mb_ipcache_identity(const void *addr, __u32 alen, __u8 family)
{
	struct mb_ipcache_value *v = __mb_ipcache_lookup(addr, alen, family);

	return v ? v->identity : MB_ID_WORLD;
}

static __always_inline __u32 mb_ipcache_identity4(__be32 addr)
{
	return __mb_ipcache_identity(&addr, 4, MB_IPCACHE_FAMILY_V4);
}

static __always_inline __u32 mb_ipcache_identity6(const union mb_v6addr *addr)
{
	return __mb_ipcache_identity(addr, 16, MB_IPCACHE_FAMILY_V6);
}
