// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Policy: one global LPM trie keyed by {endpoint, identity, direction, protocol, port prefix}.
 * Why one global map and not a hash-of-maps per endpoint: one pin survives restarts as a unit,
 * no inner map has to be created, pinned and swapped per endpoint, and any endpoint program
 * can check another endpoint's ingress (local delivery) with the same lookup. The endpoint id
 * leads the key, so entries of different endpoints never share a prefix.
 *
 * Prefix layout (bits of data after prefixlen): endpoint_id 32 + identity 32 + direction 8
 * = 72 static; +8 when the protocol is set; +N for a port prefix (16 = exact port).
 * Lookups: exact identity first, then identity 0 (any); a deny from either wins (deny before
 * allow), then the exact identity's allow, then the wildcard's. */
#pragma once

#include "lib/common.h"
#include "lib/drop_reasons.h"
#include "lib/events.h"

#define MB_POLICY_INGRESS	0
#define MB_POLICY_EGRESS	1
#define MB_POLICY_STATIC_PREFIX	72
#define MB_POLICY_FULL_PREFIX	96

struct mb_policy_key {
	__u32 prefixlen;
	__u32 endpoint_id;
	__u32 identity;		/* remote identity, 0 = any */
	__u8  direction;	/* MB_POLICY_INGRESS / MB_POLICY_EGRESS */
	__u8  protocol;		/* IPPROTO_*, 0 = any (with prefixlen 72) */
	__be16 dport;		/* network order, so a prefix covers a port range */
	__u32 pad;		/* never inside a prefix; it makes the trie node's value 8-byte
				 * aligned (node data at 40 + 16 bytes), so the atomic counter
				 * updates below never straddle a cache line (split lock). */
};

/* mb_policy_entry.flags */
#define MB_POLICY_F_WILDCARD_PROTO	(1 << 0)
#define MB_POLICY_F_WILDCARD_PORT	(1 << 1)
#define MB_POLICY_F_AUDIT		(1 << 2)	/* allowed, but an audit policy would deny */

struct mb_policy_entry {
	__u16 proxy_port;	/* host order; non-zero: redirect to the L7 proxy */
	__u8  deny;
	__u8  auth_type;	/* non-zero: needs an mb_auth entry */
	__u8  flags;		/* MB_POLICY_F_* */
	__u8  prefix_len;	/* port prefix length of the key (0..16) */
	__u16 rule_set;		/* id of the policies that produced the entry (the agent's
				 * attribution table; events carry it), 0 = none */
	__u64 packets;		/* packets that matched (new connections) */
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144);
	__type(key, struct mb_policy_key);
	__type(value, struct mb_policy_entry);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_policy SEC(".maps");

/* The exact-match index in front of the trie (a hash lookup costs a fraction of an LPM walk,
 * and does not grow with the number of entries). @membrane/datapath's PolicyMap writes it
 * alongside the trie:
 *  - every full-port entry (prefix MB_POLICY_FULL_PREFIX) also lives here under its key
 *    {endpoint, identity, direction, protocol, port}; for such keys this is what the trie's
 *    longest match would return (nothing is longer), and its counters count the hits;
 *  - a summary record per (endpoint, identity, direction) that has any entry: direction |
 *    MB_POLICY_SUMMARY, protocol 0, port 0; `packets` = how many entries shorter than a full
 *    key (L3-only, wildcard port, port ranges) the trie has, `bytes` = how many full-port.
 * A lookup for one identity: the index (hit: done), else the summary (no record or no shorter
 * entries: nothing), and only then the trie. For identity 0, which usually has no entries or
 * only shorter ones, the summary comes first, from its mirror in mb_policy_any (below). */
#define MB_POLICY_SUMMARY	0x80

struct mb_policy_fast_key {
	__u32 endpoint_id;
	__u32 identity;
	__u8  direction;	/* MB_POLICY_* (| MB_POLICY_SUMMARY for a summary record) */
	__u8  protocol;
	__be16 dport;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct mb_policy_fast_key);
	__type(value, struct mb_policy_entry);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_policy_fast SEC(".maps");

/* The identity-0 ("any remote") summary of each endpoint and direction, mirrored from its
 * summary record in mb_policy_fast into an array slot (endpoint_id << 1 | direction): every
 * policy check asks about identity 0, and an array lookup is inlined where a hash lookup
 * costs ~20 ns. @membrane/datapath's PolicyMap writes both; a zero slot means no entries. */
#define MB_POLICY_ANY_ENTRIES	(65536 * 2)

struct mb_policy_any {
	__u32 shorter;		/* entries shorter than a full key (L3-only, wildcard port, ranges) */
	__u32 full;		/* full-port entries (in the exact-match index) */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MB_POLICY_ANY_ENTRIES);
	__type(key, __u32);	/* endpoint_id << 1 | direction */
	__type(value, struct mb_policy_any);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_policy_any SEC(".maps");

struct mb_auth_key {
	__u32 local_identity;
	__u32 remote_identity;
	__u8  auth_type;
	__u8  pad[3];
};

