// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Loader test object: one program per cgroup socket hook, each counting its calls into
 * hook_calls[<index>] and allowing the operation, so attach tests can see every hook run. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum {
	H_CONNECT4, H_CONNECT6, H_SENDMSG4, H_SENDMSG6, H_RECVMSG4, H_RECVMSG6,
	H_GETPEERNAME4, H_GETPEERNAME6, H_SOCK_CREATE, H_CONNECT4_B, H_MAX
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, H_MAX);
	__type(key, __u32);
	__type(value, __u64);
} hook_calls SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *n = bpf_map_lookup_elem(&hook_calls, &idx);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("cgroup/connect4") int on_connect4(struct bpf_sock_addr *ctx) { count(H_CONNECT4); return 1; }
SEC("cgroup/connect4") int on_connect4_b(struct bpf_sock_addr *ctx) { count(H_CONNECT4_B); return 1; }
SEC("cgroup/connect6") int on_connect6(struct bpf_sock_addr *ctx) { count(H_CONNECT6); return 1; }
SEC("cgroup/sendmsg4") int on_sendmsg4(struct bpf_sock_addr *ctx) { count(H_SENDMSG4); return 1; }
SEC("cgroup/sendmsg6") int on_sendmsg6(struct bpf_sock_addr *ctx) { count(H_SENDMSG6); return 1; }
SEC("cgroup/recvmsg4") int on_recvmsg4(struct bpf_sock_addr *ctx) { count(H_RECVMSG4); return 1; }
SEC("cgroup/recvmsg6") int on_recvmsg6(struct bpf_sock_addr *ctx) { count(H_RECVMSG6); return 1; }
SEC("cgroup/getpeername4") int on_getpeername4(struct bpf_sock_addr *ctx) { count(H_GETPEERNAME4); return 1; }
SEC("cgroup/getpeername6") int on_getpeername6(struct bpf_sock_addr *ctx) { count(H_GETPEERNAME6); return 1; }
SEC("cgroup/sock_create") int on_sock_create(struct bpf_sock *ctx) { count(H_SOCK_CREATE); return 1; }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
