// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Loader test object: a cgroup connect4 hook that rewrites connects to a "virtual" IPv4
 * address/port (key) to a real backend (value), like socket-level load balancing, and counts
 * rewrites. Addresses and ports are in network order, as in struct bpf_sock_addr. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct addr4 {
	__u32 ip;   /* network order */
	__u16 port; /* network order */
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct addr4);
	__type(value, struct addr4);
} rewrites SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} rewrite_count SEC(".maps");

SEC("cgroup/connect4")
int connect4_rewrite(struct bpf_sock_addr *ctx)
{
	struct addr4 key = { .ip = ctx->user_ip4, .port = (__u16)ctx->user_port, .pad = 0 };
	struct addr4 *to = bpf_map_lookup_elem(&rewrites, &key);
	__u32 zero = 0;

	if (to) {
		ctx->user_ip4 = to->ip;
		ctx->user_port = to->port;
		__u64 *n = bpf_map_lookup_elem(&rewrite_count, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return 1; /* allow */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