struct mb_auth_value {
	__u64 expires_ns;	/* 0 = no expiry */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct mb_auth_key);
	__type(value, struct mb_auth_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_auth SEC(".maps");

struct mb_policy_result {
	__u16 proxy_port;
	__u8  match_type;	/* MB_MATCH_* */
	__u8  action;		/* MB_ACTION_* */
	__u16 rule_set;		/* the matched entry's rule_set, 0 when none matched */
	__u8  audit;		/* the entry has MB_POLICY_F_AUDIT */
	__u8  pad;
};

static __always_inline __u8 mb_policy_match_type(const struct mb_policy_entry *e, bool l3)
{
	if (e->flags & MB_POLICY_F_WILDCARD_PROTO)
		return l3 ? MB_MATCH_L3_ONLY : MB_MATCH_ALL;
	if (e->flags & MB_POLICY_F_WILDCARD_PORT)
		return l3 ? MB_MATCH_L3_PROTO : MB_MATCH_PROTO_ONLY;
	return l3 ? MB_MATCH_L3_L4 : MB_MATCH_L4_ONLY;
}

/* The entry the trie's longest match would give for `key` (full prefix), through the index:
 * the full key (hit: done), else the summary record (no record or no shorter entries:
 * nothing), and only then the trie. */
static __always_inline struct mb_policy_entry *mb_policy_lookup(const struct mb_policy_key *key)
{
	struct mb_policy_fast_key fk = {
		.endpoint_id = key->endpoint_id,
		.identity = key->identity,
		.direction = key->direction,
		.protocol = key->protocol,
		.dport = key->dport,
	};
	struct mb_policy_entry *s, *e;

	e = bpf_map_lookup_elem(&mb_policy_fast, &fk);
	if (e)
		return e;
	fk.direction = key->direction | MB_POLICY_SUMMARY;
	fk.protocol = 0;
	fk.dport = 0;
	s = bpf_map_lookup_elem(&mb_policy_fast, &fk);
	if (!s || !s->packets)
		return NULL;
	return bpf_map_lookup_elem(&mb_policy, key);
}

/* The same for identity 0 (key->identity == 0), whose summary is the mb_policy_any slot. */
static __always_inline struct mb_policy_entry *mb_policy_lookup_any(const struct mb_policy_key *key)
{
	__u32 slot = (key->endpoint_id << 1) | (key->direction & 1);
	struct mb_policy_any *a = bpf_map_lookup_elem(&mb_policy_any, &slot);

	if (!a)
		return NULL;
	if (a->full) {
		struct mb_policy_fast_key fk = {
			.endpoint_id = key->endpoint_id,
			.direction = key->direction,
			.protocol = key->protocol,
			.dport = key->dport,
		};
		struct mb_policy_entry *e = bpf_map_lookup_elem(&mb_policy_fast, &fk);

		if (e)
			return e;
	}
	if (!a->shorter)
		return NULL;
	return bpf_map_lookup_elem(&mb_policy, key);
}

/* Returns 0 (allowed; res says how), DROP_POLICY_DENY, DROP_POLICY or
 * DROP_POLICY_AUTH_REQUIRED. */
static __always_inline int mb_policy_check(__u32 endpoint_id, __u32 local_identity,
					   __u32 remote_identity, __u8 direction, __u8 proto,
					   __be16 dport, __u32 len, struct mb_policy_result *res)
{
	struct mb_policy_key key = {
		.prefixlen = MB_POLICY_FULL_PREFIX,
		.endpoint_id = endpoint_id,
		.identity = remote_identity,
		.direction = direction,
		.protocol = proto,
		.dport = dport,
	};
	struct mb_policy_entry *exact, *any, *hit;
	bool l3;

	exact = mb_policy_lookup(&key);
	any = NULL;
	if (!exact || !exact->deny) {	/* an exact deny wins whatever identity 0 says */
		key.identity = 0;
		any = mb_policy_lookup_any(&key);
	}

	res->proxy_port = 0;
	res->match_type = MB_MATCH_NONE;
	res->action = MB_ACTION_DENIED;
	res->rule_set = 0;
	res->audit = 0;
	if (exact && exact->deny) {
		res->match_type = mb_policy_match_type(exact, true);
		res->rule_set = exact->rule_set;
		__sync_fetch_and_add(&exact->packets, 1);
		return DROP_POLICY_DENY;
	}
	if (any && any->deny) {
		res->match_type = mb_policy_match_type(any, false);
		res->rule_set = any->rule_set;
		__sync_fetch_and_add(&any->packets, 1);
		return DROP_POLICY_DENY;
	}
	if (exact) {
		hit = exact;
		l3 = true;
	} else if (any) {
		hit = any;
		l3 = false;
	} else {
		return DROP_POLICY;
	}
	res->match_type = mb_policy_match_type(hit, l3);
	res->rule_set = hit->rule_set;
	res->audit = !!(hit->flags & MB_POLICY_F_AUDIT);
	__sync_fetch_and_add(&hit->packets, 1);
	__sync_fetch_and_add(&hit->bytes, len);
	if (hit->auth_type) {
		struct mb_auth_key ak = {
			.local_identity = local_identity,
			.remote_identity = remote_identity,
			.auth_type = hit->auth_type,
		};
		struct mb_auth_value *av = bpf_map_lookup_elem(&mb_auth, &ak);

		if (!av || (av->expires_ns && av->expires_ns < bpf_ktime_get_ns()))
			return DROP_POLICY_AUTH_REQUIRED;
	}
	res->proxy_port = hit->proxy_port;
	res->action = hit->proxy_port ? MB_ACTION_REDIRECTED : MB_ACTION_ALLOWED;
	return 0;
}
