// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Socket-level load balancing programs, attached to a cgroup v2 path:
 *   sock_connect4 (cgroup/connect4), sock_sendmsg4 (cgroup/sendmsg4),
 *   sock_recvmsg4 (cgroup/recvmsg4), sock_getpeername4 (cgroup/getpeername4),
 * and their IPv6 twins sock_connect6, sock_sendmsg6, sock_recvmsg6, sock_getpeername6.
 * They share the service maps with endpoint.o through the pin root. See lib/sock_lb.h. */
#define ENABLE_IPV6 1
#include "lib/sock_lb.h"

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return mb_sock4_forward(ctx, MB_SOCK_HOOK_CONNECT4);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return mb_sock4_forward(ctx, MB_SOCK_HOOK_SENDMSG4);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return mb_sock4_reverse(ctx);
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return mb_sock4_reverse(ctx);
}

#ifdef ENABLE_IPV6
SEC("cgroup/connect6")
int sock_connect6(struct bpf_sock_addr *ctx)
{
	return mb_sock6_forward(ctx);
}

SEC("cgroup/sendmsg6")
int sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	return mb_sock6_forward(ctx);
}

SEC("cgroup/recvmsg6")
int sock_recvmsg6(struct bpf_sock_addr *ctx)
{
	return mb_sock6_reverse(ctx);
}

SEC("cgroup/getpeername6")
int sock_getpeername6(struct bpf_sock_addr *ctx)
{
	return mb_sock6_reverse(ctx);
}
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";
